"""``POST /v1/images/generations`` through the official openai SDK against a real server on the embedded model:
every field of reference §1.2 and the per-model cells of §1.3 (dall-e-2, dall-e-3, gpt-image-1, gpt-image-2).

Valid requests use ``quality`` low (or DALL·E's standard) where the cell under test is not quality itself, to
keep the suite fast on a 2-core CPU; the images are real and are decoded and measured.
"""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.api.images import decode_b64, min_alpha
from tests.api.server import Server

FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


def bad_request(server: Server, param: str | None, **kwargs: object) -> openai.BadRequestError:
    with pytest.raises(openai.BadRequestError) as info:
        server.client().images.generate(prompt=kwargs.pop("prompt", "a red heart"), **kwargs)  # type: ignore[call-overload]
    err = info.value
    assert err.status_code == 400 and err.param == param, (err.param, err.body)
    assert err.type == "invalid_request_error" and err.body is not None
    assert set(err.body) >= {"message", "type", "param", "code"}  # type: ignore[arg-type]
    assert err.response.headers["x-should-retry"] == "false"
    return err


# --- gpt-image-1 / gpt-image-2 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model,size,expected",
    [
        ("gpt-image-1", "1024x1024", (1024, 1024)),
        ("gpt-image-1", "1536x1024", (1536, 1024)),
        ("gpt-image-1", "1024x1536", (1024, 1536)),
        ("gpt-image-1", "auto", (1024, 1024)),
        ("gpt-image-2", "1280x720", (1280, 720)),
        ("gpt-image-2", "1024x1536", (1024, 1536)),
    ],
)
def test_gpt_sizes_are_exact_and_resolved(server: Server, model: str, size: str, expected: tuple[int, int]) -> None:
    r = server.client().images.generate(model=model, prompt="a yellow star", size=size, quality="low")  # type: ignore[arg-type]
    img, _ = decode_b64(r.data[0].b64_json)  # type: ignore[index]
    assert img.size == expected and img.format == "PNG"
    assert r.size == f"{expected[0]}x{expected[1]}" and r.quality == "low"
    assert r.background == "opaque" and r.output_format == "png"
    assert r.data[0].url is None and r.data[0].revised_prompt is None  # type: ignore[index]


def test_gpt_usage_counts_prompt_tokens_and_image_tokens(server: Server) -> None:
    c = server.client()
    short = c.images.generate(model="gpt-image-1", prompt="a red heart", quality="low", n=2)
    long = c.images.generate(model="gpt-image-1", prompt="a red heart " * 20, quality="low")
    assert short.usage is not None and long.usage is not None
    assert short.usage.input_tokens == short.usage.input_tokens_details.text_tokens == 3
    assert long.usage.input_tokens == 60
    assert short.usage.output_tokens == 2 * 272 and long.usage.output_tokens == 272  # the table, per image
    assert short.usage.total_tokens == 3 + 544
    assert short.usage.output_tokens_details is not None and short.usage.output_tokens_details.image_tokens == 544


@pytest.mark.parametrize("quality,tokens", [("medium", 1568), ("high", 6208)])
def test_gpt_quality_is_resolved_and_billed(server: Server, quality: str, tokens: int) -> None:
    r = server.client().images.generate(model="gpt-image-1", prompt="a moon", quality=quality, size="1536x1024")  # type: ignore[arg-type]
    assert r.quality == quality and r.usage is not None and r.usage.output_tokens == tokens


def test_gpt_quality_auto_resolves_to_high(server: Server) -> None:
    r = server.client().images.generate(model="gpt-image-1-mini", prompt="a moon", quality="auto", size="1024x1024")
    assert r.quality == "high"


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_output_formats_are_real(server: Server, fmt: str) -> None:
    r = server.client().images.generate(model="gpt-image-1", prompt="a red apple", quality="low", output_format=fmt)  # type: ignore[arg-type]
    img, _ = decode_b64(r.data[0].b64_json)  # type: ignore[index]
    assert img.format == FORMATS[fmt] and r.output_format == fmt and img.size == (1024, 1024)


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "png"])
def test_output_compression_changes_the_bytes(server: Server, fmt: str) -> None:
    c = server.client()
    sizes = []
    for compression in (10, 95):
        r = c.images.generate(
            model="gpt-image-1",
            prompt="a rainbow",
            quality="low",
            output_format=fmt,
            output_compression=compression,  # type: ignore[arg-type]
        )
        img, data = decode_b64(r.data[0].b64_json)  # type: ignore[index]
        assert img.format == FORMATS[fmt]
        sizes.append(len(data))
    assert sizes[0] != sizes[1]
    if fmt != "png":  # lossy: more compression, fewer bytes (png: the zlib level; both directions are possible)
        assert sizes[0] < sizes[1]


def test_transparent_background_has_real_alpha(server: Server) -> None:
    for fmt in ("png", "webp"):
        r = server.client().images.generate(
            model="gpt-image-1",
            prompt="a red heart",
            quality="low",
            background="transparent",
            output_format=fmt,  # type: ignore[arg-type]
        )
        img, _ = decode_b64(r.data[0].b64_json)  # type: ignore[index]
        assert img.mode == "RGBA" and r.background == "transparent"
        alpha = img.getchannel("A")
        assert alpha.getextrema()[0] == 0, "the background is transparent"
        assert alpha.getextrema()[1] == 255, "the subject is opaque"


def test_opaque_background_is_fully_opaque(server: Server) -> None:
    r = server.client().images.generate(model="gpt-image-1", prompt="a red heart", quality="low", background="opaque")
    img, _ = decode_b64(r.data[0].b64_json)  # type: ignore[index]
    assert min_alpha(img) == 255 and r.background == "opaque"


def test_transparent_with_jpeg_is_refused(server: Server) -> None:
    bad_request(server, "background", model="gpt-image-1", background="transparent", output_format="jpeg")


def test_n_images_are_distinct(server: Server) -> None:
    r = server.client().images.generate(
        model="gpt-image-1", prompt="a blue heart", quality="low", n=3, size="1024x1024"
    )
    blobs = [decode_b64(d.b64_json)[1] for d in r.data]
    assert len(blobs) == 3 and len(set(blobs)) == 3


def test_moderation_values(server: Server) -> None:
    for value in ("low", "auto"):
        r = server.client().images.generate(model="gpt-image-1", prompt="a cat", quality="low", moderation=value)  # type: ignore[arg-type]
        assert len(r.data) == 1  # type: ignore[arg-type]
    bad_request(server, "moderation", model="gpt-image-1", moderation="high")


def test_safety_identifier_and_user(server: Server) -> None:
    c = server.client()
    r = c.images.generate(model="gpt-image-1", prompt="a cat", quality="low", user="u-1", safety_identifier="s-9")
    assert getattr(r, "safety_identifier", None) == "s-9"
    assert "end_user=s-9" in server.log(), "safety_identifier takes precedence over user in the request log"
    c.images.generate(model="gpt-image-1", prompt="a cat", quality="low", user="only-user")
    assert "end_user=only-user" in server.log()


@pytest.mark.parametrize(
    "param,kwargs",
    [
        ("size", {"model": "gpt-image-1", "size": "512x512"}),
        ("size", {"model": "gpt-image-1", "size": "1792x1024"}),
        ("size", {"model": "gpt-image-2", "size": "1000x1000"}),  # not multiples of 16
        ("size", {"model": "gpt-image-2", "size": "3840x1024"}),  # ratio above 3:1
        ("size", {"model": "gpt-image-2", "size": "512x512"}),  # below the pixel floor
        ("quality", {"model": "gpt-image-1", "quality": "hd"}),
        ("quality", {"model": "gpt-image-1", "quality": "standard"}),
        ("n", {"model": "gpt-image-1", "n": 11}),
        ("n", {"model": "gpt-image-1", "n": 0}),
        ("output_format", {"model": "gpt-image-1", "output_format": "bmp"}),
        ("output_compression", {"model": "gpt-image-1", "output_compression": 101}),
        ("output_compression", {"model": "gpt-image-1", "output_compression": -1}),
        ("background", {"model": "gpt-image-1", "background": "green"}),
        ("style", {"model": "gpt-image-1", "style": "vivid"}),
        ("response_format", {"model": "gpt-image-1", "response_format": "url"}),
        ("response_format", {"model": "gpt-image-2", "response_format": "b64_json"}),
        ("partial_images", {"model": "gpt-image-1", "partial_images": 4}),
        ("n", {"model": "gpt-image-1", "stream": True, "n": 2}),
        ("prompt", {"model": "gpt-image-1", "prompt": "x" * 32001}),
        ("prompt", {"model": "gpt-image-1", "prompt": ""}),
    ],
)
def test_gpt_invalid_requests_name_the_parameter(server: Server, param: str, kwargs: dict[str, object]) -> None:
    err = bad_request(server, param, **kwargs)
    if param == "response_format":
        assert err.code == "unknown_parameter"


# --- dall-e-2 / dall-e-3 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", ["256x256", "512x512", "1024x1024"])
def test_dalle2_sizes_and_b64(server: Server, size: str) -> None:
    r = server.client().images.generate(model="dall-e-2", prompt="a green tree", size=size, response_format="b64_json")  # type: ignore[arg-type]
    img, _ = decode_b64(r.data[0].b64_json)  # type: ignore[index]
    assert img.size == tuple(int(v) for v in size.split("x")) and img.format == "PNG" and min_alpha(img) == 255
    assert r.usage is None and r.size is None and r.data[0].revised_prompt is None  # type: ignore[index]


def test_dalle2_defaults_to_urls(server: Server) -> None:
    r = server.client().images.generate(model="dall-e-2", prompt="a green tree", size="256x256", n=2)
    assert r.data is not None and len(r.data) == 2
    for d in r.data:
        assert d.url is not None and d.b64_json is None
        got = httpx.get(d.url)
        assert got.status_code == 200 and got.headers["content-type"] == "image/png"


@pytest.mark.parametrize(
    "param,kwargs",
    [
        ("size", {"size": "1536x1024"}),
        ("size", {"size": "auto"}),
        ("n", {"n": 11}),
        ("prompt", {"prompt": "x" * 1001}),
        ("quality", {"quality": "hd"}),
        ("quality", {"quality": "low"}),
        ("style", {"style": "vivid"}),
        ("output_format", {"output_format": "png"}),
        ("output_compression", {"output_compression": 50}),
        ("background", {"background": "transparent"}),
        ("moderation", {"moderation": "low"}),
        ("response_format", {"response_format": "jpeg"}),
        ("stream", {"stream": True}),
    ],
)
def test_dalle2_invalid_requests(server: Server, param: str, kwargs: dict[str, object]) -> None:
    bad_request(server, param, model="dall-e-2", **kwargs)


@pytest.mark.parametrize("size", ["1024x1024", "1792x1024", "1024x1792"])
def test_dalle3_sizes_and_revised_prompt(server: Server, size: str) -> None:
    r = server.client().images.generate(model="dall-e-3", prompt="a red heart", size=size, response_format="b64_json")  # type: ignore[arg-type]
    img, _ = decode_b64(r.data[0].b64_json)  # type: ignore[index]
    assert img.size == tuple(int(v) for v in size.split("x"))
    revised = r.data[0].revised_prompt  # type: ignore[index]
    assert revised is not None and revised.startswith("a red heart") and revised != "a red heart"
    assert r.usage is None


def test_dalle3_style_changes_the_prompt_the_engine_used(server: Server) -> None:
    c = server.client()
    kw: dict[str, object] = {"model": "dall-e-3", "prompt": "a red heart", "response_format": "b64_json"}
    vivid = c.images.generate(style="vivid", **kw)  # type: ignore[call-overload]
    natural = c.images.generate(style="natural", **kw)  # type: ignore[call-overload]
    default = c.images.generate(**kw)  # type: ignore[call-overload]
    assert vivid.data[0].revised_prompt != natural.data[0].revised_prompt
    assert default.data[0].revised_prompt == vivid.data[0].revised_prompt, "vivid is the default"


def test_dalle3_hd_quality_and_url(server: Server) -> None:
    r = server.client().images.generate(model="dall-e-3", prompt="a star", quality="hd")
    assert r.data is not None and r.data[0].url is not None and r.data[0].revised_prompt
    assert httpx.get(r.data[0].url).status_code == 200


@pytest.mark.parametrize(
    "param,kwargs",
    [
        ("n", {"n": 2}),
        ("size", {"size": "512x512"}),
        ("size", {"size": "1536x1024"}),
        ("quality", {"quality": "low"}),
        ("style", {"style": "cartoon"}),
        ("prompt", {"prompt": "x" * 4001}),
        ("output_format", {"output_format": "webp"}),
        ("background", {"background": "opaque"}),
        ("partial_images", {"partial_images": 1}),
    ],
)
def test_dalle3_invalid_requests(server: Server, param: str, kwargs: dict[str, object]) -> None:
    bad_request(server, param, model="dall-e-3", **kwargs)


# --- the default-model rule (reference §1.4), nulls, newest-SDK fields --------------------------------------------


def test_omitted_model_is_dalle2(server: Server) -> None:
    r = server.client().images.generate(prompt="a cat", size="256x256")
    assert r.data is not None and r.data[0].url is not None and r.usage is None  # dall-e-2's shape
    bad_request(server, "size", size="1792x1024")  # dall-e-2's sizes apply


@pytest.mark.parametrize(
    "trigger",
    [{"output_format": "webp"}, {"background": "opaque"}, {"quality": "low"}, {"size": "1536x1024"},
     {"moderation": "low"}, {"output_compression": 80}],
)  # fmt: skip
def test_gpt_only_parameters_select_the_gpt_default(server: Server, trigger: dict[str, object]) -> None:
    kw: dict[str, object] = {"quality": "low", **trigger}
    r = server.client().images.generate(prompt="a cat", **kw)  # type: ignore[call-overload]
    assert r.usage is not None and r.data[0].b64_json is not None, "answered as gpt-image-1"


def test_null_means_default(server: Server) -> None:
    body = {
        "prompt": "a cat", "model": "gpt-image-1", "quality": "low", "n": None, "size": None, "background": None,
        "output_format": None, "output_compression": None, "moderation": None, "user": None, "stream": None,
        "partial_images": None, "style": None, "response_format": None, "safety_identifier": None,
    }  # fmt: skip
    r = httpx.post(f"{server.v1}/images/generations", json=body, timeout=300)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["size"] == "1024x1024" and out["output_format"] == "png" and len(out["data"]) == 1


@pytest.mark.parametrize(
    "param,kwargs,code",
    [
        ("complexity", {"model": "gpt-image-2", "extra_body": {"complexity": "extreme"}}, "invalid_value"),
        ("complexity", {"model": "dall-e-3", "extra_body": {"complexity": "low"}}, "unsupported_parameter"),
        ("svg", {"model": "gpt-image-2", "extra_body": {"svg": {"model": "x"}}}, "invalid_value"),  # png
        ("frame_count", {"model": "gpt-image-2", "extra_body": {"frame_count": 4}}, "invalid_value"),  # png
        (
            "frame_count",
            {"model": "gpt-image-2", "output_format": "gif", "extra_body": {"frame_count": 17}},
            "invalid_value",
        ),
        ("stream", {"model": "gpt-image-2", "output_format": "gif", "stream": True}, "invalid_value"),
        ("quality", {"model": "gpt-image-2.6-sunburst", "quality": "max"}, "invalid_value"),
        ("size", {"model": "gpt-image-2.5-flare", "size": "1000x1000"}, "invalid_value"),
        ("foo", {"model": "gpt-image-1", "extra_body": {"foo": 1}}, "unknown_parameter"),
        ("n", {"model": "gpt-image-1", "extra_body": {"n": "2"}}, "invalid_type"),
        ("stream", {"model": "gpt-image-1", "extra_body": {"stream": "yes"}}, "invalid_type"),
    ],
)
def test_newer_and_unknown_fields_get_named_400s(
    server: Server, param: str, kwargs: dict[str, object], code: str
) -> None:
    assert bad_request(server, param, **kwargs).code == code


def test_missing_prompt(server: Server) -> None:
    r = httpx.post(f"{server.v1}/images/generations", json={"model": "gpt-image-1"})
    assert r.status_code == 400
    assert r.json()["error"] == {
        "message": "Missing required parameter: 'prompt'.", "type": "invalid_request_error", "param": "prompt",
        "code": "missing_required_parameter",
    }  # fmt: skip


def test_unknown_model_is_404(server: Server) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        server.client().images.generate(model="gpt-9", prompt="a cat")
    assert info.value.code == "model_not_found" and info.value.param == "model"


def test_aliases_follow_their_profile(server: Server) -> None:
    r = server.client().images.generate(model="gpt-image-2-2026-04-21", prompt="a cat", quality="low", size="1024x768")
    assert r.size == "1024x768"


# --- the remaining valid cells, one request each ----------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,size,mode,fmt,count",
    [
        ({"model": "gpt-image-2", "size": "1024x1024", "output_format": "jpeg", "output_compression": 60, "n": 2,
          "quality": "low", "moderation": "low"}, (1024, 1024), "RGB", "JPEG", 2),
        ({"model": "gpt-image-2", "size": "2048x1152", "output_format": "webp", "background": "transparent",
          "quality": "low"}, (2048, 1152), "RGBA", "WEBP", 1),
        ({"model": "gpt-image-2", "size": "auto", "quality": "medium", "user": "u"}, (1024, 1024), "RGB", "PNG", 1),
        ({"model": "gpt-image-1", "size": "1024x1536", "background": "auto", "output_format": "webp",
          "output_compression": 50, "quality": "low", "partial_images": 2, "stream": False},
         (1024, 1536), "RGB", "WEBP", 1),
        ({"model": "dall-e-2", "quality": "standard", "response_format": "b64_json", "user": "u", "n": 2,
          "size": "512x512"}, (512, 512), "RGB", "PNG", 2),
        ({"model": "dall-e-3", "quality": "standard", "style": "natural", "response_format": "b64_json",
          "user": "u"}, (1024, 1024), "RGB", "PNG", 1),
    ],
)  # fmt: skip
def test_valid_cells(
    server: Server, kwargs: dict[str, object], size: tuple[int, int], mode: str, fmt: str, count: int
) -> None:
    r = server.client().images.generate(prompt="a green heart", **kwargs)  # type: ignore[call-overload]
    assert r.data is not None and len(r.data) == count
    for d in r.data:
        img, _ = decode_b64(d.b64_json)
        assert (img.size, img.mode, img.format) == (size, mode, fmt)
        if mode == "RGBA":
            assert min_alpha(img) == 0


@pytest.mark.parametrize("quality", ["xhigh", "max"])
def test_the_2_5_qualities_through_the_sdk(server: Server, quality: str) -> None:
    """More denoising than high (the embedded model: 45 and 60 steps against 30), counted as high in usage."""
    client = server.client()
    r = client.images.generate(model="gpt-image-2.5-sunburst-2026-09-08", prompt="a red apple", quality=quality,
                               size="1024x1024")  # fmt: skip
    high = client.images.generate(model="gpt-image-2.5-sunburst", prompt="a red apple", quality="high",
                                  size="1024x1024")  # fmt: skip
    assert r.quality == quality and r.data[0].b64_json and r.usage is not None and high.usage is not None
    assert r.usage.output_tokens == high.usage.output_tokens > 0
    stream = client.images.generate(model="gpt-image-2.5-flare", prompt="a red apple", quality=quality,
                                    stream=True, partial_images=1)  # fmt: skip
    events = [e.type for e in stream]
    assert events == ["image_generation.partial_image", "image_generation.completed"]
