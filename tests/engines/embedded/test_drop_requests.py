"""Dropping single requests from a running embedded batch (``request_cancelled``, ``drops_requests``).

A dropped request's rows leave the network's batch at the next step boundary and later passes skip it; the
other requests' images stay what they are alone. Compared images allow ``TOLERANCE`` (0-255 per channel, i.e.
2/255 in float terms): the network then runs on fewer rows than in the reference run, and a different batch size
may pick different conv/matmul blockings whose float rounding can flip an 8-bit value by one or two (the same
allowance as the engine contract's batched == alone); a request that leaked into the others' rows, or a wrongly
sliced sampler/scheduler state, changes images by far more.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from imageforge.engines.embedded.engine import EmbeddedEngine
from imageforge.engines.embedded.sampler import Sampler
from imageforge.errors import GenerationCancelled
from imageforge.params import GenerationParams, GenerationResult, StepPreview
from tests.engines.embedded.toy import embedding, toy_sampler

TOLERANCE = 2
STEPS = 8


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGBA"), dtype=np.int16)


def assert_same_images(got: GenerationResult, want: GenerationResult) -> None:
    assert len(got.images) == len(want.images) > 0
    assert got.seeds == want.seeds
    for a, b in zip(got.images, want.images, strict=True):
        assert np.allclose(pixels(a), pixels(b), rtol=0, atol=TOLERANCE)


def params(prompt: str, seed: int, **kw: Any) -> GenerationParams:
    size = kw.pop("size", 32)  # the shipped model's native resolution
    return GenerationParams(prompt=prompt, width=size, height=size, steps=kw.pop("steps", STEPS), seed=seed, **kw)


@pytest.fixture
def engine(embedded_engine: EmbeddedEngine) -> EmbeddedEngine:
    return embedded_engine


@pytest.fixture
def unet_rows(embedded_engine: EmbeddedEngine) -> Iterator[list[int]]:
    """Batch size of every UNet call (the doubled CFG batch: 2 rows per image) while the test runs."""
    rows: list[int] = []
    hook = embedded_engine._sampler.unet.register_forward_pre_hook(lambda _m, args: rows.append(args[0].shape[0]))
    yield rows
    hook.remove()


class Steps:
    """Records the step callbacks; ``cancel(request, at_step)`` builds a ``request_cancelled`` from them."""

    def __init__(self, preview_of: tuple[int, ...] = ()) -> None:
        self.events: list[tuple[int, int]] = []
        self.previews: list[dict[int, int]] = []  # per step: request -> number of preview images
        self.preview_of = preview_of

    def __call__(self, st: StepPreview) -> None:
        self.events.append((st.step, st.total_steps))
        self.previews.append({r: len(st.preview(r)) for r in self.preview_of})

    def cancel(self, requests: set[int], at_step: int) -> Callable[[int], bool]:
        return lambda r: r in requests and len(self.events) >= at_step


def test_the_engine_declares_it(engine: EmbeddedEngine) -> None:
    assert engine.capabilities.drops_requests


def test_a_dropped_request_stops_and_the_others_are_unchanged(engine: EmbeddedEngine, unet_rows: list[int]) -> None:
    batch = [params("a red apple", 11), params("a blue car", 22), params("a green tree", 33, n=2)]
    steps = Steps(preview_of=(0, 1, 2))
    results = engine.generate(batch, on_step=steps, request_cancelled=steps.cancel({1}, at_step=3))
    assert len(results) == 3
    assert results[1].images == () and results[1].seeds == (22,)
    # Steps 1-3 ran all four images (8 rows with CFG), steps 4-8 only the three still wanted.
    assert unet_rows == [8] * 3 + [6] * (STEPS - 3)
    assert steps.events == [(i, STEPS) for i in range(1, STEPS + 1)]
    assert steps.previews[2] == {0: 1, 1: 1, 2: 2}
    assert all(p == {0: 1, 1: 0, 2: 2} for p in steps.previews[3:])
    for got, p in zip((results[0], results[2]), (batch[0], batch[2]), strict=True):
        assert_same_images(got, engine.generate([p])[0])


def test_dropping_more_requests_at_different_steps(engine: EmbeddedEngine, unet_rows: list[int]) -> None:
    batch = [params("a red apple", 1, n=2), params("a blue car", 2), params("a yellow star", 3), params("a cat", 4)]
    steps = Steps()
    first, second = steps.cancel({0}, at_step=2), steps.cancel({3}, at_step=5)
    results = engine.generate(batch, on_step=steps, request_cancelled=lambda r: first(r) or second(r))
    assert [len(r.images) for r in results] == [0, 1, 1, 0]
    assert unet_rows == [10] * 2 + [6] * 3 + [4] * (STEPS - 5)
    for r in (1, 2):
        assert_same_images(results[r], engine.generate([batch[r]])[0])


def test_later_passes_skip_dropped_requests(engine: EmbeddedEngine, unet_rows: list[int]) -> None:
    """max_batch 2 cuts the batch into passes [A0, B0], [B1, B2], [C0]: B dropped in the first pass leaves it,
    its own pass never runs, C's runs as before; the step count covers only the steps that run."""
    small = copy.copy(engine)  # shares the loaded model
    small._caps = dataclasses.replace(engine.capabilities, max_batch=2)
    batch = [params("a red apple", 5), params("a blue car", 6, n=3), params("a green tree", 7)]
    steps = Steps(preview_of=(0, 2))
    results = small.generate(batch, on_step=steps, request_cancelled=steps.cancel({1}, at_step=3))
    assert [len(r.images) for r in results] == [1, 0, 1]
    assert unet_rows == [4] * 3 + [2] * (STEPS - 3) + [2] * STEPS
    # Three passes were planned (24 steps); once B is gone only A's rest and C's pass are left (16 steps).
    assert steps.events == [(i, 3 * STEPS) for i in (1, 2, 3)] + [(i, 2 * STEPS) for i in range(4, 2 * STEPS + 1)]
    assert steps.previews[STEPS] == {0: 1, 2: 1}  # C's first step: A is finished, C in flight
    for r in (0, 2):
        assert_same_images(results[r], engine.generate([batch[r]])[0])


def test_a_later_pass_starts_without_dropped_rows(engine: EmbeddedEngine, unet_rows: list[int]) -> None:
    small = copy.copy(engine)
    small._caps = dataclasses.replace(engine.capabilities, max_batch=2)
    batch = [params("a red apple", 5), params("a blue car", 6, n=2), params("a green tree", 7)]  # [A0, B0], [B1, C0]
    steps = Steps()
    results = small.generate(batch, on_step=steps, request_cancelled=steps.cancel({1}, at_step=2))
    assert [len(r.images) for r in results] == [1, 0, 1]
    assert unet_rows == [4] * 2 + [2] * (STEPS - 2) + [2] * STEPS
    assert steps.events[-1] == (2 * STEPS, 2 * STEPS)
    assert_same_images(results[2], engine.generate([batch[2]])[0])


def test_negative_prompts_are_dropped_with_their_rows(engine: EmbeddedEngine, unet_rows: list[int]) -> None:
    """With negative prompts the unguided half has one row per image (not one broadcast row)."""
    batch = [
        params("a red apple", 8, negative_prompt="green"),
        params("a blue car", 9, negative_prompt="wheels"),
        params("a yellow star", 10, negative_prompt="sky"),
    ]
    steps = Steps()
    results = engine.generate(batch, on_step=steps, request_cancelled=steps.cancel({0}, at_step=4))
    assert [len(r.images) for r in results] == [0, 1, 1]
    assert unet_rows == [6] * 4 + [4] * (STEPS - 4)
    for r in (1, 2):
        assert_same_images(results[r], engine.generate([batch[r]])[0])


def init_image() -> Image.Image:
    img = Image.new("RGB", (32, 32), (30, 140, 220))
    img.paste((250, 210, 20), (8, 8, 24, 24))
    return img


@pytest.mark.parametrize("mode", ["img2img", "inpaint"])
def test_img2img_and_inpainting_batches(engine: EmbeddedEngine, unet_rows: list[int], mode: str) -> None:
    mask = Image.new("L", (32, 32), 0)
    mask.paste(255, (0, 0, 16, 32))
    kw: dict[str, Any] = {"init_image": init_image(), "strength": 0.75}  # 6 of the 8 steps
    if mode == "inpaint":
        kw["mask"] = mask
    batch = [params("a red apple", 12, **kw), params("a blue car", 13, n=2, **kw), params("a cat", 14, **kw)]
    steps = Steps()
    results = engine.generate(batch, on_step=steps, request_cancelled=steps.cancel({1}, at_step=2))
    assert [len(r.images) for r in results] == [1, 0, 1]
    assert unet_rows == [8] * 2 + [4] * 4
    for r in (0, 2):
        assert_same_images(results[r], engine.generate([batch[r]])[0])


def test_a_drop_at_the_last_step_still_returns_no_images(engine: EmbeddedEngine) -> None:
    batch = [params("a red apple", 15), params("a blue car", 16)]
    steps = Steps()
    results = engine.generate(batch, on_step=steps, request_cancelled=steps.cancel({0}, at_step=STEPS))
    assert results[0].images == () and len(results[1].images) == 1
    assert_same_images(results[1], engine.generate([batch[1]])[0])


def test_all_cancelled_raises(engine: EmbeddedEngine, unet_rows: list[int]) -> None:
    batch = [params("a red apple", 17), params("a blue car", 18, n=2)]
    flags = [False, False]
    steps = Steps()

    def on_step(st: StepPreview) -> None:
        steps(st)
        flags[min(len(steps.events), 2) - 1] = True  # request 0 is cancelled at step 1, request 1 at step 2

    with pytest.raises(GenerationCancelled):
        engine.generate(batch, on_step=on_step, cancelled=lambda: all(flags), request_cancelled=lambda r: flags[r])
    assert [e[0] for e in steps.events] == [1, 2]
    assert unet_rows == [6, 4]  # request 0 left after step 1
    # request_cancelled alone (no ``cancelled``) stops the call too once nothing is left.
    unet_rows.clear()
    with pytest.raises(GenerationCancelled):
        engine.generate(batch, request_cancelled=lambda r: len(unet_rows) >= 3)
    assert len(unet_rows) == 3
    # ... and the engine keeps serving afterwards.
    assert len(engine.generate([batch[1]])[0].images) == 2


def test_without_request_cancelled_nothing_changes(engine: EmbeddedEngine, unet_rows: list[int]) -> None:
    batch = [params("a red apple", 19), params("a blue car", 20)]
    results = engine.generate(batch)
    assert [len(r.images) for r in results] == [1, 1] and unet_rows == [4] * STEPS


# -- the sampler itself, on a random-weight toy UNet (as tests/engines/embedded/test_sampler.py) --------------


@pytest.fixture(scope="module")
def toy() -> Sampler:
    return toy_sampler()


def run_dropping(sampler: Sampler, drops: dict[int, list[int]], **kw: Any) -> list[torch.Tensor]:
    """Every step's sample; after step ``s`` in ``drops`` the sampler keeps only those rows."""
    run = sampler.run(**kw)
    out, keep = [], None
    while True:
        try:
            st = run.send(keep)
        except StopIteration:
            return out
        out.append(st.sample)
        keep = drops.get(st.step)


@pytest.mark.parametrize("uncond_rows", [1, 3])
@pytest.mark.parametrize("mode", ["text2img", "inpaint"])
def test_sampler_keeps_rows_as_if_never_batched(toy: Sampler, uncond_rows: int, mode: str) -> None:
    kw: dict[str, Any] = {"cond": embedding(3, 1), "uncond": embedding(uncond_rows, 2), "seeds": [4, 5, 6]}
    kw.update(steps=7, guidance_scale=3.0)
    if mode == "inpaint":
        mask = torch.zeros(3, 1, 16, 16)
        mask[..., :8] = 1.0
        kw.update(init=torch.rand(3, 4, 16, 16) * 2 - 1, mask=mask)
    full = run_dropping(toy, {}, **kw)
    dropped = run_dropping(toy, {3: [0, 2]}, **kw)  # after step 3 (DPM-Solver++ 2M has history by then)
    assert [s.shape[0] for s in dropped] == [3, 3, 3, 2, 2, 2, 2]
    assert torch.allclose(dropped[-1], full[-1][[0, 2]], atol=1e-5)
    twice = run_dropping(toy, {2: [1, 2], 5: [1]}, **kw)  # rows are renumbered after each drop
    assert twice[-1].shape[0] == 1 and torch.allclose(twice[-1][0], full[-1][2], atol=1e-5)


def test_sampler_rejects_bad_keep(toy: Sampler) -> None:
    for keep in ([], [2, 0], [0, 3]):
        run = toy.run(embedding(3, 1), embedding(1, 2), [1, 2, 3], steps=3, guidance_scale=3.0)
        next(run)
        with pytest.raises(ValueError, match="keep"):
            run.send(keep)
