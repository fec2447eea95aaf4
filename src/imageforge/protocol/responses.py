"""``POST /v1/responses`` for image generation: the request subset, the ``image_generation`` tool, the input items,
the output items and the ``Response`` object (reference §4.1-4.6, §10).

Names copy the SDK's (``ImageGeneration`` tool, ``ImageGenerationCall``, ``ResponseOutputMessage``, ``Response``,
``ResponseUsage``). Like ``protocol/images.py`` this only checks names and JSON types, and names the parameter in
every error (``input[1].content[0]``, ``tools[0].n``); which values a model accepts is decided later.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError

from imageforge.errors import InvalidRequestError, UnsupportedParameterError
from imageforge.protocol.parsing import json_type, raise_validation_error

__all__ = [
    "ImageGenerationCall",
    "ImageGenerationCallError",
    "ImageGenerationTool",
    "InputImagePart",
    "InputItem",
    "InputMessage",
    "ItemReference",
    "OutputItem",
    "OutputText",
    "Response",
    "ResponseCreateRequest",
    "ResponseError",
    "ResponseOutputMessage",
    "ResponseUsage",
    "parse_create_request",
]


# --- the request -------------------------------------------------------------------------------------------------


class ImageGenerationTool(BaseModel):
    """``tools[i]`` of type ``image_generation`` (reference §4.1); also echoed in ``Response.tools``. It has no
    ``n``: the tool makes one image per call."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["image_generation"] = "image_generation"
    model: StrictStr | None = None
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


class InputImageMask(BaseModel):
    """Where an edit may paint: transparent pixels of this image (a data URL) are repainted."""

    model_config = ConfigDict(extra="forbid")

    image_url: StrictStr | None = None
    file_id: StrictStr | None = None


class ResponseCreateRequest(BaseModel):
    """The JSON body of ``POST /v1/responses`` as far as image generation needs it; unknown fields are refused by
    name, and fields of features this server does not offer are refused by name too (never silently ignored)."""

    model_config = ConfigDict(extra="forbid")

    model: StrictStr
    """The mainline model (the planner, see ``serving/planners.py``), e.g. ``gpt-5``."""
    input: StrictStr | list[Any]
    instructions: StrictStr | None = None
    tools: list[Any] | None = None
    tool_choice: StrictStr | dict[str, Any] | None = None
    stream: StrictBool | None = None
    store: StrictBool | None = None
    previous_response_id: StrictStr | None = None
    metadata: dict[str, Any] | None = None
    user: StrictStr | None = None
    safety_identifier: StrictStr | None = None
    # Accepted and echoed; the chat-completions planner also receives temperature, top_p and max_output_tokens.
    parallel_tool_calls: StrictBool | None = None
    temperature: StrictFloat | StrictInt | None = None
    top_p: StrictFloat | StrictInt | None = None
    max_output_tokens: StrictInt | None = None
    max_tool_calls: StrictInt | None = None
    truncation: StrictStr | None = None
    include: list[StrictStr] | None = None
    stream_options: dict[str, Any] | None = None
    prompt_cache_key: StrictStr | None = None
    service_tier: StrictStr | None = None
    reasoning: dict[str, Any] | None = None
    text: dict[str, Any] | None = None
    # Features this server does not offer: a named 400 when set (``_UNSUPPORTED``).
    background: StrictBool | None = None
    conversation: Any = None
    prompt: Any = None
    context_management: Any = None
    moderation: Any = None
    top_logprobs: Any = None
    prompt_cache_retention: Any = None


# field -> why it is refused (a value of None / false is accepted as "not used").
_UNSUPPORTED = {
    "background": "background (asynchronous) responses are not supported; send the request without it",
    "conversation": "conversations are not supported; chain turns with previous_response_id",
    "prompt": "prompt templates are not supported",
    "context_management": "context management is not supported",
    "moderation": "a Responses-level moderation policy is not supported; set moderation on the image tool",
    "top_logprobs": "log probabilities are not available",
    "prompt_cache_retention": "prompt caching is not available",
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
    return req


def parse_tool(value: Any, index: int) -> ImageGenerationTool:
    """``tools[index]``: only the ``image_generation`` tool is served (named 400 for any other type)."""
    where = f"tools[{index}]"
    if not isinstance(value, dict):
        raise InvalidRequestError(
            f"Invalid type for '{where}': expected an object, but got {json_type(value)} instead.",
            param=where,
            code="invalid_type",
        )
    kind = value.get("type")
    if kind != "image_generation":
        raise UnsupportedParameterError(
            f"Tool type {kind!r} is not supported by this server; it serves the 'image_generation' tool only.",
            param=f"{where}.type",
        )
    try:
        return ImageGenerationTool.model_validate(value)
    except ValidationError as exc:
        raise_validation_error(exc, where)


# --- input items (reference §4.6) ---------------------------------------------------------------------------------


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
_MESSAGE_TEXT_PARTS = {"user": ("input_text",), "system": ("input_text",), "developer": ("input_text",)}
_ASSISTANT_PARTS = ("output_text", "refusal")


def _bad(where: str, message: str, code: str = "invalid_value") -> InvalidRequestError:
    return InvalidRequestError(message, param=where, code=code)


def _message(item: Mapping[str, Any], where: str) -> InputMessage:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise _bad(f"{where}.role", f"Invalid value: {role!r}. Supported values are: 'user', 'assistant', "
                   "'system' and 'developer'.")  # fmt: skip
    content = item.get("content")
    if isinstance(content, str):
        return InputMessage(role=role, text=content, id=item.get("id"))
    if not isinstance(content, list):
        raise _bad(f"{where}.content", "Invalid type: expected a string or an array of content parts.", "invalid_type")
    texts: list[str] = []
    images: list[InputImagePart] = []
    allowed = _ASSISTANT_PARTS if role == "assistant" else ("input_text", "input_image")
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in allowed:
            supported = " and ".join(f"'{a}'" for a in allowed)
            raise _bad(at, f"Invalid value: {kind!r}. Supported values are: {supported}.")
        if kind == "input_image":
            url = part.get("image_url")
            if part.get("file_id") is not None:
                raise UnsupportedParameterError(
                    "Images by file_id are not supported by this server (it has no Files API); send the image as a "
                    "data URL in image_url.",
                    param=f"{at}.file_id",
                )
            if not isinstance(url, str) or not url.startswith("data:"):
                raise _bad(f"{at}.image_url", "Only data URLs (data:image/png;base64,...) are accepted for "
                           "input images: this server does not fetch remote URLs.")  # fmt: skip
            images.append(InputImagePart(image_url=url, detail=part.get("detail")))
        else:
            text = part.get("text", part.get("refusal"))
            if not isinstance(text, str):
                raise _bad(f"{at}.text", "Invalid type: expected a string.", "invalid_type")
            texts.append(text)
    return InputMessage(role=role, text="\n".join(texts), images=images, id=item.get("id"))


def parse_input(value: str | list[Any]) -> list[InputItem]:
    """``input``: a string (one user message) or a list of messages, ``image_generation_call`` items and
    ``item_reference`` items."""
    if isinstance(value, str):
        return [InputMessage(role="user", text=value)]
    items: list[InputItem] = []
    for i, item in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise _bad(where, "Invalid type: expected an object.", "invalid_type")
        kind = item.get("type", "message" if "role" in item else "item_reference")
        if kind == "message":
            items.append(_message(item, where))
        elif kind in ("image_generation_call", "item_reference"):
            ident = item.get("id")
            if not isinstance(ident, str) or not ident:
                raise _bad(f"{where}.id", f"Missing required parameter: '{where}.id'.", "missing_required_parameter")
            result = item.get("result") if kind == "image_generation_call" else None
            items.append(ItemReference(id=ident, result=result if isinstance(result, str) else None, where=where))
        else:
            raise UnsupportedParameterError(
                f"Input items of type {kind!r} are not supported by this server; send messages, "
                "image_generation_call or item_reference items.",
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


class InputTokensDetails(BaseModel):
    cached_tokens: int = 0


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int = 0


class ResponseUsage(BaseModel):
    """The mainline model's tokens (the image model's are not reported here, as on OpenAI)."""

    input_tokens: int
    input_tokens_details: InputTokensDetails = Field(default_factory=InputTokensDetails)
    output_tokens: int
    output_tokens_details: OutputTokensDetails = Field(default_factory=OutputTokensDetails)
    total_tokens: int


class ResponseError(BaseModel):
    code: str
    message: str


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


ImageGenerationTool.model_rebuild()
