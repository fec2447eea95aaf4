"""The engine side of the generation pipeline behind one narrow seam: check a job, submit it, read its events,
cancel it.

:class:`EngineGateway` is what ``serving/pipeline.py`` talks to; nothing above it knows whether the engine runs in
this process (:class:`InProcessGateway`, today's scheduler: one :class:`~imageforge.scheduler.worker.EngineWorker`
per engine) or in engine replicas elsewhere (``imageforge.distributed``, on Ray Serve, implements the same calls).
The events of a run are :class:`StepImage` (a preview, at the steps asked for) then one :class:`RunDone`;
:class:`Idle` when nothing happened for ``idle_s`` (the stream writes a keep-alive). An engine error is raised from
:meth:`EngineRun.events`.

:meth:`EngineGateway.submit` is a coroutine because a remote engine's acceptance is a round trip; the in-process
one never suspends, so awaiting it is as atomic as a plain call (the pipeline's admission relies on that).

:class:`EngineFleet` is the lifecycle side (start, health, readiness, drain, close) that the app factory and the
probes use; :class:`~imageforge.scheduler.pool.EnginePool` is the in-process one.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Collection
from dataclasses import dataclass
from typing import Any, Protocol

from imageforge.params import EngineCapabilities, GenerationParams, GenerationResult, StepPreview
from imageforge.scheduler.pool import EnginePool
from imageforge.scheduler.worker import EngineWorker, Job

__all__ = ["EngineFleet", "EngineGateway", "EngineRun", "Idle", "InProcessGateway", "RunDone", "StepImage"]


@dataclass(frozen=True)
class StepImage:
    """The engine's current estimate of the clean image (the request's first image) after ``step`` steps."""

    step: int
    image: Any  # PIL image; serving never imports PIL


@dataclass(frozen=True)
class Idle:
    """Nothing happened for the idle interval (a long step is running, or the job is queued)."""


@dataclass(frozen=True)
class RunDone:
    result: GenerationResult
    queue_s: float
    run_s: float


RunEvent = StepImage | Idle | RunDone


class EngineRun(Protocol):
    def events(self, idle_s: float | None = None) -> AsyncGenerator[RunEvent]: ...

    def cancel(self) -> None: ...

    @property
    def timings(self) -> tuple[float, float]:
        """(queue seconds, run seconds) so far, for the audit line of a run that did not finish."""
        ...


class EngineGateway(Protocol):
    def capabilities(self, model: str) -> EngineCapabilities: ...

    def admit(self, model: str, params: GenerationParams | None) -> None:
        """Raise now if the job would be refused (the engine cannot run it, no time in the queue, not loaded);
        without params, if any job would be (a full queue)."""
        ...

    async def submit(
        self, model: str, params: GenerationParams, cancel: threading.Event, preview_steps: Collection[int] = ()
    ) -> EngineRun:
        """Queue the job (atomically admitted: raises the same refusals as :meth:`admit`); returns once the engine
        accepted it."""
        ...


class EngineFleet(Protocol):
    """The engines' lifecycle, as the app and its probes see it."""

    def start_all(self) -> None:
        """Start loading every engine (returns at once)."""
        ...

    def status(self) -> dict[str, str]:
        """Each engine's (or engine replica's) state: ``loading``, ``warming``, ``ready``, ``failed: …``."""
        ...

    def ready(self) -> bool: ...

    def replicas(self) -> list[dict[str, object]]:
        """Where each engine replica runs (node, devices), for ``/health``; empty in one process."""
        ...

    def abort(self, message: str) -> None:
        """Fail every queued and running job (thread-safe; the drain timeout)."""
        ...

    def close(self, timeout: float = 5.0) -> None: ...


class _LocalRun:
    def __init__(self, worker: EngineWorker, job: Job, previews: asyncio.Queue[StepImage]) -> None:
        self._worker, self._job, self._previews = worker, job, previews
        self._timings: dict[str, float] = {}

    @property
    def timings(self) -> tuple[float, float]:
        return self._timings.get("queue_s", self._job.queue_seconds), self._timings.get("run_s", self._job.run_seconds)

    def cancel(self) -> None:
        if self._job.future.done():  # finished: the cancel event may be shared with later work of the request
            return
        self._job.cancel.set()
        self._worker.withdraw(self._job)

    async def events(self, idle_s: float | None = None) -> AsyncGenerator[RunEvent]:
        waiting = asyncio.ensure_future(self._worker.wait(self._job, self._timings))
        getter: asyncio.Future[StepImage] | None = None
        try:
            while True:
                if not self._previews.empty():
                    yield self._previews.get_nowait()
                    continue
                if waiting.done():
                    break
                getter = asyncio.ensure_future(self._previews.get())
                done, _ = await asyncio.wait({getter, waiting}, timeout=idle_s, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield getter.result()  # the earliest preview: those still queued arrived after it
                else:
                    getter.cancel()
                if not done:
                    yield Idle()
            result = waiting.result()  # raises the job's error
            yield RunDone(result, self._timings.get("queue_s", 0.0), self._timings.get("run_s", 0.0))
        finally:
            if getter is not None and not getter.done():
                getter.cancel()
            if not waiting.done():  # the reader went away: stop the engine within a step
                self._job.cancel.set()
                waiting.cancel()


class InProcessGateway:
    """The engines of this process: an :class:`EnginePool`'s workers."""

    def __init__(self, pool: EnginePool) -> None:
        self.pool = pool

    def capabilities(self, model: str) -> EngineCapabilities:
        return self.pool.capabilities(model)

    def admit(self, model: str, params: GenerationParams | None) -> None:
        self.pool.worker(model).admit(params)

    async def submit(
        self, model: str, params: GenerationParams, cancel: threading.Event, preview_steps: Collection[int] = ()
    ) -> EngineRun:
        # No await in here: queueing stays atomic with the caller's limit test and charge.
        loop = asyncio.get_running_loop()
        previews: asyncio.Queue[StepImage] = asyncio.Queue()
        wanted = frozenset(preview_steps)

        def on_step(st: StepPreview) -> None:  # on the engine's thread: hand the preview to the event loop
            if st.step in wanted:
                image = st.preview(0)[0]
                loop.call_soon_threadsafe(previews.put_nowait, StepImage(st.step, image))

        worker = self.pool.worker(model)
        job = worker.submit(params, cancel, on_step if wanted else None, model)
        return _LocalRun(worker, job, previews)
