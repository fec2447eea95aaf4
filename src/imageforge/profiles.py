"""OpenAI model profiles as data: which rules of the image API apply to a served model.

Validation reads these; nothing else branches on model names (DESIGN.md §3). The values are OpenAI's
(``../shared/reference/openai-image-api.md`` §1.2-1.3). ``imageforge`` is our own profile for the embedded model's
native id: GPT-style parameters with any size from 16 to 3840 pixels a side.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PROFILES", "CustomSizeRule", "Profile", "get_profile"]

_GPT_PARAMS = frozenset(
    {"background", "moderation", "output_format", "output_compression", "stream", "partial_images", "complexity"}
)
_GPT_SIZES = ("1024x1024", "1536x1024", "1024x1536")


@dataclass(frozen=True)
class CustomSizeRule:
    """Arbitrary ``WxH`` sizes (gpt-image-2 style): every limit is named in the error when broken."""

    multiple: int
    min_edge: int
    max_edge: int
    max_ratio: float
    min_pixels: int
    max_pixels: int


@dataclass(frozen=True)
class Profile:
    name: str
    prompt_max_chars: int
    n_max: int
    sizes: tuple[str, ...]  # the fixed sizes; "auto" included where the model accepts it
    default_size: str  # what an omitted size / "auto" resolves to
    qualities: tuple[str, ...]  # accepted values, "auto" included
    auto_quality: str  # what "auto" (or omitted) resolves to
    # API quality -> engine quality key (the engine's quality->steps table has "low", "medium", "high").
    quality_map: tuple[tuple[str, str], ...]
    params: frozenset[str]  # optional parameters this model accepts beyond prompt/model/n/quality/size/user
    response_formats: tuple[str, ...] = ()  # () = the parameter is rejected (GPT models always answer b64_json)
    default_response_format: str = "b64_json"
    custom_sizes: CustomSizeRule | None = None
    returns_usage: bool = True
    returns_revised_prompt: bool = False
    gpt: bool = True
    # The `input_fidelity` values edits take: none on gpt-image-2 (OpenAI answers 400, reference §4.1) and DALL·E,
    # only "low" on gpt-image-1-mini (reference §3.2).
    input_fidelity: tuple[str, ...] = ("high", "low")
    edits: bool = True  # served by /v1/images/edits (dall-e-3 is not an edit model)
    variations: bool = False  # served by /v1/images/variations (dall-e-2 only)
    markup: bool = False  # edits take `markup` (strokes that guide the edit): the gpt-image-2.5 and 2.6 models

    def engine_quality(self, quality: str) -> str:
        return dict(self.quality_map)[quality]


_GPT_QUALITY = (("low", "low"), ("medium", "medium"), ("high", "high"))
# gpt-image-2.5's extra qualities: real extra work, more denoising steps (engines/base.py: 1.5x and 2x high's).
_GPT25_QUALITY = (*_GPT_QUALITY, ("xhigh", "xhigh"), ("max", "max"))


def _gpt(
    name: str,
    custom: CustomSizeRule | None = None,
    *,
    input_fidelity: tuple[str, ...] = ("high", "low"),
    quality_map: tuple[tuple[str, str], ...] = _GPT_QUALITY,
    markup: bool = False,
) -> Profile:
    return Profile(
        name=name,
        prompt_max_chars=32000,
        n_max=10,
        sizes=(*_GPT_SIZES, "auto"),
        default_size="1024x1024",
        qualities=(*(q for q, _ in quality_map), "auto"),
        auto_quality="high",
        quality_map=quality_map,
        params=_GPT_PARAMS,
        custom_sizes=custom,
        input_fidelity=input_fidelity,
        markup=markup,
    )


# gpt-image-2: both edges multiples of 16, aspect ratio within 3:1, at most 3840x2160 worth of pixels; the pixel
# floor is a third-party figure (reference §1.3) we adopt so that tiny sizes fail the same way.
_GPT2_SIZES = CustomSizeRule(
    multiple=16, min_edge=16, max_edge=3840, max_ratio=3.0, min_pixels=655_360, max_pixels=8_294_400
)

PROFILES: dict[str, Profile] = {
    "dall-e-2": Profile(
        name="dall-e-2",
        prompt_max_chars=1000,
        n_max=10,
        sizes=("256x256", "512x512", "1024x1024"),
        default_size="1024x1024",
        qualities=("standard", "auto"),
        auto_quality="standard",
        quality_map=(("standard", "medium"),),
        params=frozenset({"response_format"}),
        response_formats=("url", "b64_json"),
        default_response_format="url",
        returns_usage=False,
        gpt=False,
        input_fidelity=(),
        variations=True,
    ),
    "dall-e-3": Profile(
        name="dall-e-3",
        prompt_max_chars=4000,
        n_max=1,
        sizes=("1024x1024", "1792x1024", "1024x1792"),
        default_size="1024x1024",
        qualities=("standard", "hd", "auto"),
        auto_quality="standard",
        quality_map=(("standard", "medium"), ("hd", "high")),
        params=frozenset({"response_format", "style"}),
        response_formats=("url", "b64_json"),
        default_response_format="url",
        returns_usage=False,
        returns_revised_prompt=True,
        gpt=False,
        input_fidelity=(),
        edits=False,
    ),
    "gpt-image-1": _gpt("gpt-image-1"),
    "gpt-image-1-mini": _gpt("gpt-image-1-mini", input_fidelity=("low",)),
    "gpt-image-1.5": _gpt("gpt-image-1.5"),
    "gpt-image-2": _gpt("gpt-image-2", _GPT2_SIZES, input_fidelity=()),
    # The SDK's newest ids (reference §11.1): gpt-image-2's size rules; xhigh and max on the 2.5 models only;
    # input_fidelity is not documented for them, so it is refused as on gpt-image-2.
    "gpt-image-2.5-sunburst": _gpt(
        "gpt-image-2.5-sunburst", _GPT2_SIZES, input_fidelity=(), quality_map=_GPT25_QUALITY, markup=True
    ),
    "gpt-image-2.5-flare": _gpt(
        "gpt-image-2.5-flare", _GPT2_SIZES, input_fidelity=(), quality_map=_GPT25_QUALITY, markup=True
    ),
    "gpt-image-2.6-sunburst": _gpt("gpt-image-2.6-sunburst", _GPT2_SIZES, input_fidelity=(), markup=True),
    "gpt-image-2.6-flare": _gpt("gpt-image-2.6-flare", _GPT2_SIZES, input_fidelity=(), markup=True),
    "imageforge": Profile(
        name="imageforge",
        prompt_max_chars=32000,
        n_max=10,
        sizes=("256x256", "512x512", *_GPT_SIZES, "1792x1024", "1024x1792", "auto"),
        default_size="1024x1024",
        qualities=("low", "medium", "high", "auto"),
        auto_quality="high",
        quality_map=_GPT_QUALITY,
        params=_GPT_PARAMS,
        custom_sizes=CustomSizeRule(
            multiple=1, min_edge=16, max_edge=3840, max_ratio=8.0, min_pixels=256, max_pixels=3840 * 2160
        ),
    ),
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise KeyError(f"unknown profile {name!r}; known: {', '.join(sorted(PROFILES))}") from None
