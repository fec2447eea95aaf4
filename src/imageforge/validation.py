"""``resolve``: OpenAI image-request fields + the model's profile + the engine's capabilities -> frozen params.

Reject, don't clamp (DESIGN.md §4.2): every error names the parameter and the limit. ``None`` means "use the
default". Fields this module does not implement yet are refused with ``unknown_parameter`` rather than ignored.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from imageforge.config import Catalogue
from imageforge.errors import InvalidRequestError, UnknownParameterError, UnsupportedParameterError
from imageforge.imaging.encode import OutputFormat
from imageforge.params import Background, EngineCapabilities, GenerationParams
from imageforge.profiles import Profile

__all__ = ["HANDLED_FIELDS", "ResolvedRequest", "choose_model", "parse_size", "resolve"]

HANDLED_FIELDS = frozenset(
    {"prompt", "model", "n", "quality", "size", "background", "output_format", "output_compression", "response_format"}
)
# Parameters whose presence makes an omitted model a GPT image model (reference §1.4).
_GPT_TRIGGERS = frozenset({"background", "moderation", "output_format", "output_compression", "partial_images"})
_SIZE = re.compile(r"^([1-9][0-9]{0,4})x([1-9][0-9]{0,4})$")


@dataclass(frozen=True)
class ResolvedRequest:
    """A validated request: what to generate, and how to deliver it, with every ``auto`` decided."""

    model: str
    profile: Profile
    params: GenerationParams
    quality: str  # the API's resolved quality ("low"/"medium"/"high", or "standard"/"hd" for DALL·E)
    size: str  # "WxH", never "auto"
    output_format: OutputFormat
    output_compression: int | None
    response_format: Literal["url", "b64_json"]


def choose_model(fields: Mapping[str, Any], default_gpt_model: str = "gpt-image-1") -> str:
    """OpenAI's rule: an omitted model is dall-e-2 unless a GPT-only parameter (or value) is present."""
    model = fields.get("model")
    if model is not None:
        if not isinstance(model, str) or not model:
            raise InvalidRequestError("model must be a non-empty string.", param="model")
        return model
    gpt_only = any(fields.get(k) is not None for k in _GPT_TRIGGERS) or fields.get("stream") is True
    gpt_only |= fields.get("quality") in ("low", "medium", "high")
    gpt_only |= fields.get("size") in ("1536x1024", "1024x1536")
    return default_gpt_model if gpt_only else "dall-e-2"


def parse_size(size: str, profile: Profile) -> tuple[int, int]:
    if size == "auto" and "auto" in profile.sizes:
        size = profile.default_size
    m = _SIZE.match(size)
    listed = ", ".join(s for s in profile.sizes)
    if m is None:
        raise InvalidRequestError(f"Invalid size '{size}'. Supported sizes are {listed}.", param="size")
    w, h = int(m.group(1)), int(m.group(2))
    if size in profile.sizes:
        return w, h
    rule = profile.custom_sizes
    if rule is None:
        raise InvalidRequestError(
            f"Invalid size '{size}' for {profile.name}. Supported sizes are {listed}.", param="size"
        )
    problems = []
    if w % rule.multiple or h % rule.multiple:
        problems.append(f"both edges must be multiples of {rule.multiple}")
    if not (rule.min_edge <= w <= rule.max_edge and rule.min_edge <= h <= rule.max_edge):
        problems.append(f"each edge must be between {rule.min_edge} and {rule.max_edge} pixels")
    if max(w, h) / min(w, h) > rule.max_ratio:
        problems.append(f"the aspect ratio must be at most {rule.max_ratio:g}:1")
    if not rule.min_pixels <= w * h <= rule.max_pixels:
        problems.append(f"the total pixel count must be between {rule.min_pixels} and {rule.max_pixels}")
    if problems:
        raise InvalidRequestError(f"Invalid size '{size}': {'; '.join(problems)}.", param="size")
    return w, h


def _check_type(fields: Mapping[str, Any], name: str, kind: type, label: str) -> Any:
    value = fields.get(name)
    if value is None:
        return None
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise InvalidRequestError(f"Invalid type for '{name}': expected {label}, got {value!r}.", param=name)
    if kind is not int and not isinstance(value, kind):
        raise InvalidRequestError(f"Invalid type for '{name}': expected {label}, got {value!r}.", param=name)
    return value


def _choice(value: Any, allowed: tuple[str, ...], name: str, model: str) -> str:
    if value not in allowed:
        options = ", ".join(f"'{a}'" for a in allowed)
        raise InvalidRequestError(
            f"Invalid value for '{name}': {value!r}. Supported values for {model} are: {options}.", param=name
        )
    return cast(str, value)


def resolve(
    fields: Mapping[str, Any],
    catalogue: Catalogue,
    caps: EngineCapabilities,
    *,
    seed: int | None = None,
    default_gpt_model: str = "gpt-image-1",
    request_id: str = "",
) -> ResolvedRequest:
    # 1. Unknown fields, model, profile.
    for name in fields:
        if name not in HANDLED_FIELDS:
            raise UnknownParameterError(f"Unknown parameter: '{name}'.", param=name)
    model = choose_model(fields, default_gpt_model)
    profile = catalogue.profile(model)
    for name in ("background", "output_format", "output_compression", "response_format"):
        if fields.get(name) is not None and name not in profile.params:
            if name == "response_format" and profile.gpt:
                msg = f"Unknown parameter: 'response_format'. {model} always returns base64-encoded images."
                raise UnknownParameterError(msg, param=name)
            raise UnsupportedParameterError(f"'{name}' is not supported with model {model}.", param=name)

    # 2. Prompt and n.
    prompt = _check_type(fields, "prompt", str, "a string")
    if prompt is None or not prompt.strip():
        raise InvalidRequestError("'prompt' is required and must not be empty.", param="prompt")
    if len(prompt) > profile.prompt_max_chars:
        raise InvalidRequestError(
            f"'prompt' is too long: {len(prompt)} characters; the maximum for {model} is {profile.prompt_max_chars}.",
            param="prompt",
        )
    n = _check_type(fields, "n", int, "an integer")
    n = 1 if n is None else n
    if not 1 <= n <= profile.n_max:
        limit = "only n=1 is supported" if profile.n_max == 1 else f"n must be between 1 and {profile.n_max}"
        raise InvalidRequestError(f"Invalid 'n': {n}. For {model}, {limit}.", param="n")

    # 3. Size and quality -> pixels and steps.
    size = _check_type(fields, "size", str, "a string")
    width, height = parse_size(profile.default_size if size is None else size, profile)
    if width * height > caps.max_pixels or width % caps.size_multiple or height % caps.size_multiple:
        raise InvalidRequestError(
            f"Size {width}x{height} is beyond what the engine serving {model} can draw (at most {caps.max_pixels} "
            f"pixels, edges divisible by {caps.size_multiple}).",
            param="size",
        )
    quality = _check_type(fields, "quality", str, "a string") or "auto"
    quality = _choice(quality, profile.qualities, "quality", model)
    if quality == "auto":
        quality = profile.auto_quality
    steps = caps.quality_steps[profile.engine_quality(quality)]

    # 4. Output: format, compression, background, response format.
    output_format = _choice(fields.get("output_format") or "png", ("png", "jpeg", "webp"), "output_format", model)
    compression = _check_type(fields, "output_compression", int, "an integer")
    if compression is not None and not 0 <= compression <= 100:
        raise InvalidRequestError(
            f"Invalid 'output_compression': {compression}. It must be between 0 and 100.", param="output_compression"
        )
    background = _choice(fields.get("background") or "auto", ("transparent", "opaque", "auto"), "background", model)
    if background == "auto":
        background = "opaque"
    if background == "transparent":
        if output_format == "jpeg":
            raise InvalidRequestError(
                "Transparent background requires output_format 'png' or 'webp'; jpeg has no alpha channel.",
                param="background",
            )
        if caps.alpha == "none":
            raise InvalidRequestError(f"{model} cannot produce transparent backgrounds.", param="background")
    response_format = fields.get("response_format") or profile.default_response_format
    if profile.response_formats:
        response_format = _choice(response_format, profile.response_formats, "response_format", model)

    params = GenerationParams(
        prompt=prompt,
        width=width,
        height=height,
        steps=steps,
        seed=secrets.randbelow(2**31) if seed is None else seed,
        n=n,
        background=cast(Background, background),
        request_id=request_id,
    )
    return ResolvedRequest(
        model=model,
        profile=profile,
        params=params,
        quality=quality,
        size=f"{width}x{height}",
        output_format=cast(OutputFormat, output_format),
        output_compression=compression,
        response_format=cast(Literal["url", "b64_json"], response_format),
    )
