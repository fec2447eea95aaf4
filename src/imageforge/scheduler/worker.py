"""One engine, one owning thread: ``load()`` and every ``generate()`` run there, never on the event loop.

Jobs run one at a time in arrival order. At most ``queue_limit`` jobs wait; more get :class:`QueueFullError`
(429 with ``Retry-After``) at once instead of an unbounded wait. A waiting or running job is cancelled through a
``threading.Event`` the engine polls between denoising steps.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from imageforge.engines.base import Engine
from imageforge.errors import GenerationCancelled, ImageForgeError, QueueFullError
from imageforge.params import EngineCapabilities, GenerationParams, GenerationResult, StepCallback

__all__ = ["EngineWorker"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class EngineWorker:
    def __init__(self, name: str, engine: Engine, queue_limit: int) -> None:
        self.name = name
        self.engine = engine
        self.queue_limit = queue_limit
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"engine-{name}")
        self._jobs = 0  # waiting + running; touched only on the event loop thread
        self._loaded: Future[None] | None = None

    @property
    def capabilities(self) -> EngineCapabilities:
        return self.engine.capabilities

    def start(self) -> Future[None]:
        """Queue the engine's ``load()`` first, so requests wait for it rather than racing it."""
        if self._loaded is None:
            self._loaded = self._executor.submit(self._load)
        return self._loaded

    def state(self) -> str:
        if self._loaded is None or not self._loaded.done():
            return "loading"
        exc = self._loaded.exception()
        return "ready" if exc is None else f"failed: {exc}"

    def _load(self) -> None:
        log.info("loading engine %s", self.name)
        self.engine.load()
        log.info("engine %s ready", self.name)

    def admit(self) -> None:
        """Raise :class:`QueueFullError` if a new job would not be accepted now (checked again at submit)."""
        if self._jobs >= self.queue_limit:
            raise QueueFullError(
                f"The server is busy: {self._jobs} requests are queued for this model. Retry shortly.",
            )

    async def generate(
        self, params: GenerationParams, cancel: threading.Event, on_step: StepCallback | None = None
    ) -> GenerationResult:
        self.admit()
        self._jobs += 1
        try:
            loaded = self.start()
            future = self._executor.submit(self._run, loaded, params, cancel, on_step)
            try:
                return await asyncio.wrap_future(future)
            except asyncio.CancelledError:
                cancel.set()  # the engine stops within one step; a job still queued is skipped
                raise
        finally:
            self._jobs -= 1

    def _run(
        self,
        loaded: Future[None],
        params: GenerationParams,
        cancel: threading.Event,
        on_step: StepCallback | None,
    ) -> GenerationResult:
        exc = loaded.exception()  # already done: this thread ran load() first
        if exc is not None:
            if isinstance(exc, ImageForgeError):
                raise exc
            raise ImageForgeError(f"The model could not be loaded: {exc}") from exc
        if cancel.is_set():
            raise GenerationCancelled("The request was cancelled before it started.")
        return self.engine.generate([params], on_step=on_step, cancelled=cancel.is_set)[0]

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the engine's own thread and wait for it (benchmarks and maintenance; not for requests,
        which go through :meth:`generate` and its queue limit). Blocking: never call it on the event loop."""
        return self._executor.submit(fn).result()

    def close(self, wait: bool = True) -> None:
        def _close() -> None:
            self.engine.close()

        self._executor.submit(_close)
        self._executor.shutdown(wait=wait, cancel_futures=True)
