"""``resolve_edit`` and ``resolve_variation``: an edit's (or variation's) fields, its decoded input image and mask,
the model's profile and the engine's capabilities -> one :class:`~imageforge.validation.ResolvedRequest` whose
params start from the input image.

The rules shared with generation (prompt length, ``n``, sizes, qualities, formats, background, streaming) are
``validation.resolve``'s, applied to the same fields, so an edit is refused exactly where a generation would be.
What is the edit's own:

- the model must serve edits (GPT image models and ``dall-e-2``; not ``dall-e-3``) and its engine must run
  image-to-image (and inpainting, for a mask);
- ``size`` ``auto`` (the default) keeps the input's geometry where the profile allows that size, else the
  profile's size nearest in aspect ratio; ``dall-e-2`` takes one square PNG and answers 1024x1024 by default;
- ``input_fidelity`` per profile (gpt-image-2 refuses it, gpt-image-1-mini takes only ``low``, DALL·E does not
  know it) sets how much of the input is kept, :func:`edit_strength` (docs/api.md);
- with a mask, the masked area (the mask's transparent pixels) is drawn anew and the rest kept as it was;
- an engine uses as many input images as it declares (``EngineCapabilities.input_images``): the first is edited,
  the others are its references (``GenerationParams.reference_images``); more are refused, never dropped.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

from imageforge.config import Catalogue
from imageforge.errors import InvalidRequestError, UnknownParameterError, UnsupportedParameterError
from imageforge.params import EngineCapabilities
from imageforge.profiles import Profile
from imageforge.protocol.edits import ImageEditRequest, ImageVariationRequest
from imageforge.validation import ResolvedRequest, parse_size, resolve

__all__ = [
    "EDIT_STRENGTH",
    "MASKED_STRENGTH",
    "VARIATION_STRENGTH",
    "check_markup_request",
    "edit_size",
    "edit_strength",
    "resolve_edit",
    "resolve_variation",
]

# input_fidelity -> share of the noise schedule re-run over the input (diffusers' img2img `strength`): high keeps
# more of the input's layout and colours, low lets the prompt change more. OpenAI's default is low.
EDIT_STRENGTH = {"high": 0.45, "low": 0.7}
MASKED_STRENGTH = 1.0  # a masked area is drawn anew (in the context of the kept pixels around it)
VARIATION_STRENGTH = 0.6  # a variation keeps the input's composition and redraws its details with new seeds
_SHARED_FIELDS = (
    "prompt", "model", "n", "size", "quality", "response_format", "output_format", "output_compression",
    "background", "moderation", "user", "safety_identifier", "stream", "partial_images", "complexity",
    "frame_count", "frame_duration_ms", "svg",
)  # fmt: skip
Caps = EngineCapabilities | Callable[[str], EngineCapabilities]


def edit_strength(fidelity: str | None, masked: bool) -> float:
    return MASKED_STRENGTH if masked else EDIT_STRENGTH[fidelity or "low"]


def edit_size(profile: Profile, caps: EngineCapabilities, width: int, height: int) -> str:
    """``auto`` for an edit: the input's own size where the profile and the engine allow it, else the profile's
    fixed size nearest in aspect ratio."""
    own = f"{width}x{height}"
    if caps.max_pixels >= width * height and width % caps.size_multiple == 0 and height % caps.size_multiple == 0:
        try:
            parse_size(own, profile)
            return own
        except InvalidRequestError:
            pass
    fixed = [s for s in profile.sizes if s != "auto"]

    def distance(size: str) -> float:
        w, h = (int(v) for v in size.split("x"))
        return abs(math.log((w / h) / (width / height)))

    return min(fixed, key=lambda s: (distance(s), fixed.index(s)))


def _edit_model(req: ImageEditRequest, catalogue: Catalogue, default_gpt_model: str) -> tuple[str, Profile]:
    model = req.model or default_gpt_model
    profile = catalogue.profile(model)
    if not profile.edits:
        raise InvalidRequestError(
            f"The model '{model}' does not support image edits; use a GPT image model or dall-e-2.",
            param="model",
            code="invalid_value",
        )
    return model, profile


def _check_fidelity(req: ImageEditRequest, model: str, profile: Profile) -> None:
    value = req.input_fidelity
    if value is None:
        return
    if not profile.gpt:
        raise UnknownParameterError("Unknown parameter: 'input_fidelity'.", param="input_fidelity")
    if not profile.input_fidelity:
        error = InvalidRequestError(f"The model '{model}' does not support the 'input_fidelity' parameter.",
                                    param="input_fidelity", code="invalid_input_fidelity_model")  # fmt: skip
        error.type = "image_generation_user_error"
        raise error
    if value not in profile.input_fidelity:
        allowed = " and ".join(f"'{v}'" for v in profile.input_fidelity)
        raise InvalidRequestError(f"Invalid value for 'input_fidelity': {value!r}. Supported values for {model} "
                                  f"are: {allowed}.", param="input_fidelity", code="invalid_value")  # fmt: skip


def resolve_edit(
    req: ImageEditRequest,
    images: Sequence[Any],
    mask: Any | None,
    catalogue: Catalogue,
    caps: Caps,
    *,
    default_gpt_model: str,
    request_id: str = "",
) -> ResolvedRequest:
    """``images`` are the decoded input images (the first is edited, the others are the engine's references),
    ``mask`` the engines' repaint mask ("L", 255 = repaint) or None."""
    model, profile = _edit_model(req, catalogue, default_gpt_model)
    engine = caps if isinstance(caps, EngineCapabilities) else caps(model)
    _check_fidelity(req, model, profile)
    if len(images) > engine.input_images:
        what = ("one image (the image to edit)" if engine.input_images == 1 else
                f"at most {engine.input_images} images (the image to edit, then up to {engine.input_images - 1} "
                "references)")  # fmt: skip
        raise InvalidRequestError(
            f"The engine serving {model} edits from {what}; {len(images)} were sent.",
            param="image",
            code="invalid_value",
        )
    if not engine.img2img or (mask is not None and not engine.inpaint):
        what = "masked edits (inpainting)" if engine.img2img else "image edits"
        raise InvalidRequestError(f"The engine serving {model} cannot do {what}.", param="model")
    fields = {k: getattr(req, k) for k in _SHARED_FIELDS if getattr(req, k) is not None}
    fields["model"] = model
    if req.size in (None, "auto") and profile.gpt:
        fields["size"] = edit_size(profile, engine, images[0].width, images[0].height)
    resolved = resolve(fields, catalogue, engine, default_gpt_model=default_gpt_model, request_id=request_id)
    if resolved.frame_count is not None and mask is not None:  # OpenAI: a gif edit takes no mask
        raise InvalidRequestError("'mask' is not supported with output_format 'gif'.", param="mask",
                                  code="invalid_value")  # fmt: skip
    strength = edit_strength(req.input_fidelity or ("high" if profile.gpt and not profile.input_fidelity else None),
                             mask is not None)  # fmt: skip
    return _from_image(resolved, images[0], mask, strength, tuple(images[1:]))


def resolve_variation(
    req: ImageVariationRequest,
    image: Any,
    catalogue: Catalogue,
    caps: Caps,
    *,
    request_id: str = "",
) -> ResolvedRequest:
    """A variation: no prompt; new seeds over the input at :data:`VARIATION_STRENGTH` (dall-e-2's rules)."""
    model = req.model or "dall-e-2"
    profile = catalogue.profile(model)
    if not profile.variations:
        raise InvalidRequestError(
            f"Invalid model {model}: image variations are served by dall-e-2 only.", param="model",
            code="invalid_value",
        )  # fmt: skip
    engine = caps if isinstance(caps, EngineCapabilities) else caps(model)
    if not engine.img2img:
        raise InvalidRequestError(f"The engine serving {model} cannot make variations of an image.", param="model")
    fields = {k: v for k, v in req.model_dump(exclude_none=True).items()}
    fields["model"] = model
    resolved = resolve({**fields, "prompt": ""}, catalogue, engine, request_id=request_id, allow_empty_prompt=True)
    resolved = dataclasses.replace(resolved, params=dataclasses.replace(resolved.params, prompt=""))
    return _from_image(resolved, image, None, VARIATION_STRENGTH)


def _from_image(
    resolved: ResolvedRequest, image: Any, mask: Any | None, strength: float, references: tuple[Any, ...] = ()
) -> ResolvedRequest:
    p = resolved.params
    strength = max(strength, 1 / p.steps)  # at least one step runs
    params = dataclasses.replace(p, init_image=image, mask=mask, strength=strength, reference_images=references)
    return dataclasses.replace(resolved, params=params)


def check_markup_request(req: ImageEditRequest, profile: Profile, *, mask: bool) -> None:
    """``markup`` by OpenAI's rules: models that take it (gpt-image-2.5 and 2.6), never with ``mask``; and not with
    gif output, which takes no mask (markup weights the edit through one)."""
    if mask:
        raise InvalidRequestError("'markup' cannot be combined with 'mask'.", param="markup", code="invalid_value")
    if not profile.markup:
        raise UnsupportedParameterError(
            f"'markup' is not supported with model {profile.name}; the gpt-image-2.5 and gpt-image-2.6 models take it.",
            param="markup",
        )
    if req.output_format == "gif":
        raise InvalidRequestError("'markup' is not supported with output_format 'gif'.", param="markup",
                                  code="invalid_value")  # fmt: skip
