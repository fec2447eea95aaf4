"""An edit's further input images are the embedded model's references (``GenerationParams.reference_images``).

The first input image is the image edited (``init_image``); the others take the place of the k reference images
the model would otherwise retrieve for the prompt's concept (engine._given_references).

Measured on the pixels drawn (the index's red heart edited with the prompt "a heart", which names no colour, so no
reference is recoloured; strength 0.7, 20 steps): with two blue stars as references every image comes out bluer
than with two red hearts, by 31 to 48 in (blue - red) of the alpha-weighted mean colour (0-255 scale) over seeds
1000-1007 and 2000-2007, and 27 to 42 bluer than with the retrieved references. The edit still reads as a red heart
(the init dominates at 0.7), and the shape barely moves (the alpha mask's overlap with a star grows by 0.004-0.022),
so only the colour is asserted, with a margin well under the measured gains.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from imageforge.engines.embedded.colours import dominant_colour, recolour
from imageforge.engines.embedded.engine import EmbeddedEngine
from imageforge.engines.embedded.references import image_tile
from imageforge.imaging.canvas import premultiplied_to_image
from imageforge.params import GenerationParams

SEEDS = 8
REQUIRED = 6
MARGIN = 15.0  # (blue - red) gained with blue references, 0-255 scale; measured 31-48


def mean_colour(img: Image.Image) -> tuple[float, float, float]:
    a = np.asarray(img.convert("RGBA"), dtype=np.float64)
    w = a[..., 3:4] / 255.0
    r, g, b = (a[..., :3] * w).sum(axis=(0, 1)) / max(float(w.sum()), 1e-6)
    return float(r), float(g), float(b)


def blueness(img: Image.Image) -> float:
    r, _, b = mean_colour(img)
    return b - r


def same(a: Image.Image, b: Image.Image) -> bool:
    return np.array_equal(np.asarray(a), np.asarray(b))


@pytest.fixture(scope="module")
def engine(embedded_engine: EmbeddedEngine) -> EmbeddedEngine:
    if not embedded_engine.config.reference_images:
        pytest.skip("text-only embedded weights: no references to give")
    return embedded_engine


def _tiles(engine: EmbeddedEngine, label: str) -> list[Image.Image]:
    """The index's images of a concept, as straight-alpha RGBA images (what a client would upload)."""
    index = engine._references
    own = np.flatnonzero(index.image_concept == index.labels.index(label))
    return [premultiplied_to_image(index.images[i] / 255.0) for i in own]


def _in_colour(img: Image.Image, colour: str) -> Image.Image:
    x = torch.from_numpy(image_tile(img, img.width)).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    y = recolour(x, [colour])[0]
    return premultiplied_to_image(((y + 1) / 2).permute(1, 2, 0).numpy())


@pytest.fixture(scope="module")
def red_heart(engine: EmbeddedEngine) -> Image.Image:
    img = _tiles(engine, "red heart")[0]
    assert dominant_colour(img) == "red"
    return img


@pytest.fixture(scope="module")
def blue_stars(engine: EmbeddedEngine) -> tuple[Image.Image, ...]:
    stars = tuple(_in_colour(im, "blue") for im in _tiles(engine, "star")[:2])
    assert [dominant_colour(im) for im in stars] == ["blue", "blue"]
    return stars


@pytest.fixture(scope="module")
def red_hearts(engine: EmbeddedEngine) -> tuple[Image.Image, ...]:
    hearts = tuple(_tiles(engine, "red heart")[:2])
    assert [dominant_colour(im) for im in hearts] == ["red", "red"]
    return hearts


def _edit(
    engine: EmbeddedEngine, init: Image.Image, refs: tuple[Image.Image, ...], n: int = SEEDS, prompt: str = "a heart"
) -> GenerationParams:
    size = engine.config.image_size
    return GenerationParams(prompt=prompt, width=size, height=size, steps=20, seed=1000, n=n, background="transparent",
                            init_image=init, strength=0.7, reference_images=refs)  # fmt: skip


@pytest.fixture(scope="module")
def blue_edit(
    engine: EmbeddedEngine, red_heart: Image.Image, blue_stars: tuple[Image.Image, ...]
) -> tuple[Image.Image, ...]:
    """The red heart edited with the blue stars as references, 8 seeds (made once for the tests below)."""
    return engine.generate([_edit(engine, red_heart, blue_stars)])[0].images


def test_an_edit_may_send_the_image_and_k_references(embedded_engine: EmbeddedEngine) -> None:
    assert embedded_engine.capabilities.input_images == 1 + embedded_engine.config.reference_images


def test_references_need_an_init_image() -> None:
    img = Image.new("RGBA", (32, 32), (0, 0, 255, 255))
    with pytest.raises(ValueError, match="init_image"):
        GenerationParams(prompt="a star", width=32, height=32, steps=4, seed=0, reference_images=(img,))
    p = GenerationParams(prompt="a star", width=32, height=32, steps=4, seed=0, init_image=img,
                         reference_images=[img])  # type: ignore[arg-type]  # fmt: skip
    assert p.reference_images == (img,)  # a list is stored as a tuple: the params stay immutable


def test_references_change_the_edit_and_stay_deterministic(
    engine: EmbeddedEngine,
    red_heart: Image.Image,
    blue_stars: tuple[Image.Image, ...],
    blue_edit: tuple[Image.Image, ...],
) -> None:
    plain = engine.generate([_edit(engine, red_heart, ())])[0].images
    again = engine.generate([_edit(engine, red_heart, blue_stars)])[0].images
    assert all(same(a, b) for a, b in zip(blue_edit, again, strict=True))
    diffs = [
        np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).mean() for a, b in zip(plain, again, strict=True)
    ]
    assert min(diffs) > 1.0, diffs  # mean absolute difference per channel, 0-255; measured 5.8-7.7


def test_the_colour_follows_the_references(
    engine: EmbeddedEngine,
    red_heart: Image.Image,
    red_hearts: tuple[Image.Image, ...],
    blue_edit: tuple[Image.Image, ...],
) -> None:
    red = engine.generate([_edit(engine, red_heart, red_hearts)])[0].images
    gains = [blueness(a) - blueness(b) for a, b in zip(blue_edit, red, strict=True)]
    hits = sum(g > MARGIN for g in gains)
    assert hits >= REQUIRED, f"{hits}/{SEEDS} edits are bluer with blue references; gains {gains}"


def test_given_references_take_the_retrieved_ones_place(engine: EmbeddedEngine, red_heart: Image.Image) -> None:
    """Giving exactly the images retrieval would pick (in its order) draws the same image as not giving any: the
    given ones are converted like the index's tiles and fill the same slots. One image given fills all k."""
    index, k = engine._references, engine.config.reference_images
    picks = index.pick(engine._concept("a heart"), 1000, k)
    retrieved = tuple(premultiplied_to_image(index.images[i] / 255.0) for i in picks)
    plain = engine.generate([_edit(engine, red_heart, (), n=1)])[0].images[0]
    given = engine.generate([_edit(engine, red_heart, retrieved, n=1)])[0].images[0]
    assert same(plain, given)
    one = retrieved[:1]
    cycled = engine.generate([_edit(engine, red_heart, one, n=1)])[0].images[0]
    repeated = engine.generate([_edit(engine, red_heart, one * k, n=1)])[0].images[0]
    assert same(cycled, repeated)


def test_references_of_any_size_are_area_averaged_to_the_tile(engine: EmbeddedEngine) -> None:
    """A big upload is reduced to its centred square's area average, premultiplied: a 100x80 image, half opaque
    blue on the left, becomes a 32 px tile whose left half is blue and right half transparent (zero colour)."""
    img = Image.new("RGBA", (100, 80), (255, 0, 0, 0))  # transparent red: must not bleed into the average
    img.paste((0, 0, 255, 255), (0, 0, 50, 80))
    tile = image_tile(img, engine.config.image_size)
    half = engine.config.image_size // 2
    assert tile.shape == (engine.config.image_size, engine.config.image_size, 4)
    assert (tile[:, : half - 1] == (0, 0, 255, 255)).all()
    assert (tile[:, half + 1 :] == 0).all()


def test_too_many_references_are_refused(engine: EmbeddedEngine, red_heart: Image.Image) -> None:
    refs = (red_heart,) * (engine.config.reference_images + 1)
    with pytest.raises(ValueError, match="at most"):
        engine.generate([_edit(engine, red_heart, refs, n=1)])


def test_references_batch_like_single_requests(
    engine: EmbeddedEngine, red_heart: Image.Image, blue_stars: tuple[Image.Image, ...]
) -> None:
    """Each row's references come from its own request only: batched with a request that retrieves its own (and
    one that names a colour, so its references are recoloured), every image equals the same image made alone."""
    batch = [
        _edit(engine, red_heart, blue_stars, n=2),
        _edit(engine, red_heart, (), n=2, prompt="a cat"),
        _edit(engine, red_heart, blue_stars[:1], n=1, prompt="a green heart"),
    ]
    together = engine.generate(batch)
    alone = [engine.generate([p])[0] for p in batch]
    for a, b in zip(together, alone, strict=True):
        assert len(a.images) == len(b.images)
        assert all(same(x, y) for x, y in zip(a.images, b.images, strict=True))
