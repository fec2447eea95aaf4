"""Which waiting jobs run together: a pure function, so the batching rule is tested without threads or engines.

Jobs are compatible when their :meth:`~imageforge.params.GenerationParams.batch_key` is equal (same size, steps,
guidance, mode): the engine runs them as one tensor batch. The oldest job always goes first (no starvation), and
later compatible jobs join it in arrival order while the images fit in ``max_images``; an incompatible job in
between is skipped over, not waited on, and keeps its place at the head of the next batch.
"""

from __future__ import annotations

from collections.abc import Sequence

from imageforge.params import GenerationParams

__all__ = ["batch_images", "take_batch"]


def take_batch(waiting: Sequence[GenerationParams], max_images: int) -> list[int]:
    """Indices (into ``waiting``, oldest first) of the jobs to run next: the head and the compatible jobs after it
    whose images still fit. A head larger than ``max_images`` runs alone (the engine splits it into passes)."""
    if not waiting:
        return []
    key = waiting[0].batch_key()
    chosen, images = [0], waiting[0].n
    for i in range(1, len(waiting)):
        p = waiting[i]
        if p.batch_key() == key and images + p.n <= max_images:
            chosen.append(i)
            images += p.n
            if images == max_images:
                break
    return chosen


def batch_images(waiting: Sequence[GenerationParams], max_images: int) -> int:
    """How many images the next batch would hold now (the worker waits for more while it is below the max)."""
    return sum(waiting[i].n for i in take_batch(waiting, max_images))
