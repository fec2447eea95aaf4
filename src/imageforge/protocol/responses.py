"""``POST /v1/responses`` for image generation: the request subset, the ``image_generation`` tool, the input items,
the output items and the ``Response`` object (reference §4.1-4.6, §10).

Names copy the SDK's (``ImageGeneration`` tool, ``ImageGenerationCall``, ``ResponseOutputMessage``, ``Response``,
``ResponseUsage``; the request's items carry the SDK's ``Param`` suffix). Like ``protocol/images.py`` this checks
names and JSON types (every nested object is a model, so a wrong type anywhere is a named 400, never a crash
later) and names the parameter in every error (``input[1].content[0]``, ``tools[0].n``); which values a model
accepts is decided later. The same models are the request schema served at ``/openapi.json``.

Input items and content parts of types this server does not serve validate into placeholders that the schema
leaves out; :func:`parse_create_request` then refuses them by name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
    Tag,
    ValidationError,
)
from pydantic.json_schema import SkipJsonSchema

from imageforge.errors import InvalidRequestError, UnsupportedParameterError
from imageforge.protocol.parsing import raise_validation_error

__all__ = [
    "MAX_STRING",
    "EasyInputMessageParam",
    "ImageGenerationCall",
    "ImageGenerationCallError",
    "ImageGenerationCallParam",
    "ImageGenerationTool",
    "InputImagePart",
    "InputItem",
    "InputMessage",
    "ItemReference",
    "ItemReferenceParam",
    "OutputItem",
    "OutputText",
    "Response",
    "ResponseCreateRequest",
    "ResponseDeleted",
    "ResponseError",
    "ResponseItemList",
    "ResponseOutputMessage",
    "ResponseUsage",
    "parse_create_request",
    "parse_input",
]

MAX_STRING = 1_048_576  # OpenAI's limit on one string of a request (code string_above_max_length)
Text = Annotated[StrictStr, StringConstraints(max_length=MAX_STRING)]
Ident = Annotated[StrictStr, StringConstraints(min_length=1, max_length=256)]
_OTHER = "type=*"  # the tag of placeholders for unserved types (tags hold "=": parsing.py drops them from params)


def _by_type(served: tuple[str, ...], default: Callable[[dict[str, Any]], str | None] = lambda v: None) -> Any:
    """A discriminator: ``type`` (or ``default(value)`` without one) -> the member's tag; unserved -> placeholder.
    A non-object goes to the first member, whose "expected an object" error names it."""

    def kind(value: Any) -> str:
        if not isinstance(value, dict):
            return f"type={served[0]}"
        found = value.get("type", default(value))
        return f"type={found}" if isinstance(found, str) and found in served else _OTHER

    return Discriminator(kind)


class _Unserved(BaseModel):
    """A placeholder for an item, part or tool of a type this server does not serve (refused by name later)."""

    model_config = ConfigDict(extra="allow")

    type: Any = None


# --- the request -------------------------------------------------------------------------------------------------


class InputImageMask(BaseModel):
    """Where an edit may paint: transparent pixels of this image (a data URL) are repainted."""

    model_config = ConfigDict(extra="forbid")

    image_url: StrictStr | None = None
    file_id: StrictStr | None = None


class ImageGenerationTool(BaseModel):
    """``tools[i]`` of type ``image_generation`` (reference §4.1); also echoed in ``Response.tools``. It has no
    ``n``: the tool makes one image per call."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["image_generation"] = "image_generation"
    model: Text | None = None
    action: StrictStr | None = None
    """``generate``, ``edit`` or ``auto`` (edit when the conversation holds an image)."""
    quality: StrictStr | None = None
    size: StrictStr | None = None
    output_format: StrictStr | None = None
    output_compression: StrictInt | None = None
    moderation: StrictStr | None = None
    background: StrictStr | None = None
    input_fidelity: StrictStr | None = None
    """``high`` or ``low``: how closely an edit keeps the input image."""
    input_image_mask: InputImageMask | None = None
    partial_images: StrictInt | None = None
    frame_count: StrictInt | None = None
    """output_format gif: the animation's frames (2-16, default 9)."""
    frame_duration_ms: StrictInt | None = None
    """output_format gif: each frame's delay in ms (default 200)."""
    svg: dict[str, Any] | None = None
    """output_format svg: ``{"model", "reasoning": {"effort"}}``, as in the Images API."""
    complexity: StrictStr | None = None
    """Refused with a named 400 (not served yet)."""


ToolParam = Annotated[
    Annotated[ImageGenerationTool, Tag("type=image_generation")] | Annotated[SkipJsonSchema[_Unserved], Tag(_OTHER)],
    _by_type(("image_generation",)),
]


class InputTextParam(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["input_text"]
    text: Text


class InputImageParam(BaseModel):
    """An image as a data URL (``image_url``); ``file_id`` is refused (this server has no Files API)."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["input_image"]
    image_url: StrictStr | None = None
    file_id: StrictStr | None = None
    detail: Literal["low", "high", "auto", "original"] | None = None


class OutputTextParam(BaseModel):
    """An assistant's text, as re-sent from an earlier response's output (annotations and logprobs ignored)."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["output_text"]
    text: Text


class RefusalParam(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["refusal"]
    refusal: Text


_PARTS = ("input_text", "input_image", "output_text", "refusal")
ContentPart = Annotated[
    Annotated[InputTextParam, Tag("type=input_text")]
    | Annotated[InputImageParam, Tag("type=input_image")]
    | Annotated[OutputTextParam, Tag("type=output_text")]
    | Annotated[RefusalParam, Tag("type=refusal")]
    | Annotated[SkipJsonSchema[_Unserved], Tag(_OTHER)],
    _by_type(_PARTS),
]


class EasyInputMessageParam(BaseModel):
    """A message of the conversation: text, or content parts (user messages: text and images; assistant
    messages: output text and refusals)."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["message"] | None = None
    role: Literal["user", "assistant", "system", "developer"]
    content: Text | list[ContentPart]
    id: Ident | None = None
    status: StrictStr | None = None


class ImageGenerationCallParam(BaseModel):
    """An earlier ``image_generation_call``: by id (a stored one), or with its ``result`` (the image itself)."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["image_generation_call"]
    id: Ident
    result: StrictStr | None = None
    status: StrictStr | None = None


class ItemReferenceParam(BaseModel):
    """An item of a stored response, by id."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["item_reference"] | None = None
    id: Ident


_ITEMS = ("message", "image_generation_call", "item_reference")
InputItemParam = Annotated[
    Annotated[EasyInputMessageParam, Tag("type=message")]
    | Annotated[ImageGenerationCallParam, Tag("type=image_generation_call")]
    | Annotated[ItemReferenceParam, Tag("type=item_reference")]
    | Annotated[SkipJsonSchema[_Unserved], Tag(_OTHER)],
    _by_type(_ITEMS, default=lambda item: "message" if "role" in item else "item_reference"),
]


class TextFormatParam(BaseModel):
    """``text.format``: only ``{"type": "text"}`` is served (the planners answer plain text)."""

    model_config = ConfigDict(extra="allow")

    type: StrictStr


class TextConfigParam(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: TextFormatParam | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class StreamOptionsParam(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_obfuscation: StrictBool | None = None


class PromptCacheOptionsParam(BaseModel):
    """``prompt_cache_options`` (openai-python 3.57): accepted and echoed; nothing is cached here, so there is
    nothing to keep. ``prewarm`` (fill the cache and generate nothing) would change the result and is refused."""

    model_config = ConfigDict(extra="forbid")

    comparison_response_id: Text | None = None
    mode: Literal["implicit", "explicit"] | None = None
    prewarm: StrictBool | None = None
    ttl: Literal["30m", "12h"] | None = None


# ``include`` values OpenAI documents; for the outputs this server makes they add nothing but the logprobs list.
INCLUDE_VALUES = frozenset({
    "code_interpreter_call.outputs", "computer_call_output.output.image_url", "file_search_call.results",
    "message.input_image.image_url", "message.output_text.logprobs", "reasoning.encrypted_content",
    "web_search_call.action.sources", "web_search_call.results",
})  # fmt: skip


class ResponseCreateRequest(BaseModel):
    """The JSON body of ``POST /v1/responses`` as far as image generation needs it; unknown fields are refused by
    name, and fields of features this server does not offer are refused by name too (never silently ignored)."""

    model_config = ConfigDict(extra="forbid")

    model: Text
    """The mainline model (the planner, see ``serving/planners.py``), e.g. ``gpt-5``."""
    input: Text | list[InputItemParam]
    instructions: Text | None = None
    tools: list[ToolParam] | None = None
    tool_choice: StrictStr | dict[str, Any] | None = None
    stream: StrictBool | None = None
    store: StrictBool | None = None
    previous_response_id: Text | None = None
    metadata: dict[str, StrictStr] | None = None
    user: Text | None = None
    safety_identifier: Text | None = None
    # Accepted and echoed; the chat-completions planner also receives temperature, top_p and max_output_tokens.
    parallel_tool_calls: StrictBool | None = None
    temperature: Annotated[StrictFloat | StrictInt, Field(ge=0, le=2)] | None = None
    top_p: Annotated[StrictFloat | StrictInt, Field(ge=0, le=1)] | None = None
    max_output_tokens: Annotated[StrictInt, Field(ge=16)] | None = None
    max_tool_calls: Annotated[StrictInt, Field(ge=0)] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    include: list[Text] | None = None
    stream_options: StreamOptionsParam | None = None
    prompt_cache_key: Text | None = None
    service_tier: Text | None = None
    reasoning: dict[str, Any] | None = None
    text: TextConfigParam | None = None
    # Features this server does not offer: a named 400 when set (``_UNSUPPORTED``).
    background: StrictBool | None = None
    conversation: Any = None
    prompt: Any = None
    context_management: Any = None
    moderation: Any = None
    # Accepted as OpenAI accepts them (agent frameworks send them); their effect is truthful here: the built-in
    # planner has no token probabilities (output_text.logprobs is an empty list) and there is no prompt cache.
    top_logprobs: Annotated[StrictInt, Field(ge=0, le=20)] | None = None
    prompt_cache_retention: Literal["in_memory", "24h"] | None = None
    prompt_cache_options: PromptCacheOptionsParam | None = None


# field -> why it is refused (a value of None / false is accepted as "not used").
_UNSUPPORTED = {
    "background": "background (asynchronous) responses are not supported; send the request without it",
    "conversation": "conversations are not supported; chain turns with previous_response_id",
    "prompt": "prompt templates are not supported",
    "context_management": "context management is not supported",
    "moderation": "a Responses-level moderation policy is not supported; set moderation on the image tool",
}


def parse_create_request(fields: Mapping[str, Any]) -> ResponseCreateRequest:
    """Fields -> the wire model, or the OpenAI-style 400 for the first problem, naming the parameter."""
    try:
        req = ResponseCreateRequest.model_validate(dict(fields))
    except ValidationError as exc:
        raise_validation_error(exc)
    for name, why in _UNSUPPORTED.items():
        value = getattr(req, name)
        if value is not None and value is not False:
            raise UnsupportedParameterError(f"'{name}' is not supported by this server: {why}.", param=name)
    for i, tool in enumerate(req.tools or ()):
        _served_tool(tool, f"tools[{i}]")
    for i, value in enumerate(req.include or ()):
        if value not in INCLUDE_VALUES:
            options = ", ".join(f"'{v}'" for v in sorted(INCLUDE_VALUES))
            raise InvalidRequestError(f"Invalid value: '{value}'. Supported values are: {options}.",
                                      param=f"include[{i}]", code="invalid_value")  # fmt: skip
    if req.prompt_cache_options is not None and req.prompt_cache_options.prewarm:
        raise UnsupportedParameterError(
            "'prompt_cache_options.prewarm' is not supported: this server has no prompt cache to prepare, and a "
            "prewarm request generates no output.",
            param="prompt_cache_options.prewarm",
        )
    fmt = req.text.format.type if req.text is not None and req.text.format is not None else "text"
    if fmt != "text":
        raise UnsupportedParameterError(
            f"text.format {fmt!r} is not supported: the planners answer plain text.", param="text.format"
        )
    return req


def _served_tool(tool: ImageGenerationTool | _Unserved, where: str) -> ImageGenerationTool:
    if isinstance(tool, _Unserved):
        raise UnsupportedParameterError(
            f"Tool type {tool.type!r} is not supported by this server; it serves the 'image_generation' tool only.",
            param=f"{where}.type",
        )
    return tool


# --- input items, as the services read them (reference §4.6) -----------------------------------------------------


class InputImagePart(BaseModel):
    """An ``input_image`` content part: the image as a data URL (``image_url``)."""

    image_url: str
    detail: str | None = None


class InputMessage(BaseModel):
    """A message of the conversation: text and (user messages only) images, in order."""

    role: Literal["user", "assistant", "system", "developer"]
    text: str
    images: list[InputImagePart] = Field(default_factory=list)
    id: str | None = None


class ItemReference(BaseModel):
    """An ``image_generation_call`` given by id (with or without its ``result``) or an ``item_reference``."""

    id: str
    result: str | None = None
    where: str  # the parameter path, for errors


InputItem = InputMessage | ItemReference
_ROLE_PARTS = {"assistant": ("output_text", "refusal")}
_USER_PARTS = ("input_text", "input_image")


def _bad(where: str, message: str, code: str = "invalid_value") -> InvalidRequestError:
    return InvalidRequestError(message, param=where, code=code)


def _message(item: EasyInputMessageParam, where: str) -> InputMessage:
    if isinstance(item.content, str):
        return InputMessage(role=item.role, text=item.content, id=item.id)
    texts: list[str] = []
    images: list[InputImagePart] = []
    allowed = _ROLE_PARTS.get(item.role, _USER_PARTS)
    for j, part in enumerate(item.content):
        at = f"{where}.content[{j}]"
        if part.type not in allowed:
            supported = " and ".join(f"'{a}'" for a in allowed)
            shown = part.type if isinstance(part.type, str) else None
            raise _bad(at, f"Invalid value: {shown!r}. Supported values are: {supported}.")
        if isinstance(part, InputImageParam):
            if part.file_id is not None:
                raise UnsupportedParameterError(
                    "Images by file_id are not supported by this server (it has no Files API); send the image as a "
                    "data URL in image_url.",
                    param=f"{at}.file_id",
                )
            if part.image_url is None or not part.image_url.startswith("data:"):
                raise _bad(f"{at}.image_url", "Only data URLs (data:image/png;base64,...) are accepted for "
                           "input images: this server does not fetch remote URLs.")  # fmt: skip
            images.append(InputImagePart(image_url=part.image_url, detail=part.detail))
        elif isinstance(part, RefusalParam):
            texts.append(part.refusal)
        elif isinstance(part, InputTextParam | OutputTextParam):
            texts.append(part.text)
    return InputMessage(role=item.role, text="\n".join(texts), images=images, id=item.id)


def parse_input(value: str | list[Any]) -> list[InputItem]:
    """``input`` (validated by :class:`ResponseCreateRequest`): a string (one user message) or a list of messages,
    ``image_generation_call`` items and ``item_reference`` items."""
    if isinstance(value, str):
        return [InputMessage(role="user", text=value)]
    items: list[InputItem] = []
    for i, item in enumerate(value):
        where = f"input[{i}]"
        if isinstance(item, EasyInputMessageParam):
            items.append(_message(item, where))
        elif isinstance(item, ImageGenerationCallParam):
            items.append(ItemReference(id=item.id, result=item.result, where=where))
        elif isinstance(item, ItemReferenceParam):
            items.append(ItemReference(id=item.id, where=where))
        else:
            kind = getattr(item, "type", None)
            raise UnsupportedParameterError(
                f"Input items of type {kind if isinstance(kind, str) else None!r} are not supported by this server; "
                "send messages, image_generation_call or item_reference items.",
                param=f"{where}.type",
            )
    return items


# --- output ---------------------------------------------------------------------------------------------------------


class ModerationDetails(BaseModel):
    categories: list[str]
    moderation_stage: Literal["input", "output", "unknown"]


class ImageGenerationCallError(BaseModel):
    code: str | None = None
    message: str
    param: str | None = None
    type: str
    moderation_details: ModerationDetails | None = None


class ImageGenerationCall(BaseModel):
    """The ``image_generation_call`` output item, with every field the live API returns (reference §4.2, §10)."""

    id: str
    type: Literal["image_generation_call"] = "image_generation_call"
    status: Literal["in_progress", "completed", "generating", "failed"]
    result: str | None = None
    """Base64 of the final image; ``null`` until it is done."""
    action: Literal["generate", "edit"] | None = None
    background: str | None = None
    output_format: str | None = None
    quality: str | None = None
    size: str | None = None
    revised_prompt: str | None = None
    """The prompt the image model was given (composed by the planner)."""
    svg_usage: dict[str, Any] | None = None
    """output_format svg: what made the vector image (the tracer; no tokens)."""
    error: ImageGenerationCallError | None = None


class OutputText(BaseModel):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[Any] = Field(default_factory=list)
    logprobs: list[Any] = Field(default_factory=list)


class ResponseOutputMessage(BaseModel):
    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    status: Literal["in_progress", "completed", "incomplete"]
    content: list[OutputText]


OutputItem = ImageGenerationCall | ResponseOutputMessage


class ResponseInputTokensDetails(BaseModel):
    cached_tokens: int = 0


class ResponseOutputTokensDetails(BaseModel):
    reasoning_tokens: int = 0


class ResponseUsage(BaseModel):
    """The mainline model's tokens (the image model's are not reported here, as on OpenAI)."""

    input_tokens: int
    input_tokens_details: ResponseInputTokensDetails = Field(default_factory=ResponseInputTokensDetails)
    output_tokens: int
    output_tokens_details: ResponseOutputTokensDetails = Field(default_factory=ResponseOutputTokensDetails)
    total_tokens: int


class ResponseError(BaseModel):
    code: str
    message: str


class ResponseDeleted(BaseModel):
    """``DELETE /v1/responses/{id}``."""

    id: str
    object: Literal["response.deleted"] = "response.deleted"
    deleted: bool = True


class ResponseItemList(BaseModel):
    """``GET /v1/responses/{id}/input_items``: the stored input items, as sent (normalised)."""

    object: Literal["list"] = "list"
    data: list[dict[str, Any]]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class Response(BaseModel):
    """The ``Response`` object: every field the SDK marks required, plus the echoed request settings."""

    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: Literal["completed", "failed", "in_progress", "cancelled", "queued", "incomplete"]
    completed_at: int | None = None
    error: ResponseError | None = None
    incomplete_details: dict[str, Any] | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    max_tool_calls: int | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    model: str
    output: list[OutputItem] = Field(default_factory=list)
    parallel_tool_calls: bool = True
    previous_response_id: str | None = None
    reasoning: dict[str, Any] | None = None
    safety_identifier: str | None = None
    service_tier: str | None = None
    store: bool = True
    temperature: float | None = None
    text: dict[str, Any] | None = None
    tool_choice: str | dict[str, Any] = "auto"
    tools: list[ImageGenerationTool] = Field(default_factory=list)
    top_p: float | None = None
    truncation: str | None = None
    usage: ResponseUsage | None = None
    user: str | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: str | None = None
    prompt_cache_options: dict[str, Any] | None = None
    top_logprobs: int | None = None


ImageGenerationTool.model_rebuild()
