"""The batching rule as a pure function: compatible jobs join the oldest one, in order, while they fit."""

from __future__ import annotations

from imageforge.params import GenerationParams
from imageforge.scheduler.batching import batch_images, take_batch


def job(size: int = 64, steps: int = 4, n: int = 1, guidance: float | None = None) -> GenerationParams:
    return GenerationParams(prompt="x", width=size, height=size, steps=steps, seed=0, n=n, guidance_scale=guidance)


def test_compatible_jobs_join_the_head_in_arrival_order_up_to_the_max() -> None:
    waiting = [job(), job(), job(), job()]
    assert take_batch(waiting, 3) == [0, 1, 2]
    assert batch_images(waiting, 3) == 3


def test_incompatible_jobs_are_skipped_not_waited_on() -> None:
    waiting = [job(), job(size=128), job(), job(steps=8), job(guidance=5.0), job()]
    assert take_batch(waiting, 8) == [0, 2, 5]
    assert take_batch(waiting[1:], 8) == [0]  # the skipped job heads the next batch


def test_images_are_counted_not_requests() -> None:
    waiting = [job(n=2), job(n=4), job(n=2), job(n=1)]
    assert take_batch(waiting, 5) == [0, 2, 3]  # n=4 does not fit next to the head's 2; later smaller ones do


def test_a_head_bigger_than_the_max_runs_alone() -> None:
    assert take_batch([job(n=10), job()], 4) == [0]
    assert take_batch([], 4) == []


def test_batching_off_is_max_one() -> None:
    assert take_batch([job(), job(), job()], 1) == [0]
