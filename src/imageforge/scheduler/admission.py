"""Admission by time: may one more job wait for this engine without breaking a promise? A pure function, so the
rule is tested without threads or engines (issue 15).

A count bound lets admitted requests wait however long the jobs ahead of them take (6.5x their unloaded p99
was measured at a queue limit of 4). Here every admitted job carries a promise: it finishes within its run time
on an idle engine plus a *budget* of waiting (``max_queue_seconds``, or by default a quarter of that run time, so the
admitted p99 stays within 1.5x of the unloaded one), or, if the engine is slower now than that promise, at least
within its current run time (a job is never refused by an idle engine). A new job is admitted only if

1. it keeps its own promise: the batches ahead of it, then the batch it joins, finish within its deadline; and
2. it breaks no earlier promise: joining a batch makes that batch, and every batch after it, later by the
   difference it makes; every job there must still finish by its deadline (a job already past it is not
   made the excuse for refusing everyone else).

The batches are simulated as the worker will form them: oldest first, each job into the first compatible batch
with room for its images (what ``batching.take_batch`` yields, call after call). Run times come from the
engine's measured costs (``cost.py``); a batch of a shape the engine has never run counts as no time (it is
measured by its first run). When the job cannot be admitted, the answer says when to ask again, which is what
``Retry-After`` tells the client: once enough work has drained for its own promise, or, when it would break an
earlier one, once the batch it would join has started.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from imageforge.params import BatchKey

__all__ = ["Queued", "Refusal", "refusal"]

Estimate = Callable[[BatchKey, int], float | None]


@dataclass(frozen=True)
class Queued:
    """A waiting job as admission sees it. ``deadline``: seconds from now by which it was promised to finish
    (negative once late); ``None`` when it was admitted before any cost was known."""

    key: BatchKey
    images: int
    deadline: float | None = None


@dataclass
class _Batch:
    key: BatchKey
    images: int
    jobs: list[Queued] = field(default_factory=list)


def _batches(queued: Sequence[Queued], max_images: int) -> list[_Batch]:
    batches: list[_Batch] = []
    for job in queued:
        for batch in batches:
            if batch.key == job.key and batch.images + job.images <= max_images:
                break
        else:
            batch = _Batch(job.key, 0)
            batches.append(batch)
        batch.images += job.images
        batch.jobs.append(job)
    return batches


@dataclass(frozen=True)
class Refusal:
    """Why a job is not admitted now, and when to ask again: ``own`` when its own promise cannot be kept (the
    queue must drain by ``retry_after`` seconds of work), else an earlier job's promise would break (nothing
    changes until the batch it would join has started, ``retry_after`` seconds from now)."""

    retry_after: float
    own: bool


def refusal(
    queued: Sequence[Queued],
    new: Queued,
    *,
    running_left: float,
    max_images: int,
    estimate: Estimate,
) -> Refusal | None:
    """``None`` if ``new`` (whose ``deadline`` is its own promise) can be admitted behind ``queued`` (oldest
    first) while the running batch has ``running_left`` seconds to go; otherwise why not and when to retry."""
    assert new.deadline is not None

    def seconds(key: BatchKey, images: int) -> float:
        return estimate(key, images) or 0.0

    batches = _batches(queued, max_images)
    clock = running_left
    joined = None
    for i, batch in enumerate(batches):
        if batch.key == new.key and batch.images + new.images <= max_images:
            joined = i
            break
        clock += seconds(batch.key, batch.images)
    if joined is None:  # a batch of its own, after all the others
        excess = clock + seconds(new.key, new.images) - new.deadline
        return Refusal(excess, own=True) if excess > 0 else None
    target = batches[joined]
    starts = clock  # when the batch it joins starts
    delta = seconds(target.key, target.images + new.images) - seconds(target.key, target.images)
    own = clock + seconds(target.key, target.images + new.images) - new.deadline
    breaks = False
    for batch in batches[joined:]:
        clock += seconds(batch.key, batch.images)  # when it finishes without the new job
        breaks |= any(j.deadline is not None and clock <= j.deadline < clock + delta for j in batch.jobs)
    if own > 0:
        return Refusal(max(own, starts if breaks else 0.0), own=True)
    return Refusal(starts, own=False) if breaks else None
