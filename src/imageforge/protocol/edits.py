"""``POST /v1/images/edits`` and ``POST /v1/images/variations``: the request fields besides the uploaded files
(reference §3.2-3.4, §11.2, §11.4).

Two forms arrive. Multipart (what every SDK sends): text fields are strings, so :func:`form_fields` turns them
into JSON types first (``"2"`` -> 2, ``"true"`` -> true; the SDKs send ``None`` as an empty string, which the
upload reader already dropped; ``svg[model]`` -> ``{"svg": {"model": ...}}``). JSON (``images`` of
``image_url`` data URLs, spec-only): the body as it is. Either way the fields are then checked by the same model;
which *values* a model accepts is ``validation_edits``' job.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError
from pydantic.json_schema import SkipJsonSchema

from imageforge.errors import InvalidRequestError
from imageforge.protocol.parsing import raise_validation_error

__all__ = [
    "ImageEditRequest",
    "ImageRef",
    "ImageVariationRequest",
    "form_fields",
    "parse_edit_request",
    "parse_variation_request",
]

_INT_FIELDS = frozenset({"n", "output_compression", "partial_images", "frame_count", "frame_duration_ms"})
_BOOL_FIELDS = frozenset({"stream"})
_INT_LIMIT = 2**63


class ImageRef(BaseModel):
    """An image of the JSON form: exactly one of ``image_url`` (a data URL here) and ``file_id``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image_url: StrictStr | None = Field(default=None, max_length=20_971_520)
    file_id: StrictStr | None = None


def _values(*allowed: str) -> Any:
    return Field(default=None, json_schema_extra={"enum": [*allowed, None]})


class ImageEditRequest(BaseModel):
    """The fields of an edit; unknown ones are refused by name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: StrictStr
    """What the edited image should show (max 1000 characters for dall-e-2, 32000 for GPT image models)."""
    model: StrictStr | None = None
    """A GPT image model or ``dall-e-2`` (``dall-e-3`` is not an edit model); omitted: the default GPT model."""
    n: StrictInt | None = Field(default=None, json_schema_extra={"minimum": 1, "maximum": 10})
    size: StrictStr | None = None
    """``WxH`` per the model's rules, or ``auto`` (the default): the input image's geometry."""
    quality: StrictStr | None = _values("auto", "low", "medium", "high", "standard")
    response_format: StrictStr | None = _values("url", "b64_json")
    output_format: StrictStr | None = _values("png", "jpeg", "webp", "gif", "svg")
    output_compression: StrictInt | None = Field(default=None, json_schema_extra={"minimum": 0, "maximum": 100})
    background: StrictStr | None = _values("transparent", "opaque", "auto")
    moderation: StrictStr | None = _values("low", "auto")
    input_fidelity: StrictStr | None = _values("high", "low")
    """How much of the input is kept: ``high`` keeps more of its layout and colours (see docs/api.md)."""
    user: StrictStr | None = None
    safety_identifier: StrictStr | None = None
    stream: StrictBool | None = None
    partial_images: StrictInt | None = Field(default=None, json_schema_extra={"minimum": 0, "maximum": 3})
    # The JSON form's images (the multipart form uploads files instead).
    images: list[ImageRef] | None = Field(default=None, max_length=16)
    mask: ImageRef | None = None
    # Newest-SDK fields, validated as the generation's are (validation.resolve): complexity, gif's frame_count and
    # frame_duration_ms, and svg's options.
    complexity: SkipJsonSchema[StrictStr | None] = None
    frame_count: SkipJsonSchema[StrictInt | None] = None
    frame_duration_ms: SkipJsonSchema[StrictInt | None] = None
    svg: SkipJsonSchema[dict[str, Any] | None] = None


class ImageVariationRequest(BaseModel):
    """The fields of a variation (dall-e-2 rules)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: StrictStr | None = None
    n: StrictInt | None = Field(default=None, json_schema_extra={"minimum": 1, "maximum": 10})
    response_format: StrictStr | None = _values("url", "b64_json")
    size: StrictStr | None = _values("256x256", "512x512", "1024x1024")
    user: StrictStr | None = None


def _typed(name: str, value: str) -> Any:
    if name in _INT_FIELDS:
        text = value.strip()
        digits = text[1:] if text[:1] in "+-" else text
        # The length first: int() of thousands of digits raises (Python's conversion limit), and 20 are plenty.
        if not digits.isascii() or not digits.isdigit() or len(digits) > 20 or abs(int(text)) >= _INT_LIMIT:
            raise InvalidRequestError(f"Invalid type for '{name}': expected an integer, but got {value[:40]!r}.",
                                      param=name, code="invalid_type")  # fmt: skip
        return int(text)
    if name in _BOOL_FIELDS:
        if value.lower() not in ("true", "false"):
            raise InvalidRequestError(f"Invalid type for '{name}': expected a boolean, but got {value[:40]!r}.",
                                      param=name, code="invalid_type")  # fmt: skip
        return value.lower() == "true"
    return value


def form_fields(fields: Mapping[str, str]) -> dict[str, Any]:
    """Multipart text fields -> JSON-typed fields (``a[b][c]`` names become nested objects)."""
    out: dict[str, Any] = {}
    for name, value in fields.items():
        head, _, rest = name.partition("[")
        keys = [head, *rest.rstrip("]").split("][")] if rest else [name]
        node = out
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise InvalidRequestError(f"'{name}' conflicts with the field '{key}'.", param=name)
            node = child
        if isinstance(node.get(keys[-1]), dict):  # an object was given under this name already (either order)
            raise InvalidRequestError(f"'{name}' conflicts with the fields nested under it.", param=name)
        node[keys[-1]] = _typed(name, value) if not rest else value
    return out


def parse_edit_request(fields: Mapping[str, Any]) -> ImageEditRequest:
    try:
        return ImageEditRequest.model_validate(dict(fields))
    except ValidationError as exc:
        raise_validation_error(exc)


def parse_variation_request(fields: Mapping[str, Any]) -> ImageVariationRequest:
    try:
        return ImageVariationRequest.model_validate(dict(fields))
    except ValidationError as exc:
        raise_validation_error(exc)
