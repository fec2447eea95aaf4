"""The ingress side of the Ray backend: :class:`ServeGateway` sends jobs to engine replicas through streaming
``DeploymentHandle`` calls, and :class:`RemoteEngines` is the engines' lifecycle as the probes see it.

The pipeline does not know which gateway it has. What differs:

- **Admission** is the replica's: ``submit`` returns once the replica's first event says the job is queued (or
  raises its refusal, the same 429 as in one process). When every replica is busy and the caller's Serve queue
  (``max_queued_requests``) is full too, Serve raises ``BackPressureError``; the client gets OpenAI's 429 envelope
  with ``Retry-After``, never Serve's plain text.
- **A replica lost mid-job** (killed, node gone, restarting) raises a Ray actor error from the stream: the client
  gets a 503 ``engine_replica_lost`` (retriable: the SDKs retry a 503 by themselves), and Serve starts a new
  replica.
- **Keep-alives** are made here, not in the replica: the next event is awaited without a deadline, and an idle
  interval with nothing yields :class:`~imageforge.scheduler.gateway.Idle` (the pending read is not cancelled).
- **Capabilities** (what validation checks against) are fetched from each engine deployment once, in the
  background; until then requests for that model get a 503 saying it is still starting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncGenerator, Collection, Mapping
from typing import Any

from imageforge.distributed.registry import REPORT_INTERVAL_S, ReplicaInfo, merge_metrics, replica_identity
from imageforge.distributed.replica import Accepted, Refused, RunFailed
from imageforge.engines.base import check_batch
from imageforge.errors import (
    EngineError,
    GenerationCancelled,
    ImageForgeError,
    LimitState,
    ModelNotFoundError,
    QueueFullError,
    ServiceUnavailableError,
)
from imageforge.metrics import Metrics
from imageforge.params import EngineCapabilities, GenerationParams
from imageforge.scheduler.gateway import Idle, RunDone, RunEvent

__all__ = ["RemoteEngines", "ServeGateway", "translate"]

log = logging.getLogger(__name__)

BACKPRESSURE_RETRY_S = 2.0  # what a 429 from a full Serve queue tells the client to wait


def translate(exc: BaseException, model: str) -> BaseException:
    """A Ray or Serve exception as the error a client gets (ImageForge's own errors pass through)."""
    import ray.exceptions as rex
    from ray.serve import exceptions as sex

    if isinstance(exc, ImageForgeError | asyncio.CancelledError):
        return exc
    if isinstance(exc, rex.RayTaskError) and isinstance(exc.cause, ImageForgeError):
        return exc.cause
    if isinstance(exc, sex.BackPressureError):
        return QueueFullError(
            f"The server is busy: every engine replica of model '{model}' is full and so is the queue in front of "
            f"them. Retry after {BACKPRESSURE_RETRY_S:g} s.",
            retry_after=BACKPRESSURE_RETRY_S,
            limits=(LimitState("requests", None, 0, BACKPRESSURE_RETRY_S),),
        )
    if isinstance(exc, rex.TaskCancelledError | sex.RequestCancelledError):
        return GenerationCancelled("The request was cancelled.")
    lost = (rex.RayActorError, rex.ActorUnavailableError, sex.ReplicaUnavailableError, sex.DeploymentUnavailableError)
    if isinstance(exc, lost):
        return ServiceUnavailableError(
            f"The engine replica running this request for model '{model}' stopped (it is being replaced); "
            "retry the request.",
            code="engine_replica_lost",
        )
    return EngineError(f"The engine replica failed: {type(exc).__name__}: {exc}")


class _RemoteRun:
    def __init__(self, stream: Any, model: str) -> None:
        self._stream = stream  # a DeploymentResponseGenerator
        self._model = model
        self._timings = (0.0, 0.0)
        self._finished = False
        self._pending: asyncio.Future[Any] | None = None

    @property
    def timings(self) -> tuple[float, float]:
        return self._timings

    def cancel(self) -> None:
        if not self._finished:
            self._finished = True
            if self._pending is not None:
                self._pending.cancel()
            with contextlib.suppress(Exception):  # a stream that already failed raises its error again
                self._stream.cancel()  # Serve cancels the replica's generator; its finally cancels the job

    async def events(self, idle_s: float | None = None) -> AsyncGenerator[RunEvent]:
        try:
            while True:
                if self._pending is None:
                    self._pending = asyncio.ensure_future(self._stream.__anext__())
                done, _ = await asyncio.wait({self._pending}, timeout=idle_s)
                if not done:
                    yield Idle()
                    continue
                read, self._pending = self._pending, None
                try:
                    event = read.result()
                except StopAsyncIteration:
                    raise EngineError("The engine replica ended the job without a result.") from None
                except Exception as exc:
                    raise translate(exc, self._model) from exc
                if isinstance(event, RunFailed):
                    self._timings, self._finished = (event.queue_s, event.run_s), True
                    raise event.error
                if isinstance(event, RunDone):
                    self._timings, self._finished = (event.queue_s, event.run_s), True
                    yield event
                    return
                yield event
        finally:
            self.cancel()  # the reader went away (or the run ended): a no-op once finished


class ServeGateway:
    """Jobs for each catalogue id go to the engine deployment that serves it."""

    def __init__(self, handles: Mapping[str, Any]) -> None:
        self._handles = dict(handles)  # model id -> DeploymentHandle of its engine deployment
        self._caps: dict[str, EngineCapabilities] = {}

    @property
    def models(self) -> list[str]:
        return sorted(self._handles)

    def known(self, model: str) -> bool:
        return model in self._caps

    async def fetch_capabilities(self, model: str) -> None:
        self._caps[model] = await self._handles[model].capabilities.remote(model)

    def capabilities(self, model: str) -> EngineCapabilities:
        if model not in self._handles:
            raise ModelNotFoundError(
                f"The model '{model}' does not exist or you do not have access to it.", param="model"
            )
        caps = self._caps.get(model)
        if caps is None:
            raise ServiceUnavailableError(
                f"The engine for model '{model}' is still starting on the cluster; retry shortly.",
                code="engine_starting",
            )
        return caps

    def admit(self, model: str, params: GenerationParams | None) -> None:
        # The queue is the replica's: it is checked when the job is submitted, with the same refusal.
        caps = self.capabilities(model)
        if params is not None:
            check_batch([params], caps)

    async def submit(
        self, model: str, params: GenerationParams, cancel: threading.Event, preview_steps: Collection[int] = ()
    ) -> _RemoteRun:
        handle = self._handles[model].options(stream=True)
        stream = None
        try:
            stream = handle.generate.remote(model, params, sorted(preview_steps), None)
            first = await stream.__anext__()
        except StopAsyncIteration:
            raise EngineError("The engine replica ended the job before accepting it.") from None
        except BaseException as exc:
            if stream is not None:
                with contextlib.suppress(Exception):  # cancelling a refused call raises its refusal again
                    stream.cancel()
            raise translate(exc, model) from exc
        if isinstance(first, Refused):
            raise first.error
        assert isinstance(first, Accepted), first
        return _RemoteRun(stream, model)


class RemoteEngines:
    """The engine deployments' lifecycle for the probes, from the replica registry (refreshed in the
    background): ``/health`` lists every replica, ``/ready`` waits for a ready replica of every engine."""

    def __init__(self, gateway: ServeGateway, registry: Any, deployments: Mapping[str, list[str]], metrics: Metrics):
        self.gateway = gateway
        self._registry = registry
        self._deployments = dict(deployments)  # engine deployment name -> its model ids
        self._metrics = metrics
        self._snapshot: list[ReplicaInfo] = []
        self._task: asyncio.Task[None] | None = None
        self._me: ReplicaInfo | None = None

    def start_all(self) -> None:
        self._me = replica_identity("ingress")
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            try:
                for model in self.gateway.models:
                    if not self.gateway.known(model):
                        await asyncio.wait_for(self.gateway.fetch_capabilities(model), REPORT_INTERVAL_S * 5)
                await self._registry.report.remote(self._own_info())
                self._snapshot = await self._registry.snapshot.remote()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # an engine still starting, or the registry restarting: try again
                log.debug("cluster state refresh failed: %s", exc)
            await asyncio.sleep(REPORT_INTERVAL_S / 2 if not self.ready() else REPORT_INTERVAL_S)

    def _own_info(self) -> ReplicaInfo:
        assert self._me is not None
        return self._me.with_state(metrics=self._metrics.render().decode())

    def _engines(self) -> list[ReplicaInfo]:
        return [i for i in self._snapshot if i.kind == "engine"]

    def status(self) -> dict[str, str]:
        out = {f"{i.deployment}/{i.replica}": i.state for i in self._engines()}
        for name in self._deployments:
            if not any(i.deployment == name for i in self._engines()):
                out[name] = "starting"
        return out

    def ready(self) -> bool:
        up = {i.deployment for i in self._engines() if i.state == "ready"}
        return set(self._deployments) <= up and all(self.gateway.known(m) for m in self.gateway.models)

    def replicas(self) -> list[dict[str, object]]:
        return [i.public() for i in self._snapshot]

    def abort(self, message: str) -> None:
        """Nothing to do here: Serve drains each replica itself (``graceful_shutdown_timeout_s``)."""

    def close(self, timeout: float = 5.0) -> None:
        if self._task is not None:
            self._task.cancel()

    async def metrics_page(self, own: bytes) -> bytes:
        """Every replica's series (this one's fresh), labelled by replica, deployment and node."""
        with contextlib.suppress(Exception):
            self._snapshot = await self._registry.snapshot.remote()
        mine = self._own_info().with_state(metrics=own.decode())
        infos = [i for i in self._snapshot if i.replica != mine.replica] + [mine]
        return await asyncio.to_thread(merge_metrics, infos)
