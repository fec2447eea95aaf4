"""Holding an engine's thread, so that the jobs submitted meanwhile wait in its queue (a test helper)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from imageforge.scheduler.worker import EngineWorker

__all__ = ["engine_held"]


@contextmanager
def engine_held(worker: EngineWorker) -> Iterator[Callable[[], None]]:
    """Occupy the engine's thread (a maintenance call) so that submitted jobs wait in the queue, until the
    function yielded is called or the block ends."""
    gate, started = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        gate.wait(30)

    holder = threading.Thread(target=worker.call, args=(hold,), daemon=True)
    holder.start()
    assert started.wait(30)
    try:
        yield gate.set
    finally:
        gate.set()
        holder.join(30)
