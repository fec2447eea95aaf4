"""Colour words of the embedded model: which words count as colours, and recolouring that reads as the colour."""

from __future__ import annotations

import colorsys

import pytest
import torch

from imageforge.engines.embedded.colours import RECOLOURS, prompt_colour, recolour, recolour_caption


@pytest.mark.parametrize(
    ("prompt", "colour"),
    [
        ("a Blue heart.", "blue"),
        ("a red, shiny apple", "red"),
        ("an orange", None),  # the fruit: a final colour word is a noun
        ("a red and blue ball", None),  # two colours: nothing to recolour to
        ("a grey cat", None),  # grey is not a recolouring target
        ("a rocket", None),
    ],
)
def test_prompt_colour(prompt: str, colour: str | None) -> None:
    assert prompt_colour(prompt) == colour


def test_recolour_caption_replaces_the_labels_colour() -> None:
    assert recolour_caption("red heart", "blue") == "a blue heart"
    assert recolour_caption("light blue heart", "orange") == "an orange heart"
    assert recolour_caption("cat face", "green") == "a green cat face"


def _disc() -> torch.Tensor:
    """A red disc with a black ring on a transparent background: (1, 4, 16, 16) premultiplied in [-1, 1]."""
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    r = ((yy - 7.5) ** 2 + (xx - 7.5) ** 2).sqrt()
    alpha = (r < 7).float()
    ring = (r >= 5.5) & (r < 7)
    rgb = torch.stack([torch.full_like(r, 0.85), torch.full_like(r, 0.15), torch.full_like(r, 0.2)])
    rgb[:, ring] = 0.05
    return (torch.cat([rgb * alpha, alpha[None]]) * 2 - 1)[None]


def _name(rgb: tuple[float, float, float]) -> str:
    h, s, v = colorsys.rgb_to_hsv(*rgb)
    if v < 0.22:
        return "black"
    if s < 0.18:
        return "white" if v > 0.8 else "grey"
    hue = h * 360
    bands = [(12, "red"), (40, "orange"), (70, "yellow"), (165, "green"), (255, "blue"), (290, "purple")]
    if 15 <= hue < 45 and v < 0.62:
        return "brown"
    if hue >= 290 or (hue < 12 and s < 0.45 and v > 0.75):
        return "pink" if hue > 12 or s < 0.45 else "red"
    return next((name for edge, name in bands if hue < edge), "red")


@pytest.mark.parametrize("colour", list(RECOLOURS))
def test_recolour_reads_as_the_colour_and_keeps_outline_and_alpha(colour: str) -> None:
    x = _disc()
    y = recolour(x, [colour])
    u = (y[0] + 1) / 2
    centre = tuple(float(c) for c in u[:3, 8, 8] / u[3, 8, 8])
    assert _name(centre) == colour, centre  # type: ignore[arg-type]
    assert torch.equal(y[0, 3], x[0, 3])  # alpha untouched
    assert float(u[:3, 8, 2].max()) < 0.1  # the black ring stays black
    assert float(u[:, 0, 0].abs().max()) < 1e-6  # transparent stays transparent (premultiplied zeros)
