"""The time-bounded admission rule as a pure function: a job is admitted when it keeps its own promise and
breaks no earlier one; otherwise the answer says how much work must drain first (Retry-After)."""

from __future__ import annotations

import pytest

from imageforge.params import BatchKey, GenerationParams
from imageforge.scheduler.admission import Queued, Refusal, refusal

A = GenerationParams(prompt="a", width=64, height=64, steps=10, seed=0).batch_key()
B = GenerationParams(prompt="b", width=128, height=128, steps=10, seed=0).batch_key()


def linear(key: BatchKey, images: int) -> float:
    """1 s per batch plus 0.5 s per image (batching is cheaper per image); size B costs twice as much."""
    return (1.0 + 0.5 * images) * (2 if key == B else 1)


def excess(queued: list[Queued], new: Queued, running_left: float = 0.0, max_images: int = 4) -> float:
    """How long the new job's own promise is overrun (0 if it is kept and no earlier one breaks)."""
    found = refuse(queued, new, running_left, max_images)
    assert found is None or found.own
    return 0.0 if found is None else found.retry_after


def refuse(queued: list[Queued], new: Queued, running_left: float = 0.0, max_images: int = 4) -> Refusal | None:
    return refusal(queued, new, running_left=running_left, max_images=max_images, estimate=linear)


def test_an_idle_engine_admits_a_job_within_its_own_run_time() -> None:
    assert excess([], Queued(A, 1, deadline=1.5)) == 0.0
    assert excess([], Queued(A, 1, deadline=1.4)) == pytest.approx(0.1)  # a promise shorter than its own work


def test_the_running_batch_and_the_batches_ahead_count() -> None:
    new = Queued(A, 1, deadline=2.25)  # own 1.5 s + a 0.75 s budget
    assert excess([], new, running_left=0.75) == 0.0
    assert excess([], new, running_left=1.0) == pytest.approx(0.25)
    ahead = [Queued(B, 1, deadline=10)]  # a B batch (3 s) before it
    assert excess(ahead, new) == pytest.approx(3 + 1.5 - 2.25)


def test_joining_a_batch_costs_only_the_difference_it_makes() -> None:
    waiting = [Queued(A, 1, deadline=10)]
    # Joining the waiting A job: their batch takes 2.0 s instead of 1.5 s, so the new job finishes at 2.0 s.
    assert excess(waiting, Queued(A, 1, deadline=2.0)) == 0.0
    assert excess(waiting, Queued(A, 1, deadline=1.9)) == pytest.approx(0.1)


def test_a_job_that_would_make_an_earlier_one_late_is_refused_until_its_batch_starts() -> None:
    # The waiting job was promised 1.6 s: with the new job in its batch (2.0 s) it would be 0.4 s late. Waiting
    # does not help until that batch has started (after the running one, 0.5 s from now): retry then.
    waiting = [Queued(A, 1, deadline=1.6 + 0.5)]
    assert refuse(waiting, Queued(A, 1, deadline=10), running_left=0.5) == Refusal(0.5, own=False)
    # A later batch is pushed back by the difference too.
    waiting = [Queued(A, 1, deadline=10), Queued(B, 1, deadline=4.7)]  # A 1.5 s, then B 3 s: ends at 4.5
    assert refuse(waiting, Queued(A, 1, deadline=10)) == Refusal(0.0, own=False)
    # Both: its own promise too short, and an earlier one breaks: the later of the two answers.
    assert refuse([Queued(A, 1, deadline=2.1)], Queued(A, 1, deadline=2.4), running_left=0.5) == Refusal(
        pytest.approx(0.5), own=True
    )


def test_a_job_already_late_does_not_refuse_everyone() -> None:
    waiting = [Queued(A, 1, deadline=0.5)]  # it will end at 1.5 s whatever happens
    assert excess(waiting, Queued(A, 1, deadline=10)) == 0.0
    no_promise = [Queued(A, 1, deadline=None)]  # admitted before costs were known
    assert excess(no_promise, Queued(A, 1, deadline=10)) == 0.0


def test_a_full_batch_is_not_joined() -> None:
    waiting = [Queued(A, 4, deadline=10)]  # a full batch of 4 (3 s)
    assert excess(waiting, Queued(A, 1, deadline=4.5)) == 0.0  # its own batch after it: 3 + 1.5
    assert excess(waiting, Queued(A, 1, deadline=4.0)) == pytest.approx(0.5)


def test_batches_are_formed_as_the_worker_forms_them() -> None:
    # A(3), B(1), A(1): the second A joins the first (4 images), ahead of B.
    waiting = [Queued(A, 3, deadline=100), Queued(B, 1, deadline=100), Queued(A, 1, deadline=100)]
    # A batch of 4 (3 s), then B (3 s); the new B joins the B batch (4 s): ends at 3 + 4 = 7 s.
    assert excess(waiting, Queued(B, 1, deadline=7.0)) == 0.0
    assert excess(waiting, Queued(B, 1, deadline=6.0)) == pytest.approx(1.0)
