"""``POST /v1/responses``, step 1: everything a request can be refused for, checked before anything is stored or
streamed, so those problems are plain JSON 400s; no HTTP framework here.

Fields, tools, input items and their images, ``previous_response_id``, the conversation's length
(``responses_max_input_tokens``, by default gpt-5's input limit, counted as usage is), and the image tool's fields
under its model's rules, resolved once (:attr:`PreparedResponse.tool_image`). The built-in planner is
deterministic, so it plans here too: the image request it would make (the prompt it writes from the input, and an
edit's decoded image and mask) is known before the first byte. A remote planner is asked after the stream has
started, and what it writes is checked then (:meth:`ResponsePreparer.image_request`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from imageforge.config import Catalogue
from imageforge.errors import InvalidRequestError, ModelNotFoundError, UnsupportedParameterError
from imageforge.ids import new_id
from imageforge.imaging.decode import decode_base64_image, decode_data_url, repaint_mask
from imageforge.params import EngineCapabilities
from imageforge.protocol.responses import (
    ImageGenerationTool,
    Response,
    ResponseCreateRequest,
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
from imageforge.serving.planners import Plan, PlanContext, PlannerRouter
from imageforge.serving.usage import TokenCounter
from imageforge.storage.responses import ResponseStore
from imageforge.validation import COMPLEXITY_CANDIDATES, ResolvedRequest, resolve
from imageforge.validation_edits import edit_size, edit_strength

__all__ = ["PreparedResponse", "ResponsePreparer", "edit_inputs"]

log = logging.getLogger(__name__)
_TOOL_DEFAULTS = {
    "quality": "auto", "size": "auto", "output_format": "png", "output_compression": 100, "moderation": "auto",
    "background": "auto", "partial_images": 0, "action": "auto",
}  # fmt: skip
_METADATA_LIMITS = (16, 64, 512)  # pairs, key length, value length (OpenAI's)


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
    tool_image: ResolvedRequest | None = None  # the tool's fields under its model's rules (no prompt yet)
    plan: Plan | None = None  # decided in prepare when the planner is deterministic (the built-in one)
    image: ResolvedRequest | None = None  # the image request of that plan
    edit_inputs: tuple[Any, Any] | None = None  # (image, mask or None) of an edit, decoded and checked
    key_id: str = "-"  # the caller, for the audit line and usage (set by the route)

    @property
    def stream(self) -> bool:
        return bool(self.request.stream)

    @property
    def store(self) -> bool:
        return self.request.store is not False


class ResponsePreparer:
    def __init__(
        self,
        catalogue: Catalogue,
        caps: Callable[[str], EngineCapabilities],
        store: ResponseStore,
        planners: PlannerRouter,
        tokens: TokenCounter,
        *,
        default_image_model: str,
        max_input_tokens: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.catalogue = catalogue
        self.caps = caps
        self.store = store
        self.planners = planners
        self.tokens = tokens
        self.default_image_model = default_image_model
        self.max_input_tokens = max_input_tokens
        self.clock = clock

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

        image_model, tool_image = None, None
        if tool is not None:
            image_model, tool_image = self._check_tool(tool, source, request_id, req.reasoning)
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
            prompt_cache_retention=req.prompt_cache_retention,
            prompt_cache_options=(
                req.prompt_cache_options.model_dump(exclude_none=True) if req.prompt_cache_options is not None else None
            ),
            top_logprobs=req.top_logprobs,
        )
        log.info(
            "[%s] responses model=%s tool=%s tool_choice=%s image_model=%s previous=%s turns=%d stream=%s store=%s",
            request_id, req.model, tool is not None, choice, image_model, req.previous_response_id, len(turns),
            bool(req.stream), req.store is not False,
        )  # fmt: skip
        prepared = PreparedResponse(req, response, input_items, turns, tool, image_model, context, source, request_id,
                                    tool_image=tool_image)  # fmt: skip
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
            p.edit_inputs = await asyncio.to_thread(edit_inputs, p.source, p.tool)
        if p.plan is not None and p.plan.image_prompt is not None and p.image_model is not None:
            p.image = self.image_request(p, p.plan)

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

    def _check_tool(
        self,
        tool: ImageGenerationTool,
        source: ConversationImage | None,
        request_id: str,
        reasoning: dict[str, Any] | None = None,
    ) -> tuple[str, ResolvedRequest]:
        """Validate the tool's fields against its image model's rules (errors name ``tools``), once: its model id
        and its image settings (every value decided but the prompt, which the planner writes). The image's
        complexity is the tool's, else the response's ``reasoning.effort`` where that is a complexity the image
        model's engine can honour, else the model's configured default."""
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
            if tool.input_fidelity not in profile.input_fidelity:
                allowed = " and ".join(f"'{v}'" for v in profile.input_fidelity)
                raise _tool_error(f"Invalid value for 'input_fidelity': {tool.input_fidelity!r}. Supported values "
                                  f"for {model} are: {allowed}.")  # fmt: skip
        if action == "edit" and source is None:
            raise _tool_error("action 'edit' needs an image in the conversation (an input_image, an earlier "
                              "image_generation_call, or previous_response_id).")  # fmt: skip
        mask = tool.input_image_mask
        if mask is not None and tool.output_format == "gif":
            raise _tool_error("input_image_mask is not supported with output_format 'gif'.")
        if mask is not None:
            if mask.file_id is not None:
                raise _tool_error("input_image_mask.file_id is not supported (this server has no Files API); send "
                                  "the mask as a data URL in image_url.")  # fmt: skip
            if mask.image_url is None:
                raise _tool_error("input_image_mask needs an image_url (a data URL).")
            if source is None:
                raise _tool_error("input_image_mask needs an image to edit in the conversation.")
        fields = {
            "model": model, "prompt": "", "quality": tool.quality, "size": tool.size,
            "output_format": tool.output_format, "output_compression": tool.output_compression,
            "moderation": tool.moderation, "background": tool.background, "partial_images": tool.partial_images,
            "frame_count": tool.frame_count, "frame_duration_ms": tool.frame_duration_ms, "svg": tool.svg,
            "complexity": tool.complexity or self._inherited_complexity(model, reasoning),
            # The call's previews stream (the response's lifecycle events stream whatever the format); a gif or an
            # svg has no previews, as OpenAI's.
            "stream": tool.output_format not in ("gif", "svg"),
        }  # fmt: skip
        try:
            resolved = resolve(fields, self.catalogue, self.caps, default_gpt_model=self.default_image_model,
                               request_id=request_id, allow_empty_prompt=True)  # fmt: skip
        except InvalidRequestError as exc:
            raise type(exc)(f"Invalid image_generation tool (tools[0]): {exc.message}", param="tools",
                            code=exc.code) from None  # fmt: skip
        return model, resolved

    def _inherited_complexity(self, model: str, reasoning: dict[str, Any] | None) -> str | None:
        effort = reasoning.get("effort") if isinstance(reasoning, dict) else None
        if not isinstance(effort, str) or effort not in COMPLEXITY_CANDIDATES:
            return None  # none, minimal, xhigh...: not a complexity, so the model's default applies
        if COMPLEXITY_CANDIDATES[effort] > 1 and not self.caps(model).planning:
            return None
        return effort

    def image_request(self, p: PreparedResponse, plan: Plan) -> ResolvedRequest:
        """The image request a plan makes: the tool's settings (resolved once, in prepare), the plan's prompt
        (its length checked), and for an edit the decoded image (whose geometry an ``auto`` size keeps where the
        model allows it), the mask and the strength of ``input_fidelity``."""
        assert p.tool is not None and p.tool_image is not None and plan.image_prompt is not None
        base = p.tool_image
        prompt = plan.image_prompt
        if len(prompt) > base.profile.prompt_max_chars:
            raise InvalidRequestError(
                f"Invalid 'input': the image prompt written from it is {len(prompt)} characters; the maximum for "
                f"{base.model} is {base.profile.prompt_max_chars}.",
                param="input",
                code="string_above_max_length",
            )
        params = dataclasses.replace(base.params, prompt=prompt)
        size = base.size
        edit = plan.action == "edit" and p.edit_inputs is not None
        if edit and p.edit_inputs is not None:
            init, mask = p.edit_inputs
            if p.tool.size in (None, "auto"):
                size = edit_size(base.profile, self.caps(base.model), init.width, init.height)
                w, h = (int(v) for v in size.split("x"))
                params = dataclasses.replace(params, width=w, height=h)
            fidelity = p.tool.input_fidelity or (None if base.profile.input_fidelity else "high")
            strength = max(edit_strength(fidelity, mask is not None), 1 / params.steps)
            params = dataclasses.replace(params, init_image=init, mask=mask, strength=strength)
        # The end-user is the Responses request's (blocks and usage are counted per end-user).
        end_user = p.request.safety_identifier or p.request.user or None
        return dataclasses.replace(base, params=params, size=size, end_user=end_user,
                                   safety_identifier=p.request.safety_identifier or None)  # fmt: skip

    def _echo_tool(self, tool: ImageGenerationTool) -> ImageGenerationTool:
        filled = {k: v for k, v in _TOOL_DEFAULTS.items() if getattr(tool, k) is None}
        return tool.model_copy(update={"model": tool.model or self.default_image_model, **filled})

    # 2. Running ----------------------------------------------------------------------------------------------------


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


def edit_inputs(source: ConversationImage, tool: ImageGenerationTool) -> tuple[Any, Any]:
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
