"""The shipped embedded model follows colour words (acceptance of issue 2): measured on the pixels it draws.

For each prompt, 8 seeds at the model's native size; the colour of an image is the alpha-weighted mean of its
pixels (transparent background excluded). A "red" image has red clearly above green and blue, a "blue" one blue
above both. Most seeds must agree: the model is small, and a single odd seed is not a failure of the property.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image

from imageforge.engines.embedded.colours import dominant_colour
from imageforge.engines.embedded.engine import EmbeddedEngine
from imageforge.params import GenerationParams

SEEDS = 8
REQUIRED = 6


def mean_colour(img: Image.Image) -> tuple[float, float, float]:
    a = np.asarray(img.convert("RGBA"), dtype=np.float64)
    w = a[..., 3:4] / 255.0
    r, g, b = (a[..., :3] * w).sum(axis=(0, 1)) / max(float(w.sum()), 1e-6)
    return float(r), float(g), float(b)


def is_red(c: tuple[float, float, float]) -> bool:
    r, g, b = c
    return r > g + 40 and r > b + 40


def is_blue(c: tuple[float, float, float]) -> bool:
    r, g, b = c
    return b > r + 20 and b > g + 10


@pytest.fixture
def engine(embedded_engine: EmbeddedEngine) -> EmbeddedEngine:
    return embedded_engine


@pytest.mark.parametrize(
    "prompt,check,opposite",
    [("a red heart", is_red, is_blue), ("a blue heart", is_blue, is_red)],
)
def test_colour_words_are_followed(
    engine: EmbeddedEngine,
    prompt: str,
    check: Callable[[tuple[float, float, float]], bool],
    opposite: Callable[[tuple[float, float, float]], bool],
) -> None:
    size = engine.config.image_size
    p = GenerationParams(prompt=prompt, width=size, height=size, steps=20, seed=100, n=SEEDS, background="transparent")
    colours = [mean_colour(im) for im in engine.generate([p])[0].images]
    hits = sum(check(c) for c in colours)
    assert hits >= REQUIRED, f"{prompt!r}: {hits}/{SEEDS} images have the colour; means {colours}"
    assert not any(opposite(c) for c in colours), f"{prompt!r}: an image has the opposite colour: {colours}"


@pytest.mark.parametrize("colour", ["orange", "yellow", "green", "purple", "pink", "brown", "black", "white"])
def test_every_colour_word_colours_an_object_that_is_never_that_colour(engine: EmbeddedEngine, colour: str) -> None:
    """Issue 5's attribute binding: "a <colour> balloon" (the art has only red balloons) has that colour in most
    seeds."""
    size = engine.config.image_size
    p = GenerationParams(prompt=f"a {colour} balloon", width=size, height=size, steps=10, seed=300, n=4,
                         background="transparent")  # fmt: skip
    words = [dominant_colour(im) for im in engine.generate([p])[0].images]
    assert words.count(colour) >= 3, words
