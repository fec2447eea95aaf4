"""The diffusers engine on a CUDA GPU in half precision: text-to-image, image-to-image, inpainting, previews,
batch == single, cancellation. The toy SD-Turbo-shaped pipeline (``pipelines.py``) has random weights, so the
images are noise-like: the tests check what the engine promises (sizes, modes, finite and varied pixels, kept
pixels, step counts), never what a picture shows.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imageforge.engines.diffusers import DiffusersEngine
from imageforge.errors import GenerationCancelled
from imageforge.params import GenerationParams, StepPreview
from tests.gpu.common import DEVICE, HALF_DTYPES, mean_diff, pixels

pytestmark = pytest.mark.gpu

SIDE = 512  # the pipeline's native size
WIDE = (512, 384)  # a non-square size (width, height), a multiple of 8
STEPS = 4
# Batch vs alone, and one run vs the next, on the 0-255 scale (mean over all pixels). On a GPU the same image made
# in a batch of 3 and alone goes through different kernels (cuBLAS and cuDNN pick tiles and algorithms by batch
# size), whose half-precision roundings differ; exact equality holds on the CPU in fp32 (tests/engines), not here.
# bfloat16 keeps 3 fewer mantissa bits than float16, so its roundings are up to 8x coarser.
MEAN_TOLERANCE = {"float16": 2.0, "bfloat16": 3.0}


@pytest.fixture(scope="module", params=HALF_DTYPES)
def engine(request: pytest.FixtureRequest, sd_turbo_small: Path) -> Iterator[DiffusersEngine]:
    e = DiffusersEngine(str(sd_turbo_small), device=DEVICE, dtype=request.param, max_batch=4)
    e.load()
    yield e
    e.close()


def params(**kw: object) -> GenerationParams:
    base: dict[str, object] = {"prompt": "a red apple", "width": SIDE, "height": SIDE, "steps": STEPS, "seed": 1234}
    base.update(kw)
    return GenerationParams(**base)  # type: ignore[arg-type]


def init_image(width: int, height: int) -> Image.Image:
    img = Image.new("RGB", (width, height), (30, 140, 220))
    img.paste((250, 210, 20), (width // 4, height // 4, 3 * width // 4, 3 * height // 4))
    return img


def assert_varied(img: Image.Image) -> None:
    """Not one flat colour: a pipeline whose half-precision maths overflowed gives black or saturated images."""
    px = pixels(img)
    assert px.std() > 5.0, f"an almost constant image (std {px.std():.2f}, mean {px.mean():.1f})"


def test_loads_on_the_gpu_in_the_asked_dtype(engine: DiffusersEngine) -> None:
    import torch

    expected = getattr(torch, engine.dtype)
    for name in ("unet", "vae", "text_encoder"):
        module = getattr(engine._t2i, name)
        assert module.device.type == DEVICE and module.dtype == expected, (name, module.device, module.dtype)
    caps = engine.capabilities
    assert caps.img2img and caps.inpaint, "load() finds SD's image-to-image and inpainting variants"
    assert caps.max_batch == 4 and caps.alpha == "matte" and caps.size_multiple == 8
    assert caps.native_resolutions == ((512, 512),)


def test_the_pipeline_gives_finite_pixels_in_half_precision(engine: DiffusersEngine) -> None:
    """The pipeline's own float output, before the engine turns it into 8-bit images (where NaN or inf would be
    hidden, or fail as a numpy cast warning with a less telling message)."""
    import torch

    out = engine._t2i(
        prompt=["a red apple"], num_inference_steps=STEPS, height=SIDE, width=SIDE,
        generator=[torch.Generator("cpu").manual_seed(5)], output_type="np",
    ).images  # fmt: skip
    assert out.shape == (1, SIDE, SIDE, 3)
    assert np.isfinite(out).all(), "non-finite pixels: the half-precision pipeline overflowed"


def test_text_to_image(engine: DiffusersEngine) -> None:
    width, height = WIDE
    result = engine.generate([params(width=width, height=height, seed=3, n=2)])[0]
    assert result.seeds == (3, 4) and result.steps == STEPS and len(result.images) == 2
    for img in result.images:
        assert img.size == (width, height) and img.mode == "RGB"
        assert_varied(img)
    assert mean_diff(*result.images) > 10, "image i is drawn from seed + i: the two differ"
    transparent = engine.generate([params(background="transparent")])[0].images[0]
    assert transparent.size == (SIDE, SIDE) and transparent.mode == "RGBA"


def test_image_to_image(engine: DiffusersEngine) -> None:
    seen: list[int] = []
    p = params(steps=8, strength=0.5, init_image=init_image(SIDE, SIDE), seed=5)
    img = engine.generate([p], on_step=lambda st: seen.append(st.step))[0].images[0]
    assert img.size == (SIDE, SIDE) and img.mode == "RGB"
    assert seen == [1, 2, 3, 4], "strength 0.5 runs half of the 8 steps"
    assert_varied(img)


def test_inpainting_keeps_the_unmasked_pixels_exactly(engine: DiffusersEngine) -> None:
    width, height = WIDE
    init = init_image(width, height)
    mask = Image.new("L", (width, height), 0)
    mask.paste(255, (0, 0, width // 2, height))  # repaint the left half
    img = engine.generate([params(width=width, height=height, init_image=init, mask=mask, seed=8)])[0].images[0]
    assert img.size == (width, height) and img.mode == "RGB"
    out, src = np.asarray(img), np.asarray(init)
    # The engine puts the original's own bytes back outside the mask (DiffusersEngine._finish): the VAE round
    # trip, in half precision, changes every pixel it decodes.
    assert np.array_equal(out[:, width // 2 :], src[:, width // 2 :]), "unmasked pixels must be the original's"
    repainted = np.abs(out[:, : width // 2].astype(np.int16) - src[:, : width // 2]).mean()
    assert repainted > 10, f"the masked half must be generated (mean difference {repainted:.1f})"


@pytest.mark.parametrize("decoder", ["latent", "vae"])
def test_previews_at_every_step_at_the_requested_size(sd_turbo_small: Path, engine: DiffusersEngine,
                                                      decoder: str) -> None:  # fmt: skip
    if decoder == "latent":
        e, own = engine, False  # "auto" without a tiny decoder: the linear latent-to-RGB map fitted at load
    else:
        e, own = DiffusersEngine(str(sd_turbo_small), device=DEVICE, dtype=engine.dtype, preview_decoder="vae"), True
        e.load()
    try:
        width, height = WIDE
        events: list[tuple[int, int]] = []
        first: list[list[Image.Image]] = []
        second: list[list[Image.Image]] = []

        def on_step(st: StepPreview) -> None:
            events.append((st.step, st.total_steps))
            first.append(st.preview(0))
            second.append(st.preview(1))

        batch = [params(width=width, height=height, n=2, seed=1), params(width=width, height=height, seed=9)]
        results = e.generate(batch, on_step=on_step)
        assert events == [(i, STEPS) for i in range(1, STEPS + 1)]
        assert [len(imgs) for imgs in first] == [2] * STEPS and [len(imgs) for imgs in second] == [1] * STEPS
        for img in (im for imgs in first + second for im in imgs):
            assert img.size == (width, height) and img.mode == "RGB"
        assert [len(r.images) for r in results] == [2, 1]
    finally:
        if own:
            e.close()


def test_a_batch_gives_the_images_each_request_gives_alone(engine: DiffusersEngine) -> None:
    tolerance = MEAN_TOLERANCE[engine.dtype]
    batch = [params(prompt="a red apple", seed=11), params(prompt="a blue car", seed=500),
             params(prompt="a green field", seed=90001)]  # fmt: skip
    together = engine.generate(batch)
    for p, batched in zip(batch, together, strict=True):
        alone = engine.generate([p])[0]
        assert batched.seeds == alone.seeds == (p.seed,)
        diff = mean_diff(batched.images[0], alone.images[0])
        assert diff <= tolerance, f"seed {p.seed}: batched and alone differ by {diff:.3f} on average"
    # The tolerance is far below what a different seed changes, so the comparison means something.
    assert mean_diff(together[0].images[0], together[1].images[0]) > 5 * tolerance


def test_cancellation_mid_run_and_the_engine_serves_afterwards(engine: DiffusersEngine) -> None:
    p = params(steps=6, seed=21)
    before = engine.generate([p])[0].images[0]
    seen: list[int] = []
    with pytest.raises(GenerationCancelled, match="after 2 step"):
        engine.generate([p], on_step=lambda st: seen.append(st.step), cancelled=lambda: len(seen) >= 2)
    assert seen == [1, 2], "the engine stops at the first step boundary after the cancellation"
    # The pipeline's interrupt flag and the scheduler's state do not leak into the next call.
    after_steps: list[int] = []
    after = engine.generate([p], on_step=lambda st: after_steps.append(st.step))[0].images[0]
    assert after_steps == [1, 2, 3, 4, 5, 6]
    assert mean_diff(before, after) <= MEAN_TOLERANCE[engine.dtype]
