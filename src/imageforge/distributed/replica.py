"""One engine replica: the Ray Serve deployment that owns one engine (and its device) for a group of catalogue ids.

It is today's in-process scheduler, unchanged: an :class:`~imageforge.scheduler.pool.EnginePool` with one
:class:`~imageforge.scheduler.worker.EngineWorker` (bounded queue, batching across requests, per-step
cancellation, previews, out-of-memory halving, drain), reached through the same
:class:`~imageforge.scheduler.gateway.InProcessGateway` the single-process server uses. Serve only decides where
the replica runs and which replica a job goes to; ``@serve.batch`` is not used (it never stops a running batch and
groups only by model id, where the worker groups by size, steps and quality).

:meth:`EngineReplica.generate` is a streaming method: its first event says whether the job was accepted
(:class:`Accepted`) or refused (:class:`Refused`: a full queue, an engine that cannot run it); then the run's own
events, and a :class:`RunFailed` for an engine error. Errors travel as values, not as raised Ray exceptions, so the
ingress maps them through the one error tree. When the ingress stops reading (its client went away), Serve
cancels this generator and the ``finally`` cancels the job: the engine drops it at its next step.

Every few seconds the replica reports to the :class:`~imageforge.distributed.registry.ReplicaRegistry` where it
runs (node, ``CUDA_VISIBLE_DEVICES``), its engine's state and its metrics, for the ingress's ``/health``,
``/ready`` and ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any

from imageforge.config import Catalogue, ModelEntry, Settings
from imageforge.distributed.registry import REPORT_INTERVAL_S, ReplicaInfo, replica_identity
from imageforge.errors import ImageForgeError
from imageforge.metrics import Metrics
from imageforge.params import EngineCapabilities, GenerationParams
from imageforge.scheduler.gateway import InProcessGateway, RunEvent
from imageforge.scheduler.pool import EnginePool

__all__ = ["Accepted", "EngineReplica", "Refused", "RunFailed"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Accepted:
    """The job is in this replica's queue."""

    replica: str


@dataclass(frozen=True)
class Refused:
    """The job was not queued (nothing was spent on it): the error the client gets."""

    error: ImageForgeError


@dataclass(frozen=True)
class RunFailed:
    """The engine failed the job after it was accepted."""

    error: ImageForgeError
    queue_s: float
    run_s: float


class EngineReplica:
    """The deployment class (``imageforge.distributed.app`` wraps it with ``serve.deployment``)."""

    # Serve awaits an async constructor on the replica's event loop: the reporter starts with the replica, so the
    # ingress sees it (loading, then ready) before any request reaches it.
    async def __init__(self, settings: Settings, entries: dict[str, ModelEntry], registry: Any = None) -> None:  # type: ignore[misc]
        if settings.threads is not None:
            import torch

            torch.set_num_threads(settings.threads)
        self.models = sorted(entries)
        self.metrics = Metrics(max_users=settings.metrics_max_users, user_labels=settings.metrics_user_labels)
        self.pool = EnginePool(Catalogue(dict(entries)), settings, self.metrics)
        self.gateway = InProcessGateway(self.pool)
        self.pool.start_all()  # loads and warms on the worker's thread; jobs wait for it
        self._registry = registry
        self._identity = replica_identity("engine")
        self._reporter: asyncio.Task[None] | None = None
        self._report_soon()

    # -- the job stream ---------------------------------------------------------------------------------------

    async def generate(
        self, model: str, params: GenerationParams, preview_steps: Sequence[int], idle_s: float | None
    ) -> AsyncGenerator[Accepted | Refused | RunFailed | RunEvent]:
        self._report_soon()
        cancel = threading.Event()
        try:
            run = await self.gateway.submit(model, params, cancel, preview_steps)
        except ImageForgeError as exc:
            yield Refused(exc)
            return
        yield Accepted(self._identity.replica)
        try:
            async for event in run.events(idle_s):
                yield event
        except ImageForgeError as exc:
            queue_s, run_s = run.timings
            yield RunFailed(exc, queue_s, run_s)
        finally:
            run.cancel()  # a no-op once finished; otherwise (the stream was cancelled) the engine stops in a step

    async def capabilities(self, model: str) -> EngineCapabilities:
        return self.gateway.capabilities(model)

    # -- health and the registry ------------------------------------------------------------------------------

    def info(self) -> ReplicaInfo:
        states = self.pool.status()
        return self._identity.with_state(
            state=next(iter(states.values()), "loading"),
            models=self.models,
            cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
            metrics=self.metrics.render().decode(),
        )

    async def check_health(self) -> None:
        """Serve replaces a replica whose check fails: here, one whose engine thread died (not one whose model
        failed to load, which would fail the same way again; that answers ``engine_unavailable``)."""
        self._report_soon()
        dead = self.pool.died()
        if dead:
            raise RuntimeError(f"engine worker thread(s) {', '.join(dead)} stopped")

    def _report_soon(self) -> None:
        if self._registry is not None and self._reporter is None:
            self._reporter = asyncio.get_running_loop().create_task(self._report_forever())

    async def _report_forever(self) -> None:
        while True:
            with contextlib.suppress(Exception):  # a registry restarting must not disturb the engine
                await self._registry.report.remote(self.info())
            await asyncio.sleep(REPORT_INTERVAL_S)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.pool.close()
