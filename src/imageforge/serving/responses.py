"""``POST /v1/responses`` with the ``image_generation`` tool as a service; no HTTP framework here.

1. :meth:`ResponsesService.prepare` checks everything a request can be refused for before anything is stored or
   streamed, so those problems are plain JSON 400s: fields, tools, input items and their images,
   ``previous_response_id``, the conversation's length (``responses_max_input_tokens``, by default gpt-5's
   input limit, counted as usage is), an
   edit's image and mask. The built-in planner is deterministic, so it plans here too and the image request
   it would make (the prompt it writes from the input included) is resolved before the first byte; a remote
   planner is asked after the stream has started, and what it writes is checked then.
2. :meth:`ResponsesService.events` runs the request as the event sequence of reference §4.4: the planner
   decides, the image is generated through :class:`~imageforge.serving.images.ImagesService` (previews become
   ``partial_image`` events), and the response is stored (``store: true``) when it starts and when it ends.
   ``sequence_number`` counts every event from 0. A non-streaming request drains the same sequence
   (:meth:`ResponsesService.create`), so both paths produce the same response. Whatever raises in between, a
   stored response ends ``completed``, ``failed`` or ``cancelled``, never ``in_progress``.
3. Multi-turn edits: the latest image in the conversation (a stored earlier response, a referenced
   ``image_generation_call``, or a user's ``input_image``) is the init image of an image-to-image run on the
   same engine; ``input_fidelity`` sets how much of it is kept (:data:`EDIT_STRENGTH`), and a mask limits where
   it is repainted.
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
from imageforge.errors import (
    GenerationCancelled,
    ImageForgeError,
    InvalidRequestError,
    ModelNotFoundError,
    NotFoundError,
    UnsupportedParameterError,
)
from imageforge.ids import new_id
from imageforge.imaging.decode import decode_base64_image, decode_data_url, repaint_mask
from imageforge.protocol.image_events import ImageGenCompletedEvent, ImageGenPartialImageEvent
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
    ImageGenerationTool,
    ModerationDetails,
    OutputItem,
    OutputText,
    Response,
    ResponseCreateRequest,
    ResponseError,
    ResponseOutputMessage,
    ResponseUsage,
    parse_create_request,
    parse_input,
)
from imageforge.serving.conversation import (
    ConversationImage,
    Turn,
    latest_image,
    normalise_input,
    turns_from_items,
)
from imageforge.serving.images import KEEPALIVE, ImagesService
from imageforge.serving.planners import Plan, PlanContext, PlannerRouter
from imageforge.serving.usage import TokenCounter
from imageforge.storage.responses import ResponseStore
from imageforge.validation import ResolvedRequest, resolve

__all__ = ["EDIT_STRENGTH", "PreparedResponse", "ResponsesService"]

log = logging.getLogger(__name__)
# input_fidelity -> share of the noise schedule re-run over the edited image (diffusers' img2img `strength`):
# high keeps more of the input's layout and colours, low lets the new prompt change more.
EDIT_STRENGTH = {"high": 0.45, "low": 0.7}
_TOOL_DEFAULTS = {
    "quality": "auto", "size": "auto", "output_format": "png", "output_compression": 100, "moderation": "auto",
    "background": "auto", "partial_images": 0, "action": "auto",
}  # fmt: skip
_METADATA_LIMITS = (16, 64, 512)  # pairs, key length, value length (OpenAI's)
FinishedStatus = Literal["completed", "generating"]


@dataclass
class PreparedResponse:
    """A checked request, ready to run."""

    request: ResponseCreateRequest
    response: Response  # in_progress, no output yet
    input_items: list[dict[str, Any]]  # normalised, as stored
    turns: list[Turn]  # the whole conversation, oldest first
    tool: ImageGenerationTool | None
    image_model: str | None
    context: PlanContext
    source: ConversationImage | None  # the image an edit would start from
    request_id: str
    input_tokens: int = 0  # what the mainline model reads (instructions and conversation text)
    plan: Plan | None = None  # decided in prepare when the planner is deterministic (the built-in one)
    image: ResolvedRequest | None = None  # the image request of that plan, resolved
    edit_inputs: tuple[Any, Any] | None = None  # (image, mask or None) of an edit, decoded and checked
    key_id: str = "-"  # the caller, for the audit line and usage (set by the route)

    @property
    def stream(self) -> bool:
        return bool(self.request.stream)

    @property
    def store(self) -> bool:
        return self.request.store is not False


class ResponsesService:
    def __init__(
        self,
        catalogue: Catalogue,
        images: ImagesService,
        store: ResponseStore,
        planners: PlannerRouter,
        tokens: TokenCounter,
        *,
        default_image_model: str,
        finished_status: FinishedStatus = "completed",
        max_input_tokens: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.catalogue = catalogue
        self.images = images
        self.store = store
        self.planners = planners
        self.tokens = tokens
        self.default_image_model = default_image_model
        self.finished_status = finished_status
        self.max_input_tokens = max_input_tokens
        self.clock = clock

    # 1. Checks before the first byte -------------------------------------------------------------------------------

    async def prepare(self, body: Mapping[str, Any], request_id: str) -> PreparedResponse:
        req = parse_create_request(body)
        tools = [t for t in req.tools or () if isinstance(t, ImageGenerationTool)]  # others were refused by name
        if len(tools) > 1:
            raise InvalidRequestError("At most one image_generation tool may be given.", param="tools")
        tool = tools[0] if tools else None
        choice = self._tool_choice(req.tool_choice, tool)
        _check_metadata(req.metadata)

        # The conversation: stored turns, then the new input (references resolved against the store).
        turns: list[Turn] = []
        if req.previous_response_id is not None:
            chain = await asyncio.to_thread(self.store.chain, req.previous_response_id)
            if chain is None:
                raise InvalidRequestError(
                    f"Previous response with id '{req.previous_response_id}' not found.",
                    param="previous_response_id",
                    code="previous_response_not_found",
                )
            for inputs, outputs in chain:
                turns += turns_from_items(inputs, "previous_response_id") + turns_from_items(outputs, "output")
        input_items = await asyncio.to_thread(normalise_input, parse_input(req.input), self.store.item)
        new_turns = turns_from_items(input_items)
        await asyncio.to_thread(_check_images, [img for t in new_turns for img in t.images])
        turns += new_turns
        source = latest_image(turns)

        image_model = None
        if tool is not None:
            image_model = self._check_tool(tool, source)
        offered = tool is not None and req.max_tool_calls != 0
        context = PlanContext(
            model=req.model,
            instructions=req.instructions,
            turns=turns,
            tool_offered=offered,
            tool_choice=choice,
            action=(tool.action or "auto") if tool is not None else "auto",  # type: ignore[arg-type]
            has_image=source is not None,
            source_prompt=source.prompt if source is not None else None,
            temperature=req.temperature,
            top_p=req.top_p,
            max_output_tokens=req.max_output_tokens,
        )
        response = Response(
            id=new_id("resp"),
            created_at=int(self.clock()),
            status="in_progress",
            model=req.model,
            instructions=req.instructions,
            max_output_tokens=req.max_output_tokens,
            max_tool_calls=req.max_tool_calls,
            metadata=dict(req.metadata or {}),
            parallel_tool_calls=True if req.parallel_tool_calls is None else req.parallel_tool_calls,
            previous_response_id=req.previous_response_id,
            reasoning=req.reasoning,
            safety_identifier=req.safety_identifier,
            service_tier=req.service_tier or "default",
            store=req.store is not False,
            temperature=1.0 if req.temperature is None else float(req.temperature),
            text={"format": {"type": "text"}, **(req.text.model_dump(exclude_none=True) if req.text else {})},
            tool_choice=req.tool_choice if req.tool_choice is not None else "auto",
            tools=[self._echo_tool(t) for t in tools],
            top_p=1.0 if req.top_p is None else float(req.top_p),
            truncation=req.truncation or "disabled",
            user=req.user,
            prompt_cache_key=req.prompt_cache_key,
        )
        log.info(
            "[%s] responses model=%s tool=%s tool_choice=%s image_model=%s previous=%s turns=%d stream=%s store=%s",
            request_id, req.model, tool is not None, choice, image_model, req.previous_response_id, len(turns),
            bool(req.stream), req.store is not False,
        )  # fmt: skip
        prepared = PreparedResponse(req, response, input_items, turns, tool, image_model, context, source, request_id)
        await self._check_before_start(prepared)
        return prepared

    async def _check_before_start(self, p: PreparedResponse) -> None:
        """What the request can still be refused for once its fields are valid: the conversation's length, the
        edit's image and mask, and (with the built-in planner) the image request the plan makes."""
        read = "\n".join([p.request.instructions or "", *(t.text for t in p.turns)])
        p.input_tokens = await asyncio.to_thread(self.tokens.count, read)
        if p.input_tokens > self.max_input_tokens:
            raise InvalidRequestError(
                f"Your input exceeds the context window of this model: {p.input_tokens} tokens, at most "
                f"{self.max_input_tokens}. Please adjust your input and try again.",
                param="input",
                code="context_length_exceeded",
            )
        planner = self.planners.for_model(p.request.model)
        if planner.deterministic:
            p.plan = await planner.plan(p.context)
        might_edit = p.source is not None and p.tool is not None and p.tool.action != "generate"
        if p.plan is not None:
            might_edit &= p.plan.action == "edit" and p.plan.image_prompt is not None
        if might_edit:
            assert p.source is not None and p.tool is not None
            p.edit_inputs = await asyncio.to_thread(self._edit_inputs, p.source, p.tool)
        if p.plan is not None and p.plan.image_prompt is not None and p.image_model is not None:
            assert p.tool is not None
            p.image = self._image_request(p, p.plan)

    @staticmethod
    def _tool_choice(value: str | dict[str, Any] | None, tool: ImageGenerationTool | None) -> Any:
        if value is None or value == "auto":
            return "auto"
        if value in ("none", "required"):
            choice = value
        elif isinstance(value, dict) and value.get("type") == "image_generation":
            choice = "required"
        elif isinstance(value, dict):
            raise UnsupportedParameterError(
                f"tool_choice of type {value.get('type')!r} is not supported; use 'auto', 'none', 'required' or "
                '{"type": "image_generation"}.',
                param="tool_choice",
            )
        else:
            raise InvalidRequestError(
                f"Invalid value for 'tool_choice': {value!r}. Supported values are: 'auto', 'none' and 'required'.",
                param="tool_choice",
                code="invalid_value",
            )
        if choice == "required" and tool is None:
            raise InvalidRequestError(
                "tool_choice requires a tool, but no image_generation tool was given in 'tools'.",
                param="tool_choice",
            )
        return choice

    def _check_tool(self, tool: ImageGenerationTool, source: ConversationImage | None) -> str:
        """Validate the tool's fields against its image model's rules (errors name ``tools``); its model id."""
        model = tool.model or self.default_image_model
        action = tool.action or "auto"
        if action not in ("auto", "generate", "edit"):
            raise _tool_error(f"Invalid value for 'action': {action!r}. Supported values are: 'generate', 'edit' "
                              "and 'auto'.")  # fmt: skip
        try:
            profile = self.catalogue.profile(model)
        except ModelNotFoundError:
            raise _tool_error(f"The image model '{model}' is not served here.") from None
        if not profile.gpt:
            raise _tool_error(f"The image_generation tool needs a GPT image model; '{model}' is a DALL·E model.")
        if tool.input_fidelity is not None:
            if not profile.input_fidelity:
                raise _tool_error(f"input_fidelity is not supported with model {model}.",
                                  code="invalid_input_fidelity_model")  # fmt: skip
            if tool.input_fidelity not in EDIT_STRENGTH:
                raise _tool_error(f"Invalid value for 'input_fidelity': {tool.input_fidelity!r}. Supported values "
                                  "are: 'high' and 'low'.")  # fmt: skip
        if action == "edit" and source is None:
            raise _tool_error("action 'edit' needs an image in the conversation (an input_image, an earlier "
                              "image_generation_call, or previous_response_id).")  # fmt: skip
        mask = tool.input_image_mask
        if mask is not None:
            if mask.file_id is not None:
                raise _tool_error("input_image_mask.file_id is not supported (this server has no Files API); send "
                                  "the mask as a data URL in image_url.")  # fmt: skip
            if mask.image_url is None:
                raise _tool_error("input_image_mask needs an image_url (a data URL).")
            if source is None:
                raise _tool_error("input_image_mask needs an image to edit in the conversation.")
        self._resolve_tool(tool, model, "x", None)  # the values the model's rules decide (size, quality, ...)
        return model

    def _resolve_tool(
        self, tool: ImageGenerationTool, model: str, prompt: str, size_hint: str | None
    ) -> ResolvedRequest:
        fields = {
            "model": model, "prompt": prompt, "quality": tool.quality, "size": tool.size,
            "output_format": tool.output_format, "output_compression": tool.output_compression,
            "moderation": tool.moderation, "background": tool.background, "partial_images": tool.partial_images,
            "stream": True,
        }  # fmt: skip
        if size_hint is not None and tool.size in (None, "auto"):
            try:  # an edit keeps its image's size when the model allows it
                return self._resolve({**fields, "size": size_hint})
            except InvalidRequestError:
                pass
        try:
            return self._resolve(fields)
        except InvalidRequestError as exc:
            if exc.param == "prompt":  # the planner wrote the prompt from the input
                raise type(exc)(f"Invalid 'input': the image prompt written from it is refused: {exc.message}",
                                param="input", code=exc.code) from None  # fmt: skip
            raise type(exc)(f"Invalid image_generation tool (tools[0]): {exc.message}", param="tools",
                            code=exc.code) from None  # fmt: skip

    def _resolve(self, fields: Mapping[str, Any]) -> ResolvedRequest:
        return resolve(fields, self.catalogue, self.images.engines.capabilities,
                       default_gpt_model=self.default_image_model)  # fmt: skip

    def _echo_tool(self, tool: ImageGenerationTool) -> ImageGenerationTool:
        filled = {k: v for k, v in _TOOL_DEFAULTS.items() if getattr(tool, k) is None}
        return tool.model_copy(update={"model": tool.model or self.default_image_model, **filled})

    # 2. Running ----------------------------------------------------------------------------------------------------

    async def create(self, prepared: PreparedResponse, cancel: threading.Event) -> Response:
        """A non-streaming request: the same events, drained; the final response. A failed image call whose
        error is the server's (5xx) or a full queue (429) is raised as that error; any other failure is a failed
        response."""
        final: Response | None = None
        async for event in self.events(prepared, cancel, reraise=True):
            if isinstance(event, ResponseCompletedEvent | ResponseFailedEvent):
                final = event.response
        assert final is not None
        return final

    async def events(
        self, p: PreparedResponse, cancel: threading.Event, *, reraise: bool = False
    ) -> AsyncGenerator[ResponseEvent | str]:
        """The events of reference §4.4 with ``sequence_number`` 0, 1, 2, ...; :data:`KEEPALIVE` strings while a
        long step runs (not numbered)."""
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
                async with aclosing(self._image_call(p, plan, call, index, cancel, failures)) as call_events:
                    async for event in call_events:
                        yield event if isinstance(event, str) else number(event)
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
        plan: Plan,
        call: ImageGenerationCall,
        index: int,
        cancel: threading.Event,
        failures: list[ImageForgeError],
    ) -> AsyncGenerator[ResponseEvent | str]:
        """One image call's events; ``call`` is updated in place (``completed`` with its result, or ``failed``
        with its error also appended to ``failures``)."""
        assert p.tool is not None and p.image_model is not None and plan.image_prompt is not None
        edit = plan.action == "edit" and p.source is not None
        call.action = "edit" if edit else "generate"
        if edit and p.edit_inputs is None:  # a remote planner chose to edit: decode the image now
            assert p.source is not None
            p.edit_inputs = await asyncio.to_thread(self._edit_inputs, p.source, p.tool)
        resolved = p.image if p.image is not None and p.plan is plan else self._image_request(p, plan)
        params = resolved.params
        call.background = params.background
        call.output_format = resolved.output_format
        call.quality = resolved.quality
        call.size = resolved.size
        call.revised_prompt = plan.image_prompt
        log.info("[%s] image_generation_call %s action=%s model=%s size=%s quality=%s", p.request_id, call.id,
                 call.action, p.image_model, call.size, call.quality)  # fmt: skip
        yield ResponseOutputItemAddedEvent(output_index=index, item=call.model_copy())
        yield ResponseImageGenCallInProgressEvent(item_id=call.id, output_index=index)
        yield ResponseImageGenCallGeneratingEvent(item_id=call.id, output_index=index)
        partials = (p.tool.partial_images or 0) if p.stream else 0
        resolved = dataclasses.replace(resolved, partial_images=partials)
        try:
            # The planner's prompt is checked, and the user's latest words with it (a remote planner may rewrite
            # them); a refused prompt or input image raises here and the call fails with the refusal.
            user_text = next((t.text for t in reversed(p.turns) if t.role == "user"), None)
            events = await self.images.stream(
                resolved, {"prompt": plan.image_prompt, "user_text": user_text}, cancel=cancel, key_id=p.key_id,
                endpoint="responses",
            )  # fmt: skip
            async with aclosing(events) as run:
                async for event in run:
                    if isinstance(event, str):
                        yield KEEPALIVE
                    elif isinstance(event, ImageGenPartialImageEvent):
                        yield ResponseImageGenCallPartialImageEvent(
                            item_id=call.id, output_index=index, partial_image_index=event.partial_image_index,
                            partial_image_b64=event.b64_json, background=event.background,
                            output_format=event.output_format, quality=event.quality, size=event.size,
                        )  # fmt: skip
                    elif isinstance(event, ImageGenCompletedEvent):
                        call.result = event.b64_json
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

    def _image_request(self, p: PreparedResponse, plan: Plan) -> ResolvedRequest:
        """The image request a plan makes: the tool's fields under its model's rules, the plan's prompt, and for
        an edit the decoded image (whose size an ``auto`` size keeps), the mask and the strength."""
        assert p.tool is not None and p.image_model is not None and plan.image_prompt is not None
        edit = plan.action == "edit" and p.edit_inputs is not None
        init, mask = p.edit_inputs if edit and p.edit_inputs is not None else (None, None)
        source_size = f"{init.width}x{init.height}" if init is not None else None
        resolved = self._resolve_tool(p.tool, p.image_model, plan.image_prompt, source_size)
        params = dataclasses.replace(resolved.params, request_id=p.request_id)
        if init is not None:
            strength = max(EDIT_STRENGTH[p.tool.input_fidelity or "low"], 1 / params.steps)
            params = dataclasses.replace(params, init_image=init, mask=mask, strength=strength)
        # The end-user is the Responses request's (blocks and usage are counted per end-user).
        return dataclasses.replace(resolved, params=params,
                                   end_user=p.request.safety_identifier or p.request.user or None)  # fmt: skip

    @staticmethod
    def _edit_inputs(source: ConversationImage, tool: ImageGenerationTool) -> tuple[Any, Any]:
        """Decode the image to edit and the mask (blocking; a worker thread). Mask: transparent = repaint."""
        decode = decode_data_url if source.is_data_url else decode_base64_image
        init = decode(source.data, source.param)
        mask = None
        if tool.input_image_mask is not None and tool.input_image_mask.image_url is not None:
            where = "tools[0].input_image_mask.image_url"
            m = decode_data_url(tool.input_image_mask.image_url, where)
            if m.size != init.size:
                raise InvalidRequestError(
                    f"The mask is {m.width}x{m.height} but the image to edit is {init.width}x{init.height}; they "
                    "must be the same size.",
                    param=where,
                    code="invalid_value",
                )
            mask = repaint_mask(m)
        return init, mask

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


def _tool_error(message: str, code: str = "invalid_value") -> InvalidRequestError:
    return InvalidRequestError(f"Invalid image_generation tool (tools[0]): {message}", param="tools", code=code)


def _check_metadata(metadata: Mapping[str, Any] | None) -> None:
    if metadata is None:
        return
    pairs, key_max, value_max = _METADATA_LIMITS
    if len(metadata) > pairs:
        raise InvalidRequestError(f"'metadata' may hold at most {pairs} pairs.", param="metadata")
    for key, value in metadata.items():
        if len(key) > key_max:
            raise InvalidRequestError(f"metadata keys may be at most {key_max} characters.", param="metadata")
        if len(value) > value_max:
            raise InvalidRequestError(
                f"metadata values must be strings of at most {value_max} characters.", param="metadata"
            )


def _check_images(images: list[ConversationImage]) -> None:
    """Decode each new input image once (blocking; a worker thread), so a broken one is a 400 naming it."""
    for image in images:
        (decode_data_url if image.is_data_url else decode_base64_image)(image.data, image.param)
