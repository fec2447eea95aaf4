"""``resolve``: OpenAI image-request fields + the model's profile + the engine's capabilities -> frozen params.

Reject, don't clamp (DESIGN.md §4.2): every error names the parameter and the limit. ``None`` means "use the
default". Parameters that no served model supports yet are refused by name (400), never silently ignored.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from imageforge.config import Catalogue
from imageforge.errors import InvalidRequestError, UnknownParameterError, UnsupportedParameterError
from imageforge.imaging.encode import DEFAULT_FRAME_MS, OutputFormat
from imageforge.imaging.gif import gif_frame_delay_ms
from imageforge.params import Background, EngineCapabilities, GenerationParams
from imageforge.profiles import Profile
from imageforge.protocol.images import ImageGenerateRequest, parse_request

__all__ = ["HANDLED_FIELDS", "Moderation", "Quality", "ResolvedRequest", "choose_model", "parse_size", "resolve"]

HANDLED_FIELDS = frozenset(ImageGenerateRequest.model_fields)
# Parameters whose presence makes an omitted model a GPT image model (reference §1.4), and the newest SDK's GPT-only
# ones (§10), which no DALL·E model takes either.
_GPT_TRIGGERS = frozenset({"background", "moderation", "output_format", "output_compression", "partial_images",
                           "complexity", "frame_count", "frame_duration_ms", "svg"})  # fmt: skip
_GPT_QUALITIES = ("low", "medium", "high", "xhigh", "max")
# Per-model optional parameters: refused (named) when the model's profile does not list them.
_PROFILE_PARAMS = (
    "background", "moderation", "output_format", "output_compression", "response_format", "style", "partial_images",
    "complexity",
)  # fmt: skip
# complexity -> candidate starts an engine drafts and scores per image before drawing (GenerationParams.
# plan_candidates); "low" draws from the seed directly. docs/api.md has the table.
COMPLEXITY_CANDIDATES = {"low": 1, "medium": 4, "high": 8}
_GIF_FRAMES = (2, 16)  # OpenAI's frame_count range (default 9)
_GIF_DEFAULT_FRAMES = 9
_SIZE = re.compile(r"^([1-9][0-9]{0,4})x([1-9][0-9]{0,4})$")
# dall-e-3's `style`, made real: the prompt the engine conditions on, returned as `revised_prompt`.
STYLE_SUFFIXES = {
    "vivid": "vivid saturated colours, dramatic high-contrast lighting",
    "natural": "natural muted colours, soft realistic lighting",
}


Quality = Literal["low", "medium", "high", "xhigh", "max", "standard", "hd"]
Moderation = Literal["low", "auto"]


@dataclass(frozen=True)
class ResolvedRequest:
    """A validated request: what to generate, and how to deliver it, with every ``auto`` decided."""

    model: str
    profile: Profile
    params: GenerationParams
    quality: Quality  # the API's resolved quality (never "auto")
    size: str  # "WxH", never "auto"
    output_format: OutputFormat
    output_compression: int | None
    response_format: Literal["url", "b64_json"]
    moderation: Moderation | None = None  # GPT profiles; None where the model has no moderation setting
    style: str | None = None  # dall-e-3: "vivid"/"natural"
    end_user: str | None = None  # safety_identifier, else user: recorded with the request in the logs
    partial_images: int = 0
    stream: bool = False
    safety_identifier: str | None = None  # as given (echoed in responses)
    frame_count: int | None = None  # gif: frames per animation (params.n = n gifs x frames); None otherwise
    frame_duration_ms: int = DEFAULT_FRAME_MS  # gif: each frame's delay, as the file stores it (10 ms steps)
    svg_detail: str = "medium"  # svg: the tracer's preset (imaging/svg.py), from svg.reasoning.effort
    complexity: str = "low"  # as given, else the model's configured default (planning: params.plan_candidates)


def choose_model(fields: Mapping[str, Any], default_gpt_model: str = "gpt-image-1") -> str:
    """OpenAI's rule: an omitted model is dall-e-2 unless a GPT-only parameter (or value) is present."""
    model = fields.get("model")
    if model is not None:
        if not isinstance(model, str) or not model:
            raise InvalidRequestError("model must be a non-empty string.", param="model")
        return model
    gpt_only = any(fields.get(k) is not None for k in _GPT_TRIGGERS) or fields.get("stream") is True
    gpt_only |= fields.get("quality") in _GPT_QUALITIES
    gpt_only |= fields.get("size") in ("1536x1024", "1024x1536")
    return default_gpt_model if gpt_only else "dall-e-2"


def parse_size(size: str, profile: Profile) -> tuple[int, int]:
    if size == "auto" and "auto" in profile.sizes:
        size = profile.default_size
    m = _SIZE.match(size)
    listed = ", ".join(s for s in profile.sizes)
    if m is None:
        raise InvalidRequestError(
            f"Invalid size '{size}'. Supported sizes are {listed}.", param="size", code="invalid_value"
        )
    w, h = int(m.group(1)), int(m.group(2))
    if size in profile.sizes:
        return w, h
    rule = profile.custom_sizes
    if rule is None:
        raise InvalidRequestError(
            f"Invalid size '{size}' for {profile.name}. Supported sizes are {listed}.",
            param="size",
            code="invalid_value",
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
        raise InvalidRequestError(f"Invalid size '{size}': {'; '.join(problems)}.", param="size", code="invalid_value")
    return w, h


def _choice(value: Any, allowed: tuple[str, ...], name: str, model: str) -> str:
    if value not in allowed:
        options = ", ".join(f"'{a}'" for a in allowed)
        raise InvalidRequestError(
            f"Invalid value for '{name}': {value!r}. Supported values for {model} are: {options}.",
            param=name,
            code="invalid_value",
        )
    return cast(str, value)


def _check_model_params(req: ImageGenerateRequest, model: str, profile: Profile) -> None:
    for name in _PROFILE_PARAMS:
        if getattr(req, name) is None or name in profile.params:
            continue
        if name == "response_format" and profile.gpt:
            msg = f"Unknown parameter: 'response_format'. {model} always returns base64-encoded images."
            raise UnknownParameterError(msg, param=name)
        raise UnsupportedParameterError(f"'{name}' is not supported with model {model}.", param=name)
    if req.stream and "stream" not in profile.params:
        raise UnsupportedParameterError(f"'stream' is not supported with model {model}.", param="stream")


def resolve(
    fields: ImageGenerateRequest | Mapping[str, Any],
    catalogue: Catalogue,
    caps: EngineCapabilities | Callable[[str], EngineCapabilities],
    *,
    seed: int | None = None,
    default_gpt_model: str = "gpt-image-1",
    request_id: str = "",
    allow_empty_prompt: bool = False,
) -> ResolvedRequest:
    # 1. Names and JSON types, then the model, its profile, and which optional parameters it takes.
    req = fields if isinstance(fields, ImageGenerateRequest) else parse_request(fields)
    model = choose_model(req.model_dump(exclude_none=True), default_gpt_model)
    profile = catalogue.profile(model)
    _check_model_params(req, model, profile)
    if not isinstance(caps, EngineCapabilities):
        caps = caps(model)  # the capabilities of the engine serving this model

    # 2. Prompt and n.
    prompt = req.prompt
    if not prompt.strip() and not allow_empty_prompt:
        raise InvalidRequestError("'prompt' must not be empty.", param="prompt", code="invalid_value")
    if len(prompt) > profile.prompt_max_chars:
        raise InvalidRequestError(
            f"'prompt' is too long: {len(prompt)} characters; the maximum for {model} is {profile.prompt_max_chars}.",
            param="prompt",
            code="string_above_max_length",
        )
    n = 1 if req.n is None else req.n
    if req.stream and n != 1:
        # Stream events carry no image index (reference §2.2), so several images could not be told apart.
        raise InvalidRequestError(
            f"Invalid 'n': {n}. Streaming (stream=true) returns one image; send n=1 or stream=false.",
            param="n",
            code="invalid_value",
        )
    if not 1 <= n <= profile.n_max:
        limit = "only n=1 is supported" if profile.n_max == 1 else f"n must be between 1 and {profile.n_max}"
        raise InvalidRequestError(f"Invalid 'n': {n}. For {model}, {limit}.", param="n", code="invalid_value")

    # 3. Size and quality -> pixels and steps.
    width, height = parse_size(profile.default_size if req.size is None else req.size, profile)
    if width * height > caps.max_pixels or width % caps.size_multiple or height % caps.size_multiple:
        raise InvalidRequestError(
            f"Size {width}x{height} is beyond what the engine serving {model} can draw (at most {caps.max_pixels} "
            f"pixels, edges divisible by {caps.size_multiple}).",
            param="size",
        )
    quality = _choice(req.quality or "auto", profile.qualities, "quality", model)
    if quality == "auto":
        quality = profile.auto_quality
    steps = caps.quality_steps[profile.engine_quality(quality)]

    # 4. Output: format, compression, background, response format.
    formats = ("png", "jpeg", "webp", "gif", "svg")
    output_format = _choice(req.output_format or "png", formats, "output_format", model)
    frames, frame_ms = _animation(req, output_format, caps, model)
    svg_detail = _vector(req, output_format, n)
    compression = req.output_compression
    if compression is not None and not 0 <= compression <= 100:
        raise InvalidRequestError(
            f"Invalid 'output_compression': {compression}. It must be between 0 and 100.",
            param="output_compression",
            code="invalid_value",
        )
    background = _choice(req.background or "auto", ("transparent", "opaque", "auto"), "background", model)
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
    response_format = req.response_format or profile.default_response_format
    if profile.response_formats:
        response_format = _choice(response_format, profile.response_formats, "response_format", model)

    # 5. Settings that change what is drawn or recorded: moderation, style, the end user, partial images.
    moderation = None
    if "moderation" in profile.params:
        moderation = _choice(req.moderation or "auto", ("low", "auto"), "moderation", model)
    style = None
    if "style" in profile.params:
        style = _choice(req.style or "vivid", tuple(STYLE_SUFFIXES), "style", model)
        prompt = f"{prompt}, {STYLE_SUFFIXES[style]}"
    partial_images = 0 if req.partial_images is None else req.partial_images
    if not 0 <= partial_images <= 3:
        raise InvalidRequestError(
            f"Invalid 'partial_images': {partial_images}. It must be between 0 and 3.",
            param="partial_images",
            code="invalid_value",
        )
    end_user = req.safety_identifier or req.user or None
    complexity, candidates = _planning(req.complexity, catalogue.entry(model).complexity, caps, model)

    params = GenerationParams(
        prompt=prompt,
        width=width,
        height=height,
        steps=steps,
        seed=secrets.randbelow(2**31) if seed is None else seed,
        n=n * (frames or 1),  # a gif's frames are images the engine draws
        frames=frames or 0,
        plan_candidates=candidates,
        background=cast(Background, background),
        request_id=request_id,
    )
    return ResolvedRequest(
        model=model,
        profile=profile,
        params=params,
        quality=cast(Quality, quality),
        size=f"{width}x{height}",
        output_format=cast(OutputFormat, output_format),
        output_compression=compression,
        response_format=cast(Literal["url", "b64_json"], response_format),
        moderation=cast(Moderation | None, moderation),
        style=style,
        end_user=end_user,
        partial_images=partial_images,
        stream=bool(req.stream),
        safety_identifier=req.safety_identifier or None,
        frame_count=frames,
        frame_duration_ms=frame_ms,
        svg_detail=svg_detail,
        complexity=complexity,
    )


def _planning(given: str | None, default: str, caps: EngineCapabilities, model: str) -> tuple[str, int]:
    """(complexity, candidates to draft per image): the request's, else the model's configured default."""
    complexity = _choice(default if given is None else given, tuple(COMPLEXITY_CANDIDATES), "complexity", model)
    candidates = COMPLEXITY_CANDIDATES[complexity]
    if candidates > 1 and not caps.planning:
        raise UnsupportedParameterError(
            f"complexity '{complexity}' is not supported by the engine serving {model}: it draws without planning. "
            "Send complexity 'low' (or leave it out).",
            param="complexity",
        )
    return complexity, candidates


# svg.reasoning.effort (the SDK's values) -> how closely the tracer follows the image (imaging/svg.py presets).
SVG_EFFORT_DETAIL = {"none": "low", "minimal": "low", "low": "low", "medium": "medium", "high": "high",
                     "xhigh": "high", "max": "high"}  # fmt: skip


def _vector(req: ImageGenerateRequest, output_format: str, n: int) -> str:
    """An svg's tracing detail from its ``svg`` options, by OpenAI's rules; the svg fields need output_format svg."""
    if output_format != "svg":
        if req.svg is not None:
            raise InvalidRequestError(
                "'svg' is only supported with output_format 'svg'.", param="svg", code="invalid_value"
            )
        return "medium"
    for name, given in (("stream", req.stream), ("partial_images", req.partial_images),
                        ("output_compression", req.output_compression)):  # fmt: skip
        if given:
            raise InvalidRequestError(
                f"'{name}' is not supported with output_format 'svg'.", param=name, code="invalid_value"
            )
    if n != 1:
        raise InvalidRequestError(
            f"Invalid 'n': {n}. output_format 'svg' makes one image (n=1).", param="n", code="invalid_value"
        )
    options = req.svg or {}
    unknown = sorted(set(options) - {"model", "reasoning"})
    if unknown:
        raise UnknownParameterError(f"Unknown parameter: 'svg.{unknown[0]}'.", param=f"svg.{unknown[0]}")
    if "model" in options and not isinstance(options["model"], str):
        raise InvalidRequestError("'svg.model' must be a string.", param="svg.model", code="invalid_type")
    reasoning = options.get("reasoning") or {}
    if not isinstance(reasoning, dict) or set(reasoning) - {"effort"}:
        raise InvalidRequestError("'svg.reasoning' must be an object with 'effort'.", param="svg.reasoning",
                                  code="invalid_value")  # fmt: skip
    effort = reasoning.get("effort") or "medium"
    if not isinstance(effort, str) or effort not in SVG_EFFORT_DETAIL:
        options_text = ", ".join(f"'{e}'" for e in SVG_EFFORT_DETAIL)
        raise InvalidRequestError(f"Invalid value for 'svg.reasoning.effort': {effort!r}. Supported values are: "
                                  f"{options_text}.", param="svg.reasoning.effort", code="invalid_value")  # fmt: skip
    return SVG_EFFORT_DETAIL[effort]


def _animation(
    req: ImageGenerateRequest, output_format: str, caps: EngineCapabilities, model: str
) -> tuple[int | None, int]:
    """A gif's (frame count, delay per frame in ms) by OpenAI's rules; (None, default) for other formats, where
    the gif fields are refused."""
    if output_format != "gif":
        for name in ("frame_count", "frame_duration_ms"):
            if getattr(req, name) is not None:
                raise InvalidRequestError(
                    f"'{name}' is only supported with output_format 'gif'.", param=name, code="invalid_value"
                )
        return None, DEFAULT_FRAME_MS
    if not caps.animation:
        raise UnsupportedParameterError(
            f"output_format 'gif' is not supported by the engine serving {model}.", param="output_format"
        )
    for name, given in (("stream", req.stream), ("partial_images", req.partial_images),
                        ("output_compression", req.output_compression)):  # fmt: skip
        if given:  # OpenAI: gif has no streaming, partial images or compression
            raise InvalidRequestError(
                f"'{name}' is not supported with output_format 'gif'.", param=name, code="invalid_value"
            )
    frames = _GIF_DEFAULT_FRAMES if req.frame_count is None else req.frame_count
    lo, hi = _GIF_FRAMES
    if not lo <= frames <= hi:
        raise InvalidRequestError(
            f"Invalid 'frame_count': {frames}. It must be between {lo} and {hi}.", param="frame_count",
            code="invalid_value",
        )  # fmt: skip
    ms = DEFAULT_FRAME_MS if req.frame_duration_ms is None else req.frame_duration_ms
    if ms < 1:
        raise InvalidRequestError(
            f"Invalid 'frame_duration_ms': {ms}. It must be a positive number of milliseconds.",
            param="frame_duration_ms",
            code="invalid_value",
        )
    return frames, gif_frame_delay_ms(ms)
