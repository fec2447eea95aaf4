"""The embedded engine: the engine contract on the shipped weights, plus what only it promises."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from imageforge.engines.embedded.engine import EmbeddedEngine
from imageforge.params import GenerationParams
from tests.engines.contract import EngineContract, max_diff


@pytest.fixture
def engine(embedded_engine: EmbeddedEngine) -> EmbeddedEngine:
    return embedded_engine


class TestEmbeddedContract(EngineContract):
    size = (64, 64)
    other_sizes = ((96, 64), (64, 96), (33, 17))


def test_capabilities_are_data(engine: EmbeddedEngine) -> None:
    caps = engine.capabilities
    assert caps.alpha == "native" and caps.img2img and caps.inpaint
    assert caps.quality_steps == {"low": 10, "medium": 20, "high": 30, "xhigh": 45, "max": 60}
    assert caps.native_resolutions == ((engine.config.image_size, engine.config.image_size),)


def test_non_square_sizes_keep_the_art_square(engine: EmbeddedEngine) -> None:
    p = GenerationParams(prompt="a red heart", width=96, height=32, steps=6, seed=3, background="transparent")
    img = engine.generate([p])[0].images[0]
    alpha = np.asarray(img.getchannel("A"))
    # The square art fills the centred 32x32 region; the margins are transparent, not stretched art.
    assert alpha[:, :32].max() == 0 and alpha[:, 64:].max() == 0


def test_img2img_stays_close_to_the_init_image(engine: EmbeddedEngine) -> None:
    init = Image.new("RGB", (64, 64), (20, 120, 230))
    near = GenerationParams(prompt="a red heart", width=64, height=64, steps=10, seed=5, init_image=init, strength=0.3)
    free = GenerationParams(prompt="a red heart", width=64, height=64, steps=10, seed=5)
    img2img = np.asarray(engine.generate([near])[0].images[0], dtype=float)
    text2img = np.asarray(engine.generate([free])[0].images[0], dtype=float)
    target = np.asarray(init, dtype=float)
    assert np.abs(img2img - target).mean() < np.abs(text2img - target).mean()


def test_long_prompts_report_what_the_encoder_saw(engine: EmbeddedEngine) -> None:
    prompt = "a red apple " + "on a wooden table " * 20
    p = GenerationParams(prompt=prompt, width=32, height=32, steps=2, seed=1)
    used = engine.generate([p])[0].prompt
    assert prompt.startswith(used) and 10 < len(used) < len(prompt)
    short = GenerationParams(prompt="a red apple", width=32, height=32, steps=2, seed=1)
    assert engine.generate([short])[0].prompt == "a red apple"


def test_guidance_changes_the_image(engine: EmbeddedEngine) -> None:
    a = engine.generate([GenerationParams(prompt="a star", width=32, height=32, steps=6, seed=1)])[0]
    b = engine.generate([GenerationParams(prompt="a star", width=32, height=32, steps=6, seed=1, guidance_scale=1.0)])[
        0
    ]
    assert max_diff(a.images[0], b.images[0]) > 5


def test_inpainting_outside_the_drawn_square_keeps_the_original(engine: EmbeddedEngine) -> None:
    init = Image.new("RGB", (96, 32), (20, 120, 230))
    mask = Image.new("L", (96, 32), 255)  # everything masked, but the model draws only the centred 32x32
    p = GenerationParams(prompt="a red heart", width=96, height=32, steps=6, seed=2, init_image=init, mask=mask)
    out = np.asarray(engine.generate([p])[0].images[0])
    assert (out[:, :32] == (20, 120, 230)).all() and (out[:, 64:] == (20, 120, 230)).all()
    assert np.abs(out[:, 32:64].astype(int) - (20, 120, 230)).max() > 10


def test_negative_prompts_change_the_image_and_keep_batches_apart(engine: EmbeddedEngine) -> None:
    plain = GenerationParams(prompt="a heart", width=32, height=32, steps=6, seed=4)
    negative = GenerationParams(prompt="a heart", width=32, height=32, steps=6, seed=4, negative_prompt="red")
    assert plain.batch_key() != negative.batch_key()
    a = engine.generate([plain])[0].images[0]
    b = engine.generate([negative])[0].images[0]
    assert max_diff(a, b) > 5


def _mean_diff(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32)).mean())


def test_an_animation_walks_smoothly_through_noise_from_the_still_image(engine: EmbeddedEngine) -> None:
    """Frames of one loop: frame 0 is the still image of the seed, neighbours are closer than opposite frames,
    and the last frame leads back to the first (a loop has no jump); batching changes nothing."""
    common = {"prompt": "a red apple", "width": 64, "height": 64, "steps": 8, "seed": 11}
    still = engine.generate([GenerationParams(**common)])[0].images[0]
    walk = GenerationParams(**common, n=8, animation=True)
    frames = engine.generate([walk])[0].images
    assert len(frames) == 8
    assert max_diff(frames[0], still) == 0
    near = [_mean_diff(frames[i], frames[(i + 1) % 8]) for i in range(8)]
    far = [_mean_diff(frames[i], frames[(i + 4) % 8]) for i in range(8)]
    assert max(near) > 0, "the frames move"
    assert sum(near) / 8 < sum(far) / 8, (near, far)
    plain = GenerationParams(**{**common, "seed": 3}, n=2)
    batched = engine.generate([walk, plain])
    assert all(max_diff(a, b) == 0 for a, b in zip(batched[0].images, frames, strict=True))
    assert max_diff(batched[1].images[1], engine.generate([plain])[0].images[1]) == 0


def test_the_svg_of_a_drawing_resembles_the_drawing(engine: EmbeddedEngine) -> None:
    """output_format svg traces the engine's flat art: rendered back (resvg), it is close to the raster."""
    import io

    import resvg_py

    from imageforge.imaging.encode import encode

    image = engine.generate([GenerationParams(prompt="a red apple", width=256, height=256, steps=8, seed=5)])[0]
    raster = image.images[0].convert("RGB")
    errors = {}
    for detail in ("low", "medium", "high"):
        svg = encode(raster, "svg", svg_detail=detail).decode("utf-8")
        back = Image.open(io.BytesIO(bytes(resvg_py.svg_to_bytes(svg_string=svg, width=256, height=256))))
        errors[detail] = _mean_diff(back.convert("RGB"), raster)
    assert errors["high"] <= errors["low"] + 0.5, errors
    assert errors["medium"] < 12, errors  # mean error out of 255 per channel, measured ~5-9 on this art
