"""``POST /v1/images/generations``: the request body and ``ImagesResponse`` (reference §1.2, §1.5, §10).

Names copy the SDK's (``ImageGenerateParams``, ``ImagesResponse``, ``Image``, ``Usage``). The request model only
checks JSON types and names; which *values* a model accepts is ``validation.resolve``'s job, because it depends
on the model's profile. Every optional field is nullable: ``null`` means "use the default" (reference §1.1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

from imageforge.protocol.parsing import raise_validation_error

__all__ = [
    "Image",
    "ImageGenerateRequest",
    "ImagesResponse",
    "InputTokensDetails",
    "OutputTokensDetails",
    "Usage",
    "parse_request",
]


def _values(*allowed: str) -> Any:
    """Document the values any served model accepts (and ``null``) in the schema; which one a given model takes
    is checked by ``validation.resolve``, with a message naming that model's values."""
    return Field(default=None, json_schema_extra={"enum": [*allowed, None]})


def _range(low: int, high: int) -> Any:
    return Field(default=None, json_schema_extra={"minimum": low, "maximum": high})


class ImageGenerateRequest(BaseModel):
    """The JSON body of ``POST /v1/images/generations``; unknown fields are refused by name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: StrictStr
    """A text description of the desired image(s)."""
    model: StrictStr | None = None
    """The model to use; omitted means ``dall-e-2`` unless a GPT-only parameter is present (reference §1.4)."""
    n: StrictInt | None = _range(1, 10)
    """The number of images to generate, 1-10 (``dall-e-3``: only 1)."""
    quality: StrictStr | None = _values("auto", "low", "medium", "high", "standard", "hd")
    """``auto``, ``low``/``medium``/``high`` (GPT image models), ``standard``/``hd`` (DALL·E)."""
    response_format: StrictStr | None = _values("url", "b64_json")
    """``url`` or ``b64_json``; DALL·E models only (GPT image models always return base64)."""
    output_format: StrictStr | None = _values("png", "jpeg", "webp", "gif", "svg")
    """``png``, ``jpeg`` or ``webp``; GPT image models only."""
    output_compression: StrictInt | None = _range(0, 100)
    """Compression level 0-100 for the generated images; GPT image models only."""
    size: StrictStr | None = Field(
        default=None, json_schema_extra={"pattern": "^(auto|[1-9][0-9]{1,3}x[1-9][0-9]{1,3})$"}
    )
    """``WxH`` or ``auto``, per the model's size rules."""
    moderation: StrictStr | None = _values("low", "auto")
    """``low`` or ``auto``; GPT image models only."""
    background: StrictStr | None = _values("transparent", "opaque", "auto")
    """``transparent``, ``opaque`` or ``auto``; GPT image models only."""
    style: StrictStr | None = _values("vivid", "natural")
    """``vivid`` or ``natural``; ``dall-e-3`` only."""
    user: StrictStr | None = None
    """A unique identifier representing the end user (deprecated in favour of ``safety_identifier``)."""
    safety_identifier: StrictStr | None = None
    """A stable identifier of the end user; takes precedence over ``user``."""
    stream: StrictBool | None = None
    """Generate the image in streaming mode; GPT image models only."""
    partial_images: StrictInt | None = _range(0, 3)
    """Number of partial images (0-3) to stream before the final one."""
    frame_count: StrictInt | None = _range(2, 16)
    """output_format gif: the animation's frames (2-16, default 9)."""
    frame_duration_ms: StrictInt | None = None
    """output_format gif: each frame's delay in ms (default 200, rounded to 10 ms)."""
    svg: dict[str, Any] | None = None
    """output_format svg: ``{"model": str, "reasoning": {"effort": none|minimal|low|medium|high|xhigh|max}}``;
    the effort sets how closely the tracer follows the image."""
    complexity: StrictStr | None = _values("low", "medium", "high")
    """Planning before drawing, independent of quality: ``low`` draws from the seed, ``medium`` and ``high``
    draft 4 and 8 candidates and draw the one the model finds fits the prompt best (engines that plan only)."""


def parse_request(fields: Mapping[str, Any]) -> ImageGenerateRequest:
    """Fields -> the wire model, or the OpenAI-style 400 for the first problem, naming the parameter."""
    try:
        return ImageGenerateRequest.model_validate(dict(fields))
    except ValidationError as exc:
        raise_validation_error(exc)


class Image(BaseModel):
    """One generated image."""

    b64_json: str | None = None
    """The base64-encoded image (GPT image models always; DALL·E with ``response_format=b64_json``)."""
    url: str | None = None
    """When ``response_format`` is ``url``: where to fetch the image; valid for 60 minutes."""
    revised_prompt: str | None = None
    """``dall-e-3`` only: the prompt that was used to generate the image."""


class InputTokensDetails(BaseModel):
    image_tokens: int
    text_tokens: int


class OutputTokensDetails(BaseModel):
    image_tokens: int
    text_tokens: int


class Usage(BaseModel):
    """Token accounting of GPT image models (OpenAI's field names)."""

    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    total_tokens: int
    output_tokens_details: OutputTokensDetails | None = None


class SvgUsage(BaseModel):
    """output_format svg: what making the vector image cost (openai 3.57 ``svg_usage``). This server traces the
    drawn image with a vectoriser, no language model: no tokens, and ``model`` names the tracer."""

    input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    total_tokens: int
    model: str


class ImagesResponse(BaseModel):
    created: int
    """The Unix timestamp (in seconds) of when the images were created."""
    data: list[Image]
    background: str | None = None
    """GPT image models: the resolved background, ``transparent`` or ``opaque``."""
    output_format: str | None = None
    quality: str | None = None
    size: str | None = None
    usage: Usage | None = None
    safety_identifier: str | None = None
    svg_usage: SvgUsage | None = None
