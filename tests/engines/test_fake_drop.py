"""The fake engine drops single requests like the embedded one, and counts the work it did for tests."""

from __future__ import annotations

import numpy as np
import pytest

from imageforge.engines.fake import FakeEngine
from imageforge.errors import EngineError, GenerationCancelled
from imageforge.params import GenerationParams, StepPreview


def params(prompt: str, seed: int, n: int = 1, steps: int = 6) -> GenerationParams:
    return GenerationParams(prompt=prompt, width=16, height=16, steps=steps, seed=seed, n=n)


def test_declares_drops_requests() -> None:
    assert FakeEngine().capabilities.drops_requests


def test_a_dropped_request_gets_no_images_and_stops_costing_steps() -> None:
    engine = FakeEngine()
    batch = [params("a", 1), params("b", 2, n=2), params("c", 3)]
    events: list[tuple[int, int]] = []
    previews: list[list[int]] = []

    def on_step(st: StepPreview) -> None:
        events.append((st.step, st.total_steps))
        previews.append([len(st.preview(r)) for r in range(3)])

    results = engine.generate(batch, on_step=on_step, request_cancelled=lambda r: r == 1 and len(events) >= 2)
    assert [len(r.images) for r in results] == [1, 0, 1]
    assert results[1].seeds == (2, 3)
    # on_step is still called for every step of the batch.
    assert events == [(i, 6) for i in range(1, 7)]
    assert engine.active_per_step == [[3, 3, 2, 2, 2, 2]]
    assert engine.request_steps == 3 * 2 + 2 * 4
    assert previews[1] == [1, 2, 1] and all(p == [1, 0, 1] for p in previews[2:])
    # The others are exactly what they are alone.
    for r in (0, 2):
        alone = FakeEngine().generate([batch[r]])[0].images[0]
        assert np.array_equal(np.asarray(results[r].images[0]), np.asarray(alone))


def test_counts_accumulate_over_calls() -> None:
    engine = FakeEngine()
    engine.generate([params("a", 1, steps=3), params("b", 2, steps=3)])
    engine.generate([params("a", 1, steps=3)], request_cancelled=lambda r: False)
    assert engine.request_steps == 2 * 3 + 3
    assert engine.active_per_step == [[2, 2, 2], [1, 1, 1]]


def test_all_cancelled_raises() -> None:
    engine = FakeEngine()
    batch = [params("a", 1), params("b", 2)]
    seen: list[int] = []

    def on_step(st: StepPreview) -> None:
        seen.append(st.step)

    # As the scheduler calls it: ``cancelled`` is "every request cancelled".
    flags = {0: lambda: len(seen) >= 1, 1: lambda: len(seen) >= 3}
    with pytest.raises(GenerationCancelled):
        engine.generate(
            batch,
            on_step=on_step,
            cancelled=lambda: all(f() for f in flags.values()),
            request_cancelled=lambda r: flags[r](),
        )
    assert seen == [1, 2, 3]
    assert engine.active_per_step == [[2, 1, 1]]
    # request_cancelled alone stops the call too once nothing is left.
    with pytest.raises(GenerationCancelled):
        engine.generate(batch, request_cancelled=lambda r: True)
    assert engine.active_per_step[-1] == []


def test_a_dropped_failing_request_no_longer_fails_the_batch() -> None:
    engine = FakeEngine(fail_on="boom", fail_after_steps=2)
    batch = [params("boom", 1), params("fine", 2)]
    seen: list[int] = []
    results = engine.generate(
        batch, on_step=lambda st: seen.append(st.step), request_cancelled=lambda r: r == 0 and len(seen) >= 2
    )
    assert [len(r.images) for r in results] == [0, 1]
    with pytest.raises(EngineError):
        engine.generate(batch)
