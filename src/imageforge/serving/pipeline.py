"""The one generation pipeline every image endpoint runs on: generations, edits, variations and the Responses
image tool are adapters that map their wire types to an :class:`ImageJob` and the pipeline's events back.

Protocol-free: a job is a resolved request (prompt, params with any input image and mask, key id, end-user), and
what comes out is typed events. For one job, in this order:

1. **Admission**, before anything is sent: can the engine run it and does the queue have time for it
   (``EngineGateway.admit``); the prompt and the input images are moderated (``screening.py``); then, with no
   ``await`` in between (nothing else on the event loop can interleave), the rate limits are tested, the job is
   queued (atomically admitted by the engine's worker) and only then are the limits charged. So a refused
   request, for whatever reason, costs no quota, and a queued job never waits on a limit.
2. **The engine run** through the gateway: :class:`Preview` events at evenly spaced steps (:func:`preview_steps`)
   when streaming, :class:`KeepAlive` while a long step runs.
3. **Delivery**: every image (previews included) is moderated beside its encoding (``delivery.py``) and sent as
   base64 or stored behind a signed URL; the :class:`Final` event carries the images and the usage.
4. **Audit**: one line and the usage counted per key and end-user, whatever happened (``audit.py``), from a single
   context manager around the whole run.

An error after admission is a :class:`Failed` event (the stream ends); the client going away cancels the run
within a step.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from imageforge.errors import GenerationCancelled, ImageForgeError, ModerationBlockedError
from imageforge.errors import LimitState as LimitState
from imageforge.metrics import Metrics
from imageforge.moderation import Level
from imageforge.scheduler.gateway import EngineGateway, EngineRun, Idle, RunDone, StepImage
from imageforge.serving.audit import RequestAudit
from imageforge.serving.delivery import DeliveredImage, Delivery
from imageforge.serving.ratelimit import RateLimiter
from imageforge.serving.screening import Screening, level_of
from imageforge.serving.usage import TokenCounter, image_tokens
from imageforge.validation import ResolvedRequest

__all__ = [
    "DeliveredImage",
    "Failed",
    "Final",
    "GenerationPipeline",
    "ImageJob",
    "KeepAlive",
    "PipelineEvent",
    "Preview",
    "Started",
    "preview_steps",
]

log = logging.getLogger(__name__)


def preview_steps(total_steps: int, k: int) -> list[int]:
    """The steps (1-based) after which partial images are taken: ``k`` evenly spaced steps before the last one.

    Fewer than ``k`` when the engine runs fewer than ``k + 1`` steps (a 1-step model has no partial images): OpenAI
    documents that the final image may come before all partial images.
    """
    steps = {max(1, round(total_steps * (j + 1) / (k + 1))) for j in range(k)}
    return sorted(s for s in steps if s < total_steps)


@dataclass(frozen=True)
class ImageJob:
    """One resolved image request, whatever endpoint it came from."""

    request: ResolvedRequest
    prompt: str  # what the client (or the planner) wrote: moderated and counted; params.prompt is what is drawn
    key_id: str = "-"
    endpoint: str = "images.generations"
    user_text: str | None = None  # the user's own words when a planner wrote the prompt: moderated too
    input_images: tuple[Any, ...] = ()  # decoded input images: moderated before any work
    input_image_tokens: int = 0  # what they count as in usage
    charge_request: bool = True  # False: the request was charged already (the Responses request); only its images

    @property
    def level(self) -> Level:
        """The moderation policy: the request's ``moderation``; ``auto`` for models without the parameter."""
        return level_of(self.request.moderation)


@dataclass(frozen=True)
class Preview:
    b64: str
    index: int  # 0-based partial image index
    created_at: int


@dataclass(frozen=True)
class KeepAlive:
    """The engine is still working (the stream writes a comment line)."""


@dataclass(frozen=True)
class Final:
    images: tuple[DeliveredImage, ...]
    created_at: int
    revised_prompt: str  # what the engine conditioned on
    text_tokens: int
    input_image_tokens: int
    output_image_tokens: int


@dataclass(frozen=True)
class Failed:
    """The run failed after admission: the error a client gets (in-band in a stream)."""

    error: ImageForgeError


PipelineEvent = Preview | KeepAlive | Final | Failed


@dataclass
class Started:
    """An admitted, queued job: where the caller's limits stand, and its events (iterate or close it)."""

    limits: tuple[LimitState, ...]
    events: AsyncGenerator[PipelineEvent]

    async def final(self) -> Final:
        """Drain a non-streaming run: its :class:`Final`, or the error of its :class:`Failed`."""
        async with _closing(self.events) as events:
            async for event in events:
                if isinstance(event, Failed):
                    raise event.error
                if isinstance(event, Final):
                    return event
        raise AssertionError("a pipeline run ended without a final event")


@asynccontextmanager
async def _closing(gen: AsyncGenerator[Any]) -> AsyncIterator[AsyncGenerator[Any]]:
    try:
        yield gen
    finally:
        await gen.aclose()


class GenerationPipeline:
    def __init__(
        self,
        gateway: EngineGateway,
        screening: Screening,
        delivery: Delivery,
        rates: RateLimiter,
        tokens: TokenCounter,
        metrics: Metrics,
        *,
        keepalive_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.gateway = gateway
        self.screening = screening
        self.delivery = delivery
        self.rates = rates
        self.tokens = tokens
        self.metrics = metrics
        self.keepalive_s = keepalive_s
        self.clock = clock

    def check(self, job: ImageJob) -> None:
        """Raise now if the job would be refused by the engine or the queue (nothing is charged or queued)."""
        self.gateway.admit(job.request.model, job.request.params)

    async def start(self, job: ImageJob, cancel: threading.Event, *, base_url: str = "") -> Started:
        """Admit and queue ``job`` (module docstring, step 1); raises its refusal, nothing sent or charged.
        ``base_url`` is where url-format images are linked from."""
        events = self._run(job, cancel, base_url)
        try:
            admitted = await anext(events)
        except StopAsyncIteration:  # pragma: no cover - _run always yields its admission first
            raise AssertionError("the pipeline yielded no admission") from None
        assert isinstance(admitted, tuple)
        return Started(admitted, events)

    async def _run(self, job: ImageJob, cancel: threading.Event, base_url: str) -> AsyncGenerator[Any]:
        r = job.request
        async with self._audited(job) as (audit, totals):
            self.check(job)  # before moderation: a full queue or an unloaded model costs no classifier time
            screened = await self.screening.inputs(job.prompt, job.input_images, job.level, audit,
                                                   also=job.user_text, gpt=r.profile.gpt)  # fmt: skip
            run, limits = await self._queue(job, cancel)
            try:
                yield limits  # a caller that never reads the events still cancels the job when they are closed
                async with aclosing(self._engine_events(job, run, screened.minor, audit, totals, base_url)) as out:
                    async for event in out:
                        yield event
            except GenerationCancelled:
                raise
            except ImageForgeError as exc:
                totals["failed"] = exc
                yield Failed(exc)
            finally:
                audit.queue_ms, audit.run_ms = (t * 1000 for t in run.timings)
                run.cancel()  # a no-op once the run finished; otherwise the engine stops within a step

    async def _queue(self, job: ImageJob, cancel: threading.Event) -> tuple[EngineRun, tuple[LimitState, ...]]:
        """Test the limits, queue the job, charge the limits. With the in-process gateway nothing suspends, so
        nothing on the loop interleaves; a remote gateway awaits the replica's acceptance (milliseconds), in which
        another request may pass the same test (docs/operations.md: limits are approximate across replicas)."""
        r, p = job.request, job.request.params
        requests = 1 if job.charge_request else 0
        self.rates.test(job.key_id, r.end_user, p.n, requests)
        wanted = preview_steps(p.denoising_steps, r.partial_images) if r.stream else []
        run = await self.gateway.submit(r.model, p, cancel, wanted)
        return run, self.rates.hit(job.key_id, r.end_user, p.n, requests)

    async def _engine_events(
        self,
        job: ImageJob,
        run: EngineRun,
        minor: bool,
        audit: RequestAudit,
        totals: dict[str, Any],
        base_url: str,
    ) -> AsyncGenerator[PipelineEvent]:
        r = job.request
        index = 0
        idle = self.keepalive_s if r.stream else None
        async with aclosing(run.events(idle)) as events:
            async for event in events:
                if isinstance(event, Idle):
                    yield KeepAlive()
                elif isinstance(event, StepImage):
                    [preview] = await self.delivery.deliver(r, [event.image], minor, audit, b64=True)
                    yield Preview(str(preview.b64), index, int(self.clock()))
                    index += 1
                elif isinstance(event, RunDone):
                    yield await self._final(job, event, minor, audit, totals, base_url)

    async def _final(
        self, job: ImageJob, done: RunDone, minor: bool, audit: RequestAudit, totals: dict[str, Any], base_url: str
    ) -> Final:
        r = job.request
        images = done.result.images[:1] if r.stream else done.result.images  # a stream carries one image
        created = int(self.clock())
        b64 = r.stream or r.response_format != "url"
        delivered = await self.delivery.deliver(r, images, minor, audit, b64=b64, base_url=base_url, created=created)
        text = await asyncio.to_thread(self.tokens.count, job.prompt)
        totals["text_tokens"] = text  # done: closing the events after this is no cancellation
        return Final(tuple(delivered), created, done.result.prompt, text, job.input_image_tokens,
                     self._output_tokens(r))  # fmt: skip

    @staticmethod
    def _output_tokens(r: ResolvedRequest) -> int:
        p = r.params
        counted = r.quality in ("low", "medium", "high", "xhigh", "max")  # not DALL·E's standard/hd
        return image_tokens(r.quality, p.width, p.height) * p.n if counted else 0

    @asynccontextmanager
    async def _audited(self, job: ImageJob) -> AsyncIterator[tuple[RequestAudit, dict[str, Any]]]:
        """The audit record of one job: opened before admission, emitted once however the run ends."""
        r, p = job.request, job.request.params
        audit = RequestAudit(p.request_id, key_id=job.key_id, endpoint=job.endpoint, user=r.end_user, model=r.model,
                             size=r.size, quality=r.quality, n=p.n, stream=r.stream)  # fmt: skip
        totals: dict[str, Any] = {}
        try:
            yield audit, totals
        except BaseException as exc:
            # Closed after its final (or failed) event: the run ended on its own, nothing was cancelled.
            if not (isinstance(exc, GeneratorExit) and ("text_tokens" in totals or "failed" in totals)):
                _failed(audit, exc)
                if audit.outcome == "cancelled":
                    log.info("[%s] cancelled: the client went away", p.request_id)
            raise
        finally:
            failed = totals.get("failed")
            if failed is not None:
                _failed(audit, failed)
            self._emit(audit, job, totals.get("text_tokens", 0))

    def _emit(self, audit: RequestAudit, job: ImageJob, text_tokens: int) -> None:
        """The audit line and usage; bookkeeping never fails the request it records (issue 15)."""
        p = job.request.params
        try:
            audit.emit(self.metrics, pixels=p.width * p.height * p.n, steps=p.denoising_steps * p.n,
                       text_tokens=text_tokens, image_tokens=self._output_tokens(job.request))  # fmt: skip
        except Exception:
            log.exception("[%s] recording the request's audit line and usage failed", p.request_id)


def _failed(audit: RequestAudit, exc: BaseException) -> None:
    if isinstance(exc, ModerationBlockedError):
        audit.moderation_stage, audit.moderation_categories = exc.stage, exc.categories
    if isinstance(exc, ImageForgeError):
        audit.outcome, audit.status = exc.code or exc.type, exc.status
    else:  # the client went away (the task was cancelled, the stream closed), or a bug
        gone = isinstance(exc, asyncio.CancelledError | GeneratorExit)
        audit.outcome, audit.status = ("cancelled", 499) if gone else ("error", 500)
