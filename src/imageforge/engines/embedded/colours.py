"""Colour words for the embedded model: recolouring premultiplied RGBA art so it reads as a named colour.

Training (training/train.py ``--recolour``) redraws images in another colour and captions them "a <colour>
<label>", so the denoiser learns colour words; sampling recolours the retrieved references the same way when the
prompt names one colour, so the image starts from the right colour as well as the right shape (references.py).
"""

from __future__ import annotations

import colorsys
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = [
    "COLOUR_WORDS",
    "RECOLOURS",
    "colour_name",
    "dominant_colour",
    "prompt_colour",
    "recolour",
    "recolour_caption",
    "saturated_share",
]

# Target colour -> (hue in turns or None to keep it, saturation scale, saturation floor, value scale, value offset).
# Hues are pulled towards the target (each pixel keeps HUE_SPREAD of its distance from the dominant hue), so a
# multi-coloured emoji keeps some internal contrast but reads as one colour.
# Applied to saturated pixels only, so outlines, greys and highlights keep their look. Chosen so the result reads
# as that colour to the plain HSV colour namer below (``colour_name``), which the benchmarks judge with.
RECOLOURS: dict[str, tuple[float | None, float, float, float, float]] = {
    "red": (0 / 360, 1.0, 0.55, 0.4, 0.6),
    "orange": (28 / 360, 1.0, 0.6, 0.3, 0.7),
    "yellow": (55 / 360, 1.0, 0.55, 0.4, 0.6),
    "green": (120 / 360, 1.0, 0.45, 1.0, 0.0),
    "blue": (215 / 360, 1.0, 0.45, 1.0, 0.0),
    "purple": (275 / 360, 1.0, 0.45, 1.0, 0.0),
    "pink": (330 / 360, 0.5, 0.3, 0.25, 0.75),
    "brown": (25 / 360, 0.8, 0.5, 0.5, 0.05),
    "black": (None, 0.5, 0.0, 0.18, 0.0),
    "white": (None, 0.08, 0.0, 0.15, 0.85),
}
HUE_SPREAD = 0.3
COLOUR_WORDS = frozenset(RECOLOURS) | {"grey", "gray"}


def colour_positions(prompt: str) -> list[int]:
    """Indices of the words of ``prompt.split()`` used as colour adjectives: a colour word followed by another
    word ("a red apple", "a blue, shiny car"). A final colour word is taken as a noun ("an orange", "a big red")
    and left alone."""
    words = [w.strip(",.;:!?'\"").lower() for w in prompt.split()]
    return [i for i, w in enumerate(words[:-1]) if w in COLOUR_WORDS]


def prompt_colour(prompt: str) -> str | None:
    """The one recolourable colour a prompt asks for ("a Blue heart." -> "blue"); None for none or several."""
    words = prompt.split()
    found = {words[i].strip(",.;:!?'\"").lower() for i in colour_positions(prompt)} & set(RECOLOURS)
    return found.pop() if len(found) == 1 else None


def recolour_caption(label: str, colour: str) -> str:
    """ "a <colour> <label>", the label's own colour word (if any) replaced: "red heart" -> "a blue heart"."""
    words = [w for w in label.split() if w not in COLOUR_WORDS | {"light"}]  # "light blue heart" too
    new = f"{colour} {' '.join(words)}" if words else colour
    return f"{'an' if new[0] in 'aeiou' else 'a'} {new}"


def _hsv(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r, g, b = rgb.unbind(1)
    maxc, _ = rgb.max(1)
    minc, _ = rgb.min(1)
    delta = maxc - minc
    s = torch.where(maxc > 0, delta / maxc.clamp(min=1e-6), torch.zeros_like(maxc))
    d = delta.clamp(min=1e-6)
    h = torch.where(maxc == r, (g - b) / d, torch.where(maxc == g, 2 + (b - r) / d, 4 + (r - g) / d))
    return (h / 6) % 1.0, s, maxc


def _rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], dim=1)
    v = v.unsqueeze(1)
    return v - v * s.unsqueeze(1) * torch.clamp(torch.minimum(k, 4 - k), 0, 1)


def saturated_share(x: torch.Tensor) -> torch.Tensor:
    """Share of each image's opaque pixels that carry a colour (s > 0.25, v > 0.25); x (B, 4, H, W) in [-1, 1]."""
    u = (x + 1) / 2
    a = u[:, 3]
    _, s, v = _hsv((u[:, :3] / u[:, 3:4].clamp(min=1e-4)).clamp(0, 1))
    opaque = a > 0.5
    coloured = opaque & (s > 0.25) & (v > 0.25)
    return coloured.flatten(1).sum(1) / opaque.flatten(1).sum(1).clamp(min=1)


def recolour(x: torch.Tensor, colours: list[str]) -> torch.Tensor:
    """Redraw premultiplied RGBA images in [-1, 1] (B, 4, H, W) so their coloured parts read as ``colours[i]``.

    The dominant hue (saturation-weighted circular mean of the coloured pixels) is turned to the target hue, so
    a multi-coloured emoji keeps its internal contrast; pink, brown, black and white also move saturation and
    value. Alpha is untouched.
    """
    u = (x + 1) / 2
    a = u[:, 3:4]
    h, s, v = _hsv((u[:, :3] / a.clamp(min=1e-4)).clamp(0, 1))  # each (B, H, W)
    weight = s * (s > 0.25) * (v > 0.25) * (a[:, 0] > 0.5)
    angle = h * 2 * torch.pi
    dominant = torch.atan2((weight * angle.sin()).sum((1, 2)), (weight * angle.cos()).sum((1, 2))) / (2 * torch.pi)
    out_h, out_s, out_v = [], [], []
    for i, colour in enumerate(colours):
        hue, s_scale, s_floor, v_scale, v_offset = RECOLOURS[colour]
        keep = s[i] <= 0.2  # greys, outlines, highlights
        offset = (h[i] - dominant[i] + 0.5) % 1.0 - 0.5  # signed distance from the dominant hue, in turns
        hi = h[i] if hue is None else (hue + HUE_SPREAD * offset) % 1.0
        si = torch.maximum(s[i] * s_scale, torch.full_like(s[i], s_floor))
        vi = v[i] * v_scale + v_offset
        out_h.append(torch.where(keep, h[i], hi))
        out_s.append(torch.where(keep, s[i], si))
        out_v.append(torch.where(keep, v[i], vi.clamp(0, 1)))
    rgb = _rgb(torch.stack(out_h), torch.stack(out_s), torch.stack(out_v))
    return torch.cat([rgb * a, a], dim=1) * 2 - 1


def colour_name(r: float, g: float, b: float) -> str | None:
    """One pixel's colour word (r, g, b in [0, 1]); None for greys, which count for no colour."""
    h, s, v = colorsys.rgb_to_hsv(r, g, b)
    hue = h * 360
    if v < 0.22:
        return "black"
    if s < 0.18:
        return "white" if v > 0.8 else None
    if 15 <= hue < 45 and v < 0.62:
        return "brown"
    if hue < 12 or hue >= 340:
        return "pink" if s < 0.45 and v > 0.75 else "red"
    if hue < 40:
        return "orange"
    if hue < 70:
        return "yellow"
    if hue < 165:
        return "green"
    if hue < 255:
        return "blue"
    if hue < 290:
        return "purple"
    return "pink"


def dominant_colour(img: Image) -> str | None:
    """The colour word most of the image's opaque pixels have (None if they are all grey)."""
    a = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
    opaque = a[..., 3] > 0.5
    counts: dict[str, int] = {}
    for r, g, b in a[opaque][:, :3]:
        name = colour_name(float(r), float(g), float(b))
        if name is not None:
            counts[name] = counts.get(name, 0) + 1
    return max(counts, key=lambda k: counts[k]) if counts else None
