"""The engine's measured costs: exact keys first, then the nearest batch size, then other steps of the same size;
a shape never run has no estimate."""

from __future__ import annotations

import threading

import pytest

from imageforge.params import BatchKey, GenerationParams
from imageforge.scheduler.cost import CostModel, denoising_steps


def key(w: int = 64, h: int = 64, steps: int = 10) -> BatchKey:
    return GenerationParams(prompt="x", width=w, height=h, steps=steps, seed=0).batch_key()


def test_nothing_is_known_before_a_call() -> None:
    assert CostModel().estimate(key(), 1) is None


def test_exact_then_nearest_count_then_other_steps_of_the_same_size() -> None:
    m = CostModel()
    m.observe(key(), 2, 1.0)
    assert m.estimate(key(), 2) == 1.0
    assert m.estimate(key(), 4) == pytest.approx(2.0)  # scaled from 2 images
    assert m.estimate(key(), 1) == pytest.approx(0.5)
    assert m.estimate(key(steps=30), 1) == pytest.approx(1.5)  # 0.05 s per step and image, 30 steps
    assert m.estimate(key(128, 128), 1) is None  # another size: never guessed from pixels


def test_moving_average_follows_a_change_of_speed() -> None:
    m = CostModel()
    for _ in range(20):
        m.observe(key(), 1, 1.0)
    m.observe(key(), 1, 3.0)
    one_outlier = m.estimate(key(), 1)
    assert one_outlier is not None and 1.0 < one_outlier < 2.0
    for _ in range(20):
        m.observe(key(), 1, 3.0)
    assert m.estimate(key(), 1) == pytest.approx(3.0, rel=0.01)


def test_img2img_counts_the_steps_it_runs() -> None:
    p = GenerationParams(prompt="x", width=64, height=64, steps=10, seed=0, strength=0.5, init_image=object())  # type: ignore[arg-type]
    assert denoising_steps(p.batch_key()) == 5 and denoising_steps(key()) == 10


def test_threads_may_observe_and_estimate_at_once() -> None:
    m = CostModel()

    def work(i: int) -> None:
        for j in range(200):
            m.observe(key(64, 64, 1 + j % 5), 1 + i % 3, 0.1)
            m.estimate(key(64, 64, 1 + j % 7), 2)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert m.estimate(key(64, 64, 3), 1) is not None


def test_the_reference_is_the_unloaded_time_while_the_estimate_follows_the_load() -> None:
    m = CostModel()
    for _ in range(10):
        m.observe(key(), 1, 1.0)  # idle
    for _ in range(10):
        m.observe(key(), 1, 2.0)  # the machine is busy
    now, unloaded = m.estimate(key(), 1), m.reference(key(), 1)
    assert now is not None and now > 1.9 and unloaded == pytest.approx(1.0)
    assert m.reference(key(steps=20), 1) == pytest.approx(2.0)  # other steps of the same size: scaled from it
    assert m.reference(key(128, 128), 1) is None
