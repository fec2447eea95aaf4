"""A deterministic, scriptable engine for testing the server's own logic (never what a user gets by default).

Like httpx's ``MockTransport``: it ships with the library so that tests of scheduling, streaming, cancellation
and error paths run in milliseconds. Each image is a smooth pattern derived from the prompt and its own seed, so
equal (prompt, seed) pairs give equal images and a batch equals its images made alone. ``step_delay`` slows it
down; ``fail_on`` makes prompts containing that text raise an engine error after ``fail_after_steps`` steps;
``oom_above`` makes a call with more images than that raise ``MemoryError`` (a simulated out-of-memory).
It drops single requests like the embedded engine (``drops_requests``) and counts the (request, step) units it
computed in ``request_steps``, so tests can see that a dropped request stopped costing work.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from functools import partial

import numpy as np
from PIL import Image

from imageforge.engines.base import (
    Cancelled,
    EngineCapabilities,
    RequestCancelled,
    check_batch,
    check_quality_steps,
    make_result,
    never_cancelled,
    raise_if_cancelled,
)
from imageforge.errors import EngineError, GenerationCancelled
from imageforge.imaging.canvas import flatten
from imageforge.params import GenerationParams, GenerationResult, StepCallback, StepPreview

__all__ = ["FakeEngine"]


class FakeEngine:
    def __init__(
        self,
        step_delay: float = 0.0,
        fail_on: str | None = None,
        fail_after_steps: int = 0,
        max_batch: int = 8,
        oom_above: int | None = None,
        quality_steps: dict[str, int] | None = None,
        drops_requests: bool = True,
        animation: bool = False,
        planning: bool = False,
    ) -> None:
        self.step_delay = step_delay
        self.fail_on = fail_on
        self.fail_after_steps = fail_after_steps
        self.oom_above = oom_above
        self.loaded = False
        self.calls: list[list[GenerationParams]] = []  # history, for tests to assert on batching
        # Work done, for tests to assert on dropped requests: one unit per still-computed request per step (all
        # calls together), and per call the number of requests computed at each of its steps.
        self.request_steps = 0
        self.active_per_step: list[list[int]] = []
        self._caps = EngineCapabilities(
            native_resolutions=((64, 64),),
            max_batch=max_batch,
            alpha="native",
            min_steps=1,
            max_steps=1000,
            quality_steps=check_quality_steps(quality_steps or {"low": 2, "medium": 4, "high": 8}, 1, 1000),
            img2img=True,
            inpaint=True,
            drops_requests=drops_requests,  # False: behaves like an engine that cannot shrink a batch
            # True: accepts gif requests; its frames are simply the images of seeds seed + i (no smooth walk).
            animation=animation,
            # True: accepts complexity medium/high, and draws each image from its last candidate start (it has no
            # model to score candidates with; enough for the server's own logic to be tested).
            planning=planning,
        )

    @property
    def capabilities(self) -> EngineCapabilities:
        return self._caps

    def load(self) -> None:
        self.loaded = True

    def close(self) -> None:
        self.loaded = False

    def generate(
        self,
        batch: Sequence[GenerationParams],
        on_step: StepCallback | None = None,
        cancelled: Cancelled = never_cancelled,
        request_cancelled: RequestCancelled | None = None,
    ) -> list[GenerationResult]:
        check_batch(batch, self._caps)
        self.calls.append(list(batch))
        if self.oom_above is not None and sum(p.n for p in batch) > self.oom_above:
            raise MemoryError(f"fake engine out of memory on purpose (more than {self.oom_above} images)")
        p0 = batch[0]
        total = p0.denoising_steps
        dropped: set[int] = set()
        active_counts: list[int] = []
        self.active_per_step.append(active_counts)

        def drop_cancelled(step: int) -> None:
            if request_cancelled is not None:
                dropped.update(r for r in range(len(batch)) if r not in dropped and request_cancelled(r))
                if len(dropped) == len(batch):
                    raise GenerationCancelled(f"generation cancelled after {step} step(s)")

        drop_cancelled(0)
        for step in range(1, total + 1):
            if self.step_delay:
                time.sleep(self.step_delay)
            active = [r for r in range(len(batch)) if r not in dropped]
            if self.fail_on is not None and step > self.fail_after_steps:
                failing = [r for r in active if self.fail_on in batch[r].prompt]
                if failing:
                    raise EngineError(f"fake engine failure on purpose (prompt contains {self.fail_on!r})")
            self.request_steps += len(active)
            active_counts.append(len(active))
            if on_step is not None:
                on_step(StepPreview(step, total, partial(_preview, batch, step / total, frozenset(dropped))))
            raise_if_cancelled(cancelled, step)
            drop_cancelled(step)
        return [make_result(p, [] if r in dropped else _images(p, 1.0)) for r, p in enumerate(batch)]


def _preview(
    batch: Sequence[GenerationParams], progress: float, dropped: frozenset[int], request_index: int
) -> list[Image.Image]:
    return [] if request_index in dropped else _images(batch[request_index], progress)


def _images(p: GenerationParams, progress: float) -> list[Image.Image]:
    plan = (p.plan_candidates - 1) * 0x9E3779B1  # a planned image starts from its last candidate (as embedded)
    return [_render(p, p.subject_seed(i) + plan if p.plan_candidates > 1 else seed, progress)
            for i, seed in enumerate(p.seeds())]  # fmt: skip


def _render(p: GenerationParams, seed: int, progress: float) -> Image.Image:
    """A disc in a colour from the prompt, over a seed-dependent gradient; noise fades out with ``progress``."""
    digest = hashlib.sha256(p.prompt.encode()).digest()
    colour = np.array(list(digest[:3]), dtype=np.float32)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : p.height, 0 : p.width].astype(np.float32)
    cx, cy = rng.uniform(0.3, 0.7) * p.width, rng.uniform(0.3, 0.7) * p.height
    r = 0.3 * min(p.width, p.height)
    inside = (((xx - cx) ** 2 + (yy - cy) ** 2) <= r * r)[..., None]
    rgb = np.where(inside, colour, 255.0 - colour * 0.5)
    rgb = rgb * progress + rng.uniform(0, 255, rgb.shape) * (1 - progress)
    alpha = np.where(inside[..., 0], 255.0, 0.0)[..., None]
    img = Image.fromarray(np.concatenate([rgb, alpha], axis=-1).clip(0, 255).astype(np.uint8), "RGBA")
    if p.init_image is not None:
        base = p.init_image.convert("RGBA").resize((p.width, p.height))
        mask = p.mask.convert("L").resize((p.width, p.height)) if p.mask is not None else None
        img = Image.composite(img, base, mask) if mask is not None else Image.blend(base, img, p.strength)
    return flatten(img, p.background)
