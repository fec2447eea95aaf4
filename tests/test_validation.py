"""validation.resolve: OpenAI fields + profile + engine capabilities -> GenerationParams, or a named 400."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from imageforge.config import default_catalogue
from imageforge.engines.fake import FakeEngine
from imageforge.errors import InvalidRequestError, ModelNotFoundError, UnknownParameterError
from imageforge.validation import choose_model, resolve

CATALOGUE = default_catalogue()
CAPS = FakeEngine(quality_steps={"low": 3, "medium": 5, "high": 9}).capabilities


def ok(**fields: Any) -> Any:
    return resolve({"prompt": "a cat", **fields}, CATALOGUE, CAPS, seed=1)


def bad(param: str, **fields: Any) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as info:
        resolve({"prompt": "a cat", **fields}, CATALOGUE, CAPS, seed=1)
    assert info.value.param == param, info.value.message
    return info.value


def test_gpt_defaults() -> None:
    r = ok(model="gpt-image-1")
    assert (r.size, r.quality, r.output_format, r.response_format) == ("1024x1024", "high", "png", "b64_json")
    assert r.params.steps == 9 and r.params.n == 1 and r.params.background == "opaque" and r.params.seed == 1


@pytest.mark.parametrize("model", ["gpt-image-2.5-sunburst", "gpt-image-2.5-sunburst-2026-09-08",
                                   "gpt-image-2.5-flare", "gpt-image-2.5-flare-2026-09-08"])  # fmt: skip
def test_the_2_5_models_take_xhigh_and_max_as_more_steps(model: str) -> None:
    # The engine gives low/medium/high only: xhigh and max get 1.5x and 2x high's 9 steps.
    assert [ok(model=model, quality=q).params.steps for q in ("high", "xhigh", "max")] == [9, 14, 18]
    assert ok(model=model, quality="max").quality == "max"
    assert ok(model=model, size="1920x1088").size == "1920x1088", "gpt-image-2's arbitrary sizes"
    assert "multiples of 16" in bad("size", model=model, size="1000x1000").message
    assert bad("size", model=model, size="3840x640").code == "invalid_value"  # 6:1


@pytest.mark.parametrize("model", ["gpt-image-2.6-sunburst", "gpt-image-2.6-flare", "gpt-image-2", "gpt-image-1"])
def test_xhigh_and_max_are_for_the_2_5_models_only(model: str) -> None:
    for q in ("xhigh", "max"):
        err = bad("quality", model=model, quality=q)
        assert err.code == "invalid_value" and "'high'" in err.message
    assert ok(model=model, quality="high").params.steps == 9


def test_an_engine_may_give_its_own_xhigh_and_max_steps() -> None:
    caps = FakeEngine(quality_steps={"low": 1, "medium": 2, "high": 4, "xhigh": 12, "max": 40}).capabilities
    r = resolve({"prompt": "a", "model": "gpt-image-2.5-flare", "quality": "max"}, CATALOGUE, caps, seed=1)
    assert r.params.steps == 40


ANIMATES = dataclasses.replace(CAPS, animation=True)


def gif(**fields: Any) -> Any:
    return resolve({"prompt": "a cat", "model": "gpt-image-2.5-flare", "output_format": "gif", **fields}, CATALOGUE,
                   ANIMATES, seed=1)  # fmt: skip


def gif_bad(param: str, **fields: Any) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as info:
        gif(**fields)
    assert info.value.param == param, info.value.message
    return info.value


def test_a_gif_is_one_animation_of_frame_count_frames() -> None:
    r = gif()
    assert (r.output_format, r.frame_count, r.frame_duration_ms) == ("gif", 9, 200)  # OpenAI's defaults
    assert (r.params.n, r.params.frames, r.params.steps) == (9, 9, 9)
    r = gif(frame_count=2, frame_duration_ms=124, background="transparent")
    assert (r.params.n, r.frame_duration_ms, r.params.background) == (2, 120, "transparent")
    assert gif(frame_count=16, frame_duration_ms=5).frame_duration_ms == 10  # rounded to 10 ms, never 0
    assert gif(frame_duration_ms=10**9).frame_duration_ms == 655_350  # what a gif can store


@pytest.mark.parametrize(
    "param,fields",
    [
        ("frame_count", {"frame_count": 1}),
        ("frame_count", {"frame_count": 17}),
        ("frame_duration_ms", {"frame_duration_ms": 0}),
        ("stream", {"stream": True}),
        ("partial_images", {"partial_images": 2}),
        ("output_compression", {"output_compression": 50}),
        ("n", {"n": 11}),
    ],
)
def test_gif_refusals_name_the_parameter(param: str, fields: dict[str, Any]) -> None:
    assert gif_bad(param, **fields).code == "invalid_value"


def test_n_gifs_are_n_animations_of_frame_count_frames() -> None:
    r = gif(n=3, frame_count=4)
    assert (r.params.n, r.params.frames, r.frame_count) == (12, 4, 4)
    assert [r.params.subject_seed(i) for i in range(12)] == [1] * 4 + [5] * 4 + [9] * 4  # seed + a * frames


def test_gif_needs_an_engine_that_animates_and_the_fields_need_gif() -> None:
    assert bad("output_format", model="gpt-image-1", output_format="gif").code == "unsupported_parameter"
    assert bad("frame_count", model="gpt-image-1", frame_count=4).code == "invalid_value"


def test_an_svg_traces_at_the_detail_its_reasoning_effort_asks_for() -> None:
    r = ok(model="gpt-image-2.5-flare", output_format="svg")
    assert (r.output_format, r.svg_detail, r.params.n) == ("svg", "medium", 1)
    efforts = {"none": "low", "minimal": "low", "low": "low", "medium": "medium", "high": "high", "xhigh": "high",
               "max": "high"}  # fmt: skip
    for effort, detail in efforts.items():
        svg = {"model": "gpt-5", "reasoning": {"effort": effort}}
        assert ok(model="gpt-image-2", output_format="svg", svg=svg).svg_detail == detail
    assert ok(model="gpt-image-2", output_format="svg", background="transparent").params.background == "transparent"


@pytest.mark.parametrize(
    "param,fields",
    [
        ("n", {"n": 2}),
        ("stream", {"stream": True}),
        ("partial_images", {"partial_images": 1}),
        ("output_compression", {"output_compression": 90}),
        ("svg.reasoning.effort", {"svg": {"reasoning": {"effort": "extreme"}}}),
        ("svg.reasoning.effort", {"svg": {"reasoning": {"effort": [None]}}}),  # once a 500 (unhashable)
        ("svg.reasoning", {"svg": {"reasoning": "high"}}),
        ("svg.model", {"svg": {"model": 5}}),
        ("svg.author", {"svg": {"author": "me"}}),
    ],
)
def test_svg_refusals_name_the_parameter(param: str, fields: dict[str, Any]) -> None:
    bad(param, model="gpt-image-2.5-sunburst", output_format="svg", **fields)


def test_quality_maps_through_the_engine_table() -> None:
    assert ok(model="gpt-image-1", quality="low").params.steps == 3
    assert ok(model="dall-e-3", quality="hd").params.steps == 9
    assert ok(model="dall-e-2").quality == "standard" and ok(model="dall-e-2").params.steps == 5


@pytest.mark.parametrize(
    "model,size",
    [("dall-e-2", "256x256"), ("dall-e-3", "1792x1024"), ("gpt-image-1", "1536x1024"), ("gpt-image-2", "2048x1152")],
)
def test_sizes_are_exact(model: str, size: str) -> None:
    r = ok(model=model, size=size)
    assert f"{r.params.width}x{r.params.height}" == size == r.size


@pytest.mark.parametrize(
    "model,size,fragment",
    [
        ("dall-e-2", "1536x1024", "Supported sizes"),
        ("dall-e-3", "512x512", "Supported sizes"),
        ("gpt-image-1", "2048x1152", "Supported sizes"),
        ("gpt-image-2", "1000x1000", "multiples of 16"),
        ("gpt-image-2", "3840x1024", "aspect ratio"),
        ("gpt-image-2", "512x512", "pixel count"),
        ("gpt-image-1", "big", "Supported sizes"),
    ],
)
def test_bad_sizes_name_the_limit(model: str, size: str, fragment: str) -> None:
    assert fragment in bad("size", model=model, size=size).message


def test_n_limits() -> None:
    assert ok(model="gpt-image-1", n=10).params.n == 10
    assert "between 1 and 10" in bad("n", model="gpt-image-1", n=11).message
    assert "only n=1" in bad("n", model="dall-e-3", n=2).message
    bad("n", model="gpt-image-1", n=True)
    bad("n", model="gpt-image-1", n=0)


def test_prompt_limits() -> None:
    assert "maximum for dall-e-2 is 1000" in bad("prompt", model="dall-e-2", prompt="x" * 1001).message
    ok(model="dall-e-3", prompt="x" * 4000)
    bad("prompt", model="gpt-image-1", prompt="   ")
    bad("prompt", model="gpt-image-1", prompt=12)


def test_gpt_only_parameters_on_dalle() -> None:
    bad("background", model="dall-e-2", background="transparent")
    bad("output_format", model="dall-e-3", output_format="webp")
    bad("response_format", model="gpt-image-1", response_format="url")
    assert ok(model="dall-e-2", response_format="b64_json").response_format == "b64_json"
    assert ok(model="dall-e-3").response_format == "url"


def test_transparency_rules() -> None:
    assert ok(model="gpt-image-1", background="transparent").params.background == "transparent"
    assert "jpeg" in bad("background", model="gpt-image-1", background="transparent", output_format="jpeg").message
    assert ok(model="gpt-image-1", background="auto").params.background == "opaque"


def test_compression_range() -> None:
    assert ok(model="gpt-image-1", output_format="webp", output_compression=0).output_compression == 0
    bad("output_compression", model="gpt-image-1", output_compression=101)


def test_null_means_default() -> None:
    r = ok(model="gpt-image-1", n=None, size=None, quality=None, background=None, output_format=None)
    assert r.size == "1024x1024" and r.params.n == 1


def test_unknown_fields_and_models() -> None:
    with pytest.raises(UnknownParameterError) as info:
        ok(model="gpt-image-1", colour="red")
    assert info.value.param == "colour"
    with pytest.raises(ModelNotFoundError):
        ok(model="no-such-model")


def test_default_model_rule() -> None:
    assert choose_model({"prompt": "x"}) == "dall-e-2"
    assert choose_model({"prompt": "x", "background": "opaque"}) == "gpt-image-1"
    assert choose_model({"prompt": "x", "quality": "low"}, default_gpt_model="gpt-image-2") == "gpt-image-2"
    assert choose_model({"prompt": "x", "size": "1536x1024"}) == "gpt-image-1"
    assert choose_model({"prompt": "x", "quality": "standard"}) == "dall-e-2"


def test_the_embedded_profile_accepts_any_size() -> None:
    r = ok(model="imageforge-emoji", size="333x111")
    assert (r.params.width, r.params.height) == (333, 111)
    bad("size", model="imageforge-emoji", size="4000x4000")


def test_style_rewrites_the_prompt_the_engine_gets() -> None:
    vivid, natural = ok(model="dall-e-3"), ok(model="dall-e-3", style="natural")
    assert vivid.style == "vivid" and natural.style == "natural"
    assert vivid.params.prompt.startswith("a cat, ") and vivid.params.prompt != natural.params.prompt
    assert ok(model="gpt-image-1").params.prompt == "a cat", "no rewrite without a style"


def test_end_user_prefers_safety_identifier() -> None:
    assert ok(model="gpt-image-1", user="u", safety_identifier="s").end_user == "s"
    assert ok(model="gpt-image-1", user="u", safety_identifier="").end_user == "u"
    assert ok(model="gpt-image-1").end_user is None


def test_moderation_and_partial_images() -> None:
    assert ok(model="gpt-image-1").moderation == "auto" and ok(model="dall-e-2").moderation is None
    assert ok(model="gpt-image-1", partial_images=3, stream=False).partial_images == 3
    bad("partial_images", model="gpt-image-1", partial_images=-1)
    assert ok(model="gpt-image-1", stream=True).stream and not ok(model="gpt-image-1").stream
    assert bad("n", model="gpt-image-1", stream=True, n=2).code == "invalid_value"
    assert bad("stream", model="dall-e-2", stream=True).code == "unsupported_parameter"


@pytest.mark.parametrize(
    "param,fields,code",
    [
        ("complexity", {"complexity": "high"}, "unsupported_parameter"),  # this engine does not plan
        ("complexity", {"complexity": "extreme"}, "invalid_value"),
        ("complexity", {"complexity": 3}, "invalid_type"),
        ("svg", {"svg": {"model": "x"}}, "invalid_value"),  # only with output_format svg
        ("frame_duration_ms", {"frame_duration_ms": 200}, "invalid_value"),  # only with gif
        ("output_format", {"output_format": "gif"}, "unsupported_parameter"),
        ("quality", {"model": "gpt-image-2.6-sunburst", "quality": "xhigh"}, "invalid_value"),
        ("n", {"n": True}, "invalid_type"),
        ("n", {"n": 1.5}, "invalid_type"),
        ("prompt", {"prompt": None}, "invalid_type"),
        ("quality", {"quality": "max"}, "invalid_value"),
    ],
)
def test_newest_sdk_fields_and_types(param: str, fields: dict[str, Any], code: str) -> None:
    assert bad(param, **{"model": "gpt-image-2", **fields}).code == code


PLANS = dataclasses.replace(CAPS, planning=True)


def test_complexity_sets_how_many_candidates_are_planned() -> None:
    def planned(**fields: Any) -> Any:
        return resolve({"prompt": "a cat", "model": "gpt-image-2.6-flare", **fields}, CATALOGUE, PLANS, seed=1)

    assert [planned(complexity=c).params.plan_candidates for c in ("low", "medium", "high")] == [1, 4, 8]
    assert (planned().complexity, planned().params.plan_candidates) == ("low", 1)  # the configured default
    assert planned(complexity="high").params.batch_key() != planned().params.batch_key()  # costed apart
    assert ok(model="gpt-image-2", complexity="low").params.plan_candidates == 1  # low needs no planning
    err = bad("complexity", model="gpt-image-2", complexity="medium")
    assert "draws without planning" in err.message  # CAPS' engine cannot plan
    assert bad("complexity", model="dall-e-3", complexity="low").code == "unsupported_parameter"


def test_a_model_configured_with_a_default_complexity_plans_when_it_is_omitted() -> None:
    entry = CATALOGUE.models["gpt-image-2"].model_copy(update={"complexity": "medium"})
    catalogue = dataclasses.replace(CATALOGUE, models={**CATALOGUE.models, "gpt-image-2": entry})
    r = resolve({"prompt": "a", "model": "gpt-image-2"}, catalogue, PLANS, seed=1)
    assert (r.complexity, r.params.plan_candidates) == ("medium", 4)
    r = resolve({"prompt": "a", "model": "gpt-image-2", "complexity": "low"}, catalogue, PLANS, seed=1)
    assert r.params.plan_candidates == 1


@pytest.mark.parametrize("field,value", [("quality", "xhigh"), ("quality", "max"), ("complexity", "high"),
                                         ("frame_count", 4), ("svg", {})])  # fmt: skip
def test_the_newest_gpt_only_fields_make_an_omitted_model_a_gpt_model(field: str, value: Any) -> None:
    assert choose_model({"prompt": "a", field: value}) == "gpt-image-1"
    assert choose_model({"prompt": "a", field: value}, "gpt-image-2.5-flare") == "gpt-image-2.5-flare"
