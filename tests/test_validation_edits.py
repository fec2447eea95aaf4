"""validation_edits: an edit's or variation's fields + its input image + the model's profile + the engine's
capabilities -> params that start from the input image, or a named 400."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from PIL import Image

from imageforge.config import EMBEDDED_ID, default_catalogue
from imageforge.engines.fake import FakeEngine
from imageforge.errors import InvalidRequestError, UnknownParameterError, UnsupportedParameterError
from imageforge.params import EngineCapabilities
from imageforge.profiles import PROFILES
from imageforge.protocol.edits import parse_edit_request, parse_variation_request
from imageforge.validation import ResolvedRequest
from imageforge.validation_edits import (
    EDIT_STRENGTH,
    MASKED_STRENGTH,
    VARIATION_STRENGTH,
    check_markup_request,
    edit_size,
    edit_strength,
    resolve_edit,
    resolve_variation,
)

CATALOGUE = default_catalogue()
CAPS = FakeEngine().capabilities  # quality steps: low 2, medium 4, high 8; one input image
WIDE = Image.new("RGB", (640, 400), (200, 30, 30))


def mask_for(image: Image.Image) -> Image.Image:
    return Image.new("L", image.size, 255)


def edit(
    image: Image.Image = WIDE,
    *,
    images: int = 1,
    mask: Image.Image | None = None,
    caps: EngineCapabilities = CAPS,
    **fields: Any,
) -> ResolvedRequest:
    req = parse_edit_request({"prompt": "make it blue", **fields})
    inputs = [image] * images  # the first is edited, the others are references
    return resolve_edit(req, inputs, mask, CATALOGUE, caps, default_gpt_model="gpt-image-1", request_id="r1")


def refused(param: str, **kw: Any) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as info:
        edit(**kw)
    assert info.value.param == param, info.value.message
    return info.value


# -- size -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [None, "auto"])
def test_auto_size_keeps_the_inputs_geometry_where_the_profile_allows_it(size: str | None) -> None:
    fields: dict[str, Any] = {} if size is None else {"size": size}
    r = edit(model=EMBEDDED_ID, **fields)
    assert r.size == "640x400"
    assert (r.params.width, r.params.height) == (640, 400)


@pytest.mark.parametrize(
    ("model", "image_size", "expected"),
    [
        ("gpt-image-1", (640, 400), "1536x1024"),  # 1.6:1 -> the 1.5:1 landscape size
        ("gpt-image-1", (400, 640), "1024x1536"),
        ("gpt-image-1", (300, 310), "1024x1024"),
        ("gpt-image-2", (640, 400), "1536x1024"),  # 640x400 breaks gpt-image-2's pixel floor: nearest fixed size
        ("gpt-image-2", (1280, 800), "1280x800"),  # a size gpt-image-2's own rules take is kept
    ],
)
def test_auto_size_is_the_nearest_fixed_size_in_aspect_ratio_otherwise(
    model: str, image_size: tuple[int, int], expected: str
) -> None:
    r = edit(Image.new("RGB", image_size), model=model)
    assert r.size == expected
    assert f"{r.params.width}x{r.params.height}" == expected


def test_edit_size_respects_the_engines_size_multiple() -> None:
    caps = dataclasses.replace(CAPS, size_multiple=64)
    # 640x400 is a size the imageforge profile takes, but 400 is no multiple of 64: the nearest fixed size instead.
    assert edit_size(PROFILES["imageforge"], caps, 640, 400) == "1536x1024"
    assert edit_size(PROFILES["imageforge"], CAPS, 640, 400) == "640x400"


def test_an_explicit_size_is_the_generation_rule() -> None:
    assert edit(model="gpt-image-1", size="1024x1536").size == "1024x1536"
    assert "Supported sizes" in refused("size", model="gpt-image-1", size="640x400").message


def test_dall_e_2_edits_answer_1024x1024_by_default() -> None:
    square = Image.new("RGB", (512, 512))
    r = edit(square, model="dall-e-2")
    assert (r.model, r.size, r.response_format) == ("dall-e-2", "1024x1024", "url")
    assert edit(square, model="dall-e-2", size="256x256").size == "256x256"


# -- strength and mode ------------------------------------------------------------------------------------------


def test_edit_strength_table() -> None:
    assert edit_strength("high", False) == EDIT_STRENGTH["high"] == 0.45
    assert edit_strength("low", False) == EDIT_STRENGTH["low"] == 0.7
    assert edit_strength(None, False) == 0.7  # OpenAI's default fidelity is low
    assert edit_strength("high", True) == edit_strength(None, True) == MASKED_STRENGTH == 1.0


@pytest.mark.parametrize(
    ("fields", "masked", "strength", "mode"),
    [
        ({"input_fidelity": "high"}, False, 0.45, "img2img"),
        ({"input_fidelity": "low"}, False, 0.7, "img2img"),
        ({}, False, 0.7, "img2img"),
        ({"input_fidelity": "high"}, True, 1.0, "inpaint"),
        ({}, True, 1.0, "inpaint"),
    ],
)
def test_input_fidelity_and_the_mask_set_strength_and_mode(
    fields: dict[str, Any], masked: bool, strength: float, mode: str
) -> None:
    mask = mask_for(WIDE) if masked else None
    r = edit(model="gpt-image-1", mask=mask, **fields)
    p = r.params
    assert p.strength == pytest.approx(strength)
    assert p.mode == mode
    assert p.init_image is WIDE and p.mask is mask
    assert p.steps == CAPS.quality_steps["high"]  # quality auto on a GPT model is high
    assert p.denoising_steps == int(p.steps * strength)


def test_gpt_image_2_which_takes_no_input_fidelity_edits_as_high() -> None:
    assert edit(model="gpt-image-2").params.strength == pytest.approx(0.45)


def test_gpt_image_1_mini_defaults_to_low() -> None:
    assert edit(model="gpt-image-1-mini").params.strength == pytest.approx(0.7)
    assert edit(model="gpt-image-1-mini", input_fidelity="low").params.strength == pytest.approx(0.7)


def test_strength_never_leaves_less_than_one_step() -> None:
    p = edit(model="gpt-image-1", input_fidelity="high", quality="low").params  # 2 steps: 45 % of them is 0
    assert p.steps == 2
    assert p.strength == pytest.approx(0.5)
    assert p.denoising_steps == 1


# -- input_fidelity per model -----------------------------------------------------------------------------------


def test_gpt_image_2_refuses_input_fidelity_as_openai_does() -> None:
    e = refused("input_fidelity", model="gpt-image-2", input_fidelity="low")
    assert e.code == "invalid_input_fidelity_model"
    assert e.type == "image_generation_user_error"
    assert e.status == 400
    assert "gpt-image-2" in e.message


def test_gpt_image_1_mini_takes_only_low() -> None:
    e = refused("input_fidelity", model="gpt-image-1-mini", input_fidelity="high")
    assert e.code == "invalid_value"
    assert e.type == "invalid_request_error"
    assert "'low'" in e.message


def test_an_unknown_input_fidelity_value_is_refused() -> None:
    assert refused("input_fidelity", model="gpt-image-1", input_fidelity="medium").code == "invalid_value"


def test_dall_e_2_does_not_know_input_fidelity() -> None:
    e = refused("input_fidelity", model="dall-e-2", input_fidelity="low", image=Image.new("RGB", (256, 256)))
    assert isinstance(e, UnknownParameterError)
    assert e.code == "unknown_parameter"


# -- models, engines, input images ------------------------------------------------------------------------------


def test_dall_e_3_is_not_an_edit_model() -> None:
    e = refused("model", model="dall-e-3")
    assert e.code == "invalid_value"
    assert "does not support image edits" in e.message


def test_an_omitted_model_is_the_default_gpt_model() -> None:
    assert edit().model == "gpt-image-1"


def test_more_images_than_the_engine_uses_are_refused_naming_the_limit() -> None:
    e = refused("image", model="gpt-image-1", images=2)
    assert e.code == "invalid_value"
    assert "one image" in e.message and "2 were sent" in e.message
    three = dataclasses.replace(CAPS, input_images=3)
    e = refused("image", model="gpt-image-1", images=4, caps=three)
    assert "at most 3 images" in e.message
    three_images = edit(model="gpt-image-1", images=3, caps=three).params
    assert three_images.init_image is WIDE and len(three_images.reference_images) == 2


def test_an_engine_without_img2img_refuses_edits() -> None:
    e = refused("model", model="gpt-image-1", caps=dataclasses.replace(CAPS, img2img=False))
    assert "cannot do image edits" in e.message


def test_an_engine_without_inpainting_refuses_only_masked_edits() -> None:
    caps = dataclasses.replace(CAPS, inpaint=False)
    e = refused("model", model="gpt-image-1", caps=caps, mask=mask_for(WIDE))
    assert "masked edits (inpainting)" in e.message
    assert edit(model="gpt-image-1", caps=caps).params.mode == "img2img"


def test_capabilities_may_be_looked_up_per_model() -> None:
    seen: list[str] = []

    def caps(model: str) -> EngineCapabilities:
        seen.append(model)
        return CAPS

    req = parse_edit_request({"prompt": "x", "model": "gpt-image-1-mini"})
    r = resolve_edit(req, [WIDE], None, CATALOGUE, caps, default_gpt_model="gpt-image-1")
    assert r.model == "gpt-image-1-mini"
    assert seen and set(seen) == {"gpt-image-1-mini"}


def test_the_shared_generation_rules_apply_to_edits() -> None:
    refused("n", model="gpt-image-1", n=11)
    refused("prompt", model="dall-e-2", prompt="x" * 1001, image=Image.new("RGB", (256, 256)))
    refused("stream", model="dall-e-2", stream=True, image=Image.new("RGB", (256, 256)))
    refused("background", model="gpt-image-1", background="transparent", output_format="jpeg")
    r = edit(model="gpt-image-1", n=3, quality="low", output_format="webp", user="u1")
    assert (r.params.n, r.quality, r.output_format, r.end_user) == (3, "low", "webp", "u1")


# -- variations -------------------------------------------------------------------------------------------------


def test_variation_defaults() -> None:
    image = Image.new("RGB", (256, 256))
    r = resolve_variation(parse_variation_request({}), image, CATALOGUE, CAPS, request_id="v1")
    assert (r.model, r.size, r.response_format) == ("dall-e-2", "1024x1024", "url")
    p = r.params
    assert p.prompt == ""
    assert p.strength == pytest.approx(VARIATION_STRENGTH) == pytest.approx(0.6)
    assert p.mode == "img2img" and p.init_image is image and p.mask is None
    assert p.n == 1 and p.request_id == "v1"


def test_variation_fields() -> None:
    req = parse_variation_request({"n": 3, "size": "512x512", "response_format": "b64_json", "user": "u2"})
    r = resolve_variation(req, Image.new("RGB", (256, 256)), CATALOGUE, CAPS)
    assert (r.params.n, r.size, r.response_format, r.end_user) == (3, "512x512", "b64_json", "u2")


@pytest.mark.parametrize("model", ["gpt-image-1", "dall-e-3"])
def test_variations_are_dall_e_2_only(model: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        resolve_variation(parse_variation_request({"model": model}), Image.new("RGB", (256, 256)), CATALOGUE, CAPS)
    assert (info.value.param, info.value.code) == ("model", "invalid_value")


def test_a_variation_needs_an_img2img_engine() -> None:
    with pytest.raises(InvalidRequestError) as info:
        resolve_variation(parse_variation_request({}), Image.new("RGB", (256, 256)), CATALOGUE,
                          dataclasses.replace(CAPS, img2img=False))  # fmt: skip
    assert info.value.param == "model"


# -- markup -----------------------------------------------------------------------------------------------------


def _markup_req(**fields: object) -> Any:
    return parse_edit_request({"prompt": "x", **fields})


def test_markup_with_a_mask_is_refused_as_openai_does() -> None:
    with pytest.raises(InvalidRequestError) as info:
        check_markup_request(_markup_req(), CATALOGUE.profile("gpt-image-2.5-flare"), mask=True)
    assert (info.value.param, info.value.code) == ("markup", "invalid_value")
    assert not isinstance(info.value, UnsupportedParameterError)


def test_markup_is_for_the_2_5_and_2_6_models() -> None:
    for model in ("gpt-image-2.5-sunburst", "gpt-image-2.5-flare", "gpt-image-2.6-sunburst", "gpt-image-2.6-flare"):
        check_markup_request(_markup_req(), CATALOGUE.profile(model), mask=False)
    with pytest.raises(UnsupportedParameterError) as info:
        check_markup_request(_markup_req(), CATALOGUE.profile("gpt-image-1"), mask=False)
    assert (info.value.param, info.value.code) == ("markup", "unsupported_parameter")
    with pytest.raises(InvalidRequestError) as bad:
        check_markup_request(_markup_req(output_format="gif"), CATALOGUE.profile("gpt-image-2.5-flare"), mask=False)
    assert bad.value.param == "markup"
