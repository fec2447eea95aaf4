"""``POST /v1/images/generations`` as a service: fields in, ``ImagesResponse`` out; no HTTP framework here.

1. ``validation.resolve`` turns the body into frozen ``GenerationParams`` for the chosen model's profile.
2. The model's :class:`~imageforge.scheduler.worker.EngineWorker` runs the engine off the event loop.
3. Moderation (``imageforge.moderation``) checks the prompt and any input image before the job is queued, and
   every image before it is sent, each partial image included; a flagged one fails the request (with ``n > 1``
   one image fails them all) in the model's refusal shape (:func:`refusal`). Checks run in a worker thread, the
   output check side by side with encoding.
4. Images are encoded (one encode path, ``serving/encoding.py``, in its own pool) and returned as base64, or
   stored and returned as signed URLs that expire.
5. Every request ends with one audit line and its usage counted per API key and end-user (``serving/audit.py``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Any, Final

from imageforge.config import Catalogue
from imageforge.errors import (
    ContentPolicyViolationError,
    GenerationCancelled,
    ImageForgeError,
    ModerationBlockedError,
)
from imageforge.metrics import Metrics
from imageforge.moderation import Level, Moderator, Verdict
from imageforge.params import GenerationResult, StepPreview
from imageforge.protocol.image_events import ImageGenCompletedEvent, ImageGenPartialImageEvent
from imageforge.protocol.images import Image, ImagesResponse
from imageforge.scheduler.pool import EnginePool
from imageforge.scheduler.worker import Job
from imageforge.serving.audit import RequestAudit
from imageforge.serving.encoding import EncodePool
from imageforge.serving.usage import TokenCounter, image_tokens, usage_for
from imageforge.storage.files import FileImageStore
from imageforge.storage.signing import UrlSigner
from imageforge.validation import ResolvedRequest, resolve

__all__ = ["FILES_PATH", "KEEPALIVE", "ImagesService", "StreamItem", "preview_steps", "refusal"]

log = logging.getLogger(__name__)
FILES_PATH = "/v1/images/files"  # where url-format images are served (api/routes/files.py)
KEEPALIVE: Final = "keepalive"  # yielded by streams while the engine works; the SSE layer writes a comment line
StreamItem = ImageGenPartialImageEvent | ImageGenCompletedEvent | str


def refusal(verdict: Verdict, resolved: ResolvedRequest, request_id: str) -> ModerationBlockedError:
    """The refusal a client of this model expects (reference §5.4): GPT image models get
    ``moderation_blocked`` with ``moderation_details``, DALL·E models ``content_policy_violation``."""
    stage, categories = verdict.stage, verdict.categories
    if not resolved.profile.gpt:
        what = {"input": "Your prompt may contain text that is not allowed by our safety system.",
                "output": "The image generated from your prompt was flagged by our safety system."}[stage]  # fmt: skip
        return ContentPolicyViolationError(
            f"Your request was rejected as a result of our safety system. {what}", stage=stage, categories=categories
        )
    return ModerationBlockedError(
        "Your request was rejected by the safety system. If you believe this is an error, contact the operator of "
        f"this server and include the request ID {request_id}. safety_violations=[{', '.join(categories)}].",
        stage=stage,
        categories=categories,
    )


def _abandon(future: asyncio.Future[Any]) -> None:
    """Cancel work whose result is no longer wanted; an error it already raised is retrieved, not logged."""
    future.cancel()
    future.add_done_callback(lambda f: f.cancelled() or f.exception())


def preview_steps(total_steps: int, k: int) -> list[int]:
    """The steps (1-based) after which partial images are taken: ``k`` evenly spaced steps before the last one.

    Fewer than ``k`` when the engine runs fewer than ``k + 1`` steps (a 1-step model has no partial images): OpenAI
    documents that the final image may come before all partial images.
    """
    steps = {max(1, round(total_steps * (j + 1) / (k + 1))) for j in range(k)}
    return sorted(s for s in steps if s < total_steps)


class ImagesService:
    def __init__(
        self,
        catalogue: Catalogue,
        engines: EnginePool,
        store: FileImageStore,
        signer: UrlSigner,
        tokens: TokenCounter,
        *,
        url_ttl_seconds: int,
        default_gpt_model: str,
        encoder: EncodePool | None = None,
        metrics: Metrics | None = None,
        moderator: Moderator | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.catalogue = catalogue
        self.engines = engines
        self.store = store
        self.signer = signer
        self.tokens = tokens
        self.url_ttl_seconds = url_ttl_seconds
        self.default_gpt_model = default_gpt_model
        self.metrics = metrics or engines.metrics
        self.encoder = encoder or EncodePool(metrics=self.metrics)
        self.moderator = moderator or Moderator()
        self.clock = clock

    def resolve(self, body: Mapping[str, Any], request_id: str) -> ResolvedRequest:
        """Validate a request body (raises the named 400s); nothing has been sent to the client yet."""
        resolved = resolve(
            body,
            self.catalogue,
            self.engines.capabilities,
            default_gpt_model=self.default_gpt_model,
            request_id=request_id,
        )
        p = resolved.params
        log.info(
            "[%s] generate model=%s size=%s quality=%s n=%d format=%s response=%s moderation=%s end_user=%s "
            "stream=%s partial_images=%d",
            request_id, resolved.model, resolved.size, resolved.quality, p.n, resolved.output_format,
            resolved.response_format, resolved.moderation, resolved.end_user, resolved.stream, resolved.partial_images,
        )  # fmt: skip
        return resolved

    def _audit(self, resolved: ResolvedRequest, key_id: str, endpoint: str) -> RequestAudit:
        p = resolved.params
        return RequestAudit(p.request_id, key_id=key_id, endpoint=endpoint, user=resolved.end_user,
                            model=resolved.model, size=resolved.size, quality=resolved.quality, n=p.n,
                            stream=resolved.stream)  # fmt: skip

    async def _finish(self, audit: RequestAudit, resolved: ResolvedRequest, prompt: str | None) -> None:
        """The audit line and usage; bookkeeping never fails the request it records (issue 15)."""
        p = resolved.params
        try:
            text = await asyncio.to_thread(self.tokens.count, prompt) if audit.outcome == "ok" and prompt else 0
            audit.emit(self.metrics, pixels=p.width * p.height * p.n, steps=p.denoising_steps * p.n,
                       text_tokens=text, image_tokens=image_tokens(resolved.quality, p.width, p.height) * p.n
                       if resolved.quality in ("low", "medium", "high") else 0)  # fmt: skip
        except Exception:
            log.exception("[%s] recording the request's audit line and usage failed", p.request_id)

    @staticmethod
    def _failed(audit: RequestAudit, exc: BaseException) -> None:
        if isinstance(exc, ModerationBlockedError):
            audit.moderation_stage, audit.moderation_categories = exc.stage, exc.categories
        if isinstance(exc, ImageForgeError):
            audit.outcome, audit.status = exc.code or exc.type, exc.status
        else:  # the client went away (the task was cancelled), or a bug
            gone = isinstance(exc, asyncio.CancelledError | GeneratorExit)  # GeneratorExit: a closed stream
            audit.outcome, audit.status = ("cancelled", 499) if gone else ("error", 500)

    # Moderation ---------------------------------------------------------------------------------------------------

    @staticmethod
    def level(resolved: ResolvedRequest) -> Level:
        """The request's policy: its ``moderation`` value; ``auto`` for models without the parameter (DALL·E)."""
        return "low" if resolved.moderation == "low" else "auto"

    async def screen_input(
        self, resolved: ResolvedRequest, prompt: str, audit: RequestAudit, *, also: str | None = None
    ) -> Verdict:
        """Check the prompt (and ``also``, the user's own words when a planner wrote the prompt) and the input
        image (an edit's) before any work; raises the refusal when flagged.

        The returned verdict carries ``minor``, which the output checks use even when the input stage is off.
        """
        m, level, p = self.moderator, self.level(resolved), resolved.params
        verdict = await asyncio.to_thread(m.check_prompt, prompt, level)
        self._timed(audit, verdict)
        if also and not verdict.flagged:
            own = await asyncio.to_thread(m.check_prompt, also, level)
            self._timed(audit, own)
            verdict = dataclasses.replace(own, minor=own.minor or verdict.minor)
        if not verdict.flagged and p.init_image is not None:
            verdict = await asyncio.to_thread(m.check_input_images, [p.init_image], level, minor=verdict.minor)
            self._timed(audit, verdict)
        if verdict.flagged:
            raise self._blocked(verdict, resolved)
        return verdict

    async def _screen_output(
        self, resolved: ResolvedRequest, images: list[Any], minor: bool, audit: RequestAudit
    ) -> Verdict:
        verdict = await asyncio.to_thread(self.moderator.check_output, images, self.level(resolved), minor=minor)
        self._timed(audit, verdict)
        return verdict

    def _timed(self, audit: RequestAudit, verdict: Verdict) -> None:
        audit.moderation_ms += verdict.seconds * 1000
        if verdict.seconds:
            self.metrics.moderation_seconds.labels(verdict.stage).observe(verdict.seconds)

    def _blocked(self, verdict: Verdict, resolved: ResolvedRequest) -> ModerationBlockedError:
        p = resolved.params
        log.info("[%s] moderation blocked the request at stage %s: %s", p.request_id, verdict.stage,
                 ",".join(verdict.categories))  # fmt: skip
        return refusal(verdict, resolved, p.request_id)

    async def _encode_checked(
        self, resolved: ResolvedRequest, images: list[Any], minor: bool, audit: RequestAudit, *, as_b64: bool
    ) -> list[tuple[bytes | str, float]]:
        """Encode images while the output check runs beside it; nothing is returned (or stored) if flagged."""
        encoding = asyncio.gather(
            *(self.encoder.run(im, resolved.output_format, resolved.output_compression, as_b64=as_b64)
              for im in images)
        )  # fmt: skip
        try:
            verdict = await self._screen_output(resolved, images, minor, audit)
        except BaseException:
            _abandon(encoding)
            raise
        if verdict.flagged:
            _abandon(encoding)
            raise self._blocked(verdict, resolved)
        return list(await encoding)

    async def complete(
        self,
        resolved: ResolvedRequest,
        body: Mapping[str, Any],
        *,
        base_url: str,
        cancel: threading.Event,
        key_id: str = "-",
        endpoint: str = "images.generations",
    ) -> ImagesResponse:
        """Run a resolved (non-streaming) request: generate, encode, answer with b64_json or URLs."""
        p = resolved.params
        audit = self._audit(resolved, key_id, endpoint)
        timings: dict[str, float] = {}
        try:
            screened = await self.screen_input(resolved, body["prompt"], audit)
            result = await self.engines.worker(resolved.model).generate(
                p, cancel, model=resolved.model, timings=timings
            )
            created = int(self.clock())
            data = await self._deliver(resolved, result, base_url, created, audit, screened.minor)
            response = ImagesResponse(created=created, data=data)
            if resolved.profile.gpt:
                response.background = p.background
                response.output_format = resolved.output_format
                response.quality = resolved.quality
                response.size = resolved.size
                response.safety_identifier = body.get("safety_identifier") or None
            if resolved.profile.returns_usage:
                text_tokens = await asyncio.to_thread(self.tokens.count, body["prompt"])
                response.usage = usage_for(text_tokens, resolved.quality, p.width, p.height, p.n)
            return response
        except BaseException as exc:
            self._failed(audit, exc)
            if isinstance(exc, GenerationCancelled):
                log.info("[%s] cancelled: the client went away", p.request_id)
            raise
        finally:
            audit.queue_ms, audit.run_ms = timings.get("queue_s", 0) * 1000, timings.get("run_s", 0) * 1000
            await self._finish(audit, resolved, body.get("prompt"))

    async def stream(
        self,
        resolved: ResolvedRequest,
        body: Mapping[str, Any],
        *,
        cancel: threading.Event,
        keepalive_s: float = 10.0,
        key_id: str = "-",
        endpoint: str = "images.generations",
    ) -> AsyncGenerator[StreamItem]:
        """A streaming request's events (reference §2): up to ``partial_images`` previews of the denoising in
        progress, then the final image with usage. Yields :data:`KEEPALIVE` while a long step runs.

        The prompt is moderated and the job queued by this call, before the first byte, so a refused prompt or a
        full queue raises its 400 or 429 here rather than as an in-band error after a 200. Partial images are the
        engine's current estimate of the clean image at evenly spaced steps before the last (``preview_steps``),
        encoded like the final image: complete images of the requested size and format. Each is moderated before
        it is sent; a flagged one ends the stream with an in-band error and nothing of it is sent.
        """
        p = resolved.params
        wanted = set(preview_steps(p.denoising_steps, resolved.partial_images))
        loop = asyncio.get_running_loop()
        previews: asyncio.Queue[Any] = asyncio.Queue()  # preview images (PIL; serving does not import PIL)

        def on_step(st: StepPreview) -> None:  # on the engine's thread: hand the preview to the event loop
            if st.step in wanted:
                image = st.preview(0)[0]
                loop.call_soon_threadsafe(previews.put_nowait, image)

        worker = self.engines.worker(resolved.model)
        audit = self._audit(resolved, key_id, endpoint)
        try:
            screened = await self.screen_input(resolved, body["prompt"], audit, also=body.get("user_text"))
            queued = worker.submit(p, cancel, on_step, resolved.model)  # QueueFullError: a plain 429, nothing sent
        except BaseException as exc:  # refused, queue full, or the client gone: audited, nothing was sent
            self._failed(audit, exc)
            if audit.outcome == "cancelled":  # gone before the job was queued: no work was done
                log.info("[%s] cancelled: the client went away", p.request_id)
            await self._finish(audit, resolved, None)
            raise
        return self._stream_events(
            resolved, body, worker.wait, queued, previews, cancel, keepalive_s, audit, screened.minor
        )

    async def _stream_events(
        self,
        resolved: ResolvedRequest,
        body: Mapping[str, Any],
        wait: Callable[[Job, dict[str, float]], Awaitable[GenerationResult]],
        queued: Job,
        previews: asyncio.Queue[Any],
        cancel: threading.Event,
        keepalive_s: float,
        audit: RequestAudit,
        minor: bool,
    ) -> AsyncGenerator[StreamItem]:
        p = resolved.params
        timings: dict[str, float] = {}
        job = asyncio.ensure_future(wait(queued, timings))
        index = 0
        getter: asyncio.Future[Any] | None = None
        try:
            while True:
                if not previews.empty():
                    [(b64, cpu)] = await self._encode_checked(resolved, [previews.get_nowait()], minor, audit,
                                                              as_b64=True)  # fmt: skip
                    audit.encode_ms += cpu * 1000
                    yield ImageGenPartialImageEvent(
                        b64_json=str(b64), partial_image_index=index,
                        created_at=int(self.clock()), size=resolved.size, quality=resolved.quality,
                        background=p.background, output_format=resolved.output_format,
                    )  # fmt: skip
                    index += 1
                    continue
                if job.done():
                    break
                getter = asyncio.ensure_future(previews.get())
                done, _ = await asyncio.wait({getter, job}, timeout=keepalive_s, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    previews.put_nowait(getter.result())  # processed in order at the top of the loop
                else:
                    getter.cancel()
                if not done:
                    yield KEEPALIVE
            result = job.result()  # raises the job's error (an in-band error event for the client)
            [(b64, cpu)] = await self._encode_checked(resolved, list(result.images[:1]), minor, audit, as_b64=True)
            audit.encode_ms += cpu * 1000
            text_tokens = await asyncio.to_thread(self.tokens.count, body["prompt"])
            yield ImageGenCompletedEvent(
                b64_json=str(b64), created_at=int(self.clock()),
                usage=usage_for(text_tokens, resolved.quality, p.width, p.height, p.n), size=resolved.size,
                quality=resolved.quality, background=p.background, output_format=resolved.output_format,
            )  # fmt: skip
        except BaseException as exc:
            self._failed(audit, exc)
            raise
        finally:
            if getter is not None and not getter.done():
                getter.cancel()
            if not job.done():  # the client went away, or a preview was refused: stop the engine within a step
                cancel.set()
                job.cancel()
                if audit.outcome in ("ok", "cancelled"):  # not after a refusal or an error
                    log.info("[%s] cancelled: the client went away", p.request_id)
                    audit.outcome, audit.status = "cancelled", 499
            audit.queue_ms, audit.run_ms = timings.get("queue_s", 0) * 1000, timings.get("run_s", 0) * 1000
            await self._finish(audit, resolved, body.get("prompt"))

    async def _deliver(
        self,
        r: ResolvedRequest,
        result: GenerationResult,
        base_url: str,
        created: int,
        audit: RequestAudit,
        minor: bool,
    ) -> list[Image]:
        """Moderate and encode every image, then wrap each as base64 or as a stored, signed URL."""
        revised = result.prompt if r.profile.returns_revised_prompt else None
        as_b64 = r.response_format != "url"
        encoded = await self._encode_checked(r, list(result.images), minor, audit, as_b64=as_b64)
        audit.encode_ms = sum(cpu for _, cpu in encoded) * 1000
        if as_b64:
            return [Image(b64_json=str(out), revised_prompt=revised) for out, _ in encoded]
        return await asyncio.to_thread(
            self._store, [out for out, _ in encoded if isinstance(out, bytes)], r, base_url, created, revised
        )

    def _store(
        self, blobs: list[bytes], r: ResolvedRequest, base_url: str, created: int, revised: str | None
    ) -> list[Image]:
        """Write url-format images (blocking; runs in a thread) and sign their URLs."""
        out = []
        for data in blobs:
            stored = self.store.put(data, r.output_format, created + self.url_ttl_seconds)
            url = f"{base_url.rstrip('/')}{FILES_PATH}/{stored.name}?sig={self.signer.sign(stored.name)}"
            out.append(Image(url=url, revised_prompt=revised))
        return out
