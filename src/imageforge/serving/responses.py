"""``POST /v1/responses`` with the ``image_generation`` tool as a service; no HTTP framework here.

1. :meth:`ResponsesService.prepare` (``responses_prepare.py``) checks everything a request can be refused for
   before anything is stored or streamed; with the built-in planner, the image request of its plan too.
2. :meth:`ResponsesService.start` admits the request before the first byte: a planned image call is admitted and
   queued through the generation pipeline (its rate limits, queue and input moderation; a refused prompt is kept
   for the stream, where it surfaces as a failed ``image_generation_call``), otherwise the request alone is charged.
3. :meth:`ResponsesService.events` runs it as the event sequence of reference §4.4: the planner decides, the image
   is made by the pipeline (previews become ``partial_image`` events), and the response is stored
   (``store: true``) when it starts and when it ends. ``sequence_number`` counts every event from 0. A
   non-streaming request drains the same sequence (:meth:`ResponsesService.create`), so both paths produce the
   same response. Whatever raises in between, a stored response ends ``completed``, ``failed`` or ``cancelled``.
4. Multi-turn edits: the latest image in the conversation (a stored earlier response, a referenced
   ``image_generation_call``, or a user's ``input_image``) is the input of an image-to-image run on the same
   engine; ``input_fidelity`` sets how much of it is kept (``validation_edits.EDIT_STRENGTH``), and a mask limits
   where it is repainted. The planner writes the prompt of the result ("a blue heart"), not the instruction.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Literal

from imageforge.config import Catalogue
from imageforge.errors import GenerationCancelled, ImageForgeError, LimitState, ModerationBlockedError, NotFoundError
from imageforge.ids import new_id
from imageforge.protocol.response_events import (
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseEvent,
    ResponseFailedEvent,
    ResponseImageGenCallCompletedEvent,
    ResponseImageGenCallGeneratingEvent,
    ResponseImageGenCallInProgressEvent,
    ResponseImageGenCallPartialImageEvent,
    ResponseInProgressEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
)
from imageforge.protocol.responses import (
    ImageGenerationCall,
    ImageGenerationCallError,
    ModerationDetails,
    OutputItem,
    OutputText,
    Response,
    ResponseError,
    ResponseOutputMessage,
    ResponseUsage,
)
from imageforge.serving.images_wire import SVG_TRACER
from imageforge.serving.pipeline import Failed, Final, GenerationPipeline, ImageJob, KeepAlive, Preview, Started
from imageforge.serving.planners import Plan, PlannerRouter
from imageforge.serving.responses_prepare import PreparedResponse, ResponsePreparer, edit_inputs
from imageforge.serving.usage import TokenCounter
from imageforge.storage.responses import ResponseStore
from imageforge.validation import ResolvedRequest

__all__ = ["PreparedResponse", "ResponseRun", "ResponsesService"]

log = logging.getLogger(__name__)
FinishedStatus = Literal["completed", "generating"]


@dataclass
class ResponseRun:
    """An admitted Responses request: where the caller's limits stand, and the image call queued for its plan
    (or the refusal of its prompt, sent in-band as a failed call)."""

    limits: tuple[LimitState, ...]
    started: Started | None = None
    refused: ImageForgeError | None = None


class ResponsesService:
    def __init__(
        self,
        catalogue: Catalogue,
        pipeline: GenerationPipeline,
        store: ResponseStore,
        planners: PlannerRouter,
        tokens: TokenCounter,
        *,
        default_image_model: str,
        finished_status: FinishedStatus = "completed",
        max_input_tokens: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.pipeline = pipeline
        self.store = store
        self.planners = planners
        self.tokens = tokens
        self.finished_status = finished_status
        self.clock = clock
        self.preparer = ResponsePreparer(catalogue, pipeline.gateway.capabilities, store, planners, tokens,
                                         default_image_model=default_image_model, max_input_tokens=max_input_tokens,
                                         clock=clock)  # fmt: skip

    async def prepare(self, body: Mapping[str, Any], request_id: str) -> PreparedResponse:
        return await self.preparer.prepare(body, request_id)

    # 2. Admission --------------------------------------------------------------------------------------------------

    async def start(self, p: PreparedResponse, cancel: threading.Event) -> ResponseRun:
        """Admit the request before the first byte (module docstring, step 2); raises a 429 or 503."""
        user = p.request.safety_identifier or p.request.user
        if p.image is not None and p.plan is not None:
            try:
                started = await self.pipeline.start(self._job(p, p.image), cancel)
            except ModerationBlockedError as exc:  # the call fails in-band; the request itself is charged
                return ResponseRun(self.pipeline.rates.check(p.key_id, user, 0), refused=exc)
            return ResponseRun(started.limits, started)
        if p.plan is None and p.image_model is not None and p.context.tool_offered:
            self.pipeline.gateway.admit(p.image_model, None)  # a remote planner may call the tool: a full queue
        return ResponseRun(self.pipeline.rates.check(p.key_id, user, 0))

    def _job(self, p: PreparedResponse, resolved: ResolvedRequest, *, charged: bool = False) -> ImageJob:
        """The image call as a pipeline job; the planner's prompt is moderated, and the user's latest words with
        it (a remote planner may rewrite them)."""
        assert p.plan is not None or charged
        partials = (p.tool.partial_images or 0) if p.stream and p.tool is not None else 0
        resolved = dataclasses.replace(resolved, partial_images=partials)
        user_text = next((t.text for t in reversed(p.turns) if t.role == "user"), None)
        images = (p.edit_inputs[0],) if resolved.params.init_image is not None and p.edit_inputs else ()
        return ImageJob(resolved, prompt=resolved.params.prompt, key_id=p.key_id, endpoint="responses",
                        user_text=user_text, input_images=images, charge_request=not charged)  # fmt: skip

    # 3. Running ----------------------------------------------------------------------------------------------------

    async def create(self, prepared: PreparedResponse, run: ResponseRun, cancel: threading.Event) -> Response:
        """A non-streaming request: the same events, drained; the final response. A failed image call whose
        error is the server's (5xx) or a full queue (429) is raised as that error; any other failure is a failed
        response."""
        final: Response | None = None
        async with aclosing(self.events(prepared, run, cancel, reraise=True)) as events:
            async for event in events:
                if isinstance(event, ResponseCompletedEvent | ResponseFailedEvent):
                    final = event.response
        assert final is not None
        return final

    async def events(
        self, p: PreparedResponse, run: ResponseRun, cancel: threading.Event, *, reraise: bool = False
    ) -> AsyncGenerator[ResponseEvent | KeepAlive]:
        """The events of reference §4.4 with ``sequence_number`` 0, 1, 2, ...; :class:`KeepAlive` while a long
        step runs (not numbered)."""
        seq = 0

        def number(event: ResponseEvent) -> ResponseEvent:
            nonlocal seq
            event.sequence_number = seq
            seq += 1
            return event

        response = p.response
        output: list[OutputItem] = []
        failures: list[ImageForgeError] = []  # an image call's error (the call itself reads "failed")
        try:
            await self._save(p, response)
            yield number(ResponseCreatedEvent(response=response.model_copy()))
            yield number(ResponseInProgressEvent(response=response.model_copy()))
            plan = p.plan or await self.planners.for_model(p.request.model).plan(p.context)
            if plan.image_prompt is not None and p.tool is not None and p.image_model is not None:
                call = ImageGenerationCall(id=new_id("ig"), status="in_progress", action=plan.action)
                index = len(output)
                async with aclosing(self._image_call(p, run, plan, call, index, cancel, failures)) as call_events:
                    async for event in call_events:
                        yield event if isinstance(event, KeepAlive) else number(event)
                output.append(call)
            if not failures and plan.message:
                async for event in self._message(plan.message, len(output), output):
                    yield number(event)
        except ImageForgeError as exc:
            if isinstance(exc, GenerationCancelled) or cancel.is_set():
                self._cancelled(p, response, output)
                raise
            failures.append(exc)
        except (asyncio.CancelledError, GeneratorExit):  # the client went away mid-stream
            cancel.set()
            self._cancelled(p, response, output)
            raise
        except Exception:  # a bug: the response still ends failed (and stored so), never in_progress
            log.exception("[%s] response failed on an unexpected error", p.request_id)
            failures.append(ImageForgeError(f"The server had an error while processing your request ({p.request_id})."))

        response.output = output
        response.completed_at = int(self.clock())
        try:
            response.usage = self._usage(p, await asyncio.to_thread(self._written_tokens, output))
        except Exception:  # counting must not keep the response from ending
            log.exception("[%s] counting the response's usage failed", p.request_id)
        if not failures:
            response.status = "completed"
            await self._save_final(p, response)
            yield number(ResponseCompletedEvent(response=response.model_copy()))
            return
        original = failures[0]
        log.warning("[%s] response failed: %r", p.request_id, original)
        response.status = "failed"
        response.error = ResponseError(code=original.code or original.type, message=original.message)
        await self._save_final(p, response)
        if reraise and (original.status >= 500 or original.status == 429):
            raise original  # a non-streaming client gets the status it can act on (retry), not a failed response
        yield number(ResponseFailedEvent(response=response.model_copy()))

    def _cancelled(self, p: PreparedResponse, response: Response, output: list[OutputItem]) -> None:
        response.status = "cancelled"
        response.output = output
        self._save_later(p, response)

    async def _image_call(
        self,
        p: PreparedResponse,
        run: ResponseRun,
        plan: Plan,
        call: ImageGenerationCall,
        index: int,
        cancel: threading.Event,
        failures: list[ImageForgeError],
    ) -> AsyncGenerator[ResponseEvent | KeepAlive]:
        """One image call's events; ``call`` is updated in place (``completed`` with its result, or ``failed``
        with its error also appended to ``failures``)."""
        assert p.tool is not None and p.image_model is not None and plan.image_prompt is not None
        edit = plan.action == "edit" and p.source is not None
        call.action = "edit" if edit else "generate"
        started, refused = (run.started, run.refused) if plan is p.plan else (None, None)
        try:
            if edit and p.edit_inputs is None:  # a remote planner chose to edit: decode the image now
                assert p.source is not None
                p.edit_inputs = await asyncio.to_thread(edit_inputs, p.source, p.tool)
            resolved = p.image if p.image is not None and plan is p.plan else self.preparer.image_request(p, plan)
        except ImageForgeError as exc:
            refused = exc
            resolved = None
        if resolved is not None:
            call.background = resolved.params.background
            call.output_format = resolved.output_format
            call.quality = resolved.quality
            call.size = resolved.size
            if resolved.output_format == "svg":  # traced, not written by a language model (images_wire.SvgUsage)
                call.svg_usage = {"input_tokens": 0, "output_tokens": 0, "reasoning_tokens": 0, "total_tokens": 0,
                                  "model": SVG_TRACER}  # fmt: skip
        call.revised_prompt = plan.image_prompt
        log.info("[%s] image_generation_call %s action=%s model=%s size=%s quality=%s", p.request_id, call.id,
                 call.action, p.image_model, call.size, call.quality)  # fmt: skip
        yield ResponseOutputItemAddedEvent(output_index=index, item=call.model_copy())
        yield ResponseImageGenCallInProgressEvent(item_id=call.id, output_index=index)
        yield ResponseImageGenCallGeneratingEvent(item_id=call.id, output_index=index)
        try:
            if refused is not None:
                raise refused
            if started is None:  # planned after the first byte (a remote planner): admitted now, in-band
                assert resolved is not None
                started = await self.pipeline.start(self._job(p, resolved, charged=True), cancel)
            async with aclosing(started.events) as events:
                async for event in events:
                    if isinstance(event, KeepAlive):
                        yield event
                    elif isinstance(event, Preview):
                        yield ResponseImageGenCallPartialImageEvent(
                            item_id=call.id, output_index=index, partial_image_index=event.index,
                            partial_image_b64=event.b64, background=str(call.background),
                            output_format=str(call.output_format), quality=str(call.quality), size=str(call.size),
                        )  # fmt: skip
                    elif isinstance(event, Final):
                        call.result = event.images[0].b64
                    elif isinstance(event, Failed):
                        raise event.error
        except GenerationCancelled:
            raise
        except ImageForgeError as exc:
            call.status = "failed"
            details = exc.extra.get("moderation_details")  # a moderation refusal says its stage and categories
            call.error = ImageGenerationCallError(
                code=exc.code, message=exc.message, param=exc.param, type=exc.type,
                moderation_details=ModerationDetails.model_validate(details) if details else None,
            )  # fmt: skip
            failures.append(exc)
            yield ResponseOutputItemDoneEvent(output_index=index, item=call.model_copy())
            return
        call.status = self.finished_status  # never "generating" without a result: the result is set above
        yield ResponseImageGenCallCompletedEvent(item_id=call.id, output_index=index)
        yield ResponseOutputItemDoneEvent(output_index=index, item=call.model_copy())

    async def _message(self, text: str, index: int, output: list[OutputItem]) -> AsyncGenerator[ResponseEvent]:
        msg = ResponseOutputMessage(id=new_id("msg"), status="in_progress", content=[])
        yield ResponseOutputItemAddedEvent(output_index=index, item=msg.model_copy())
        yield ResponseContentPartAddedEvent(item_id=msg.id, output_index=index, part=OutputText(text=""))
        yield ResponseTextDeltaEvent(item_id=msg.id, output_index=index, delta=text)
        yield ResponseTextDoneEvent(item_id=msg.id, output_index=index, text=text)
        yield ResponseContentPartDoneEvent(item_id=msg.id, output_index=index, part=OutputText(text=text))
        msg.status = "completed"
        msg.content = [OutputText(text=text)]
        output.append(msg)
        yield ResponseOutputItemDoneEvent(output_index=index, item=msg.model_copy())

    def _written_tokens(self, output: list[OutputItem]) -> int:
        """What the mainline model wrote (the image prompt and the message), counted with the shipped WordPiece
        tokenizer (serving/usage.py); blocking."""
        written = []
        for item in output:
            if isinstance(item, ImageGenerationCall):
                written.append(item.revised_prompt or "")
            else:
                written += [c.text for c in item.content]
        return self.tokens.count("\n".join(written))

    @staticmethod
    def _usage(p: PreparedResponse, written: int) -> ResponseUsage:
        """The mainline model's tokens: what it read (counted in prepare) and what it wrote."""
        return ResponseUsage(input_tokens=p.input_tokens, output_tokens=written, total_tokens=p.input_tokens + written)

    # 3. Storage ----------------------------------------------------------------------------------------------------

    async def _save(self, p: PreparedResponse, response: Response) -> None:
        if p.store:
            await asyncio.to_thread(self.store.save, response.model_dump(mode="json"), p.input_items)

    async def _save_final(self, p: PreparedResponse, response: Response) -> None:
        """Save the finished response; if that fails, record at least that it failed, so no reader waits on an
        ``in_progress`` that will never change."""
        try:
            await self._save(p, response)
        except Exception:
            log.exception("[%s] saving the finished response failed", p.request_id)
            if p.store:
                await asyncio.to_thread(self._mark_failed, response.id)

    def _mark_failed(self, response_id: str) -> None:
        try:
            self.store.fail(response_id, "The server could not save the finished response.")
        except Exception:
            log.exception("marking response %s failed did not work either", response_id)

    def _save_later(self, p: PreparedResponse, response: Response) -> None:
        """Record a cancelled response without awaiting (the task is being torn down)."""
        if p.store:
            doc = response.model_dump(mode="json")
            asyncio.get_running_loop().run_in_executor(None, self._save_quietly, doc, p.input_items)

    def _save_quietly(self, doc: dict[str, Any], input_items: list[dict[str, Any]]) -> None:
        try:
            self.store.save(doc, input_items)
        except Exception:
            log.exception("saving cancelled response %s failed", doc.get("id"))

    async def retrieve(self, response_id: str) -> dict[str, Any]:
        found = await asyncio.to_thread(self.store.get, response_id)
        if found is None:
            raise NotFoundError(f"Response with id '{response_id}' not found.")
        return found

    async def input_items(self, response_id: str) -> list[dict[str, Any]]:
        found = await asyncio.to_thread(self.store.input_items, response_id)
        if found is None:
            raise NotFoundError(f"Response with id '{response_id}' not found.")
        return found

    async def delete(self, response_id: str) -> None:
        if not await asyncio.to_thread(self.store.delete, response_id):
            raise NotFoundError(f"Response with id '{response_id}' not found.")
