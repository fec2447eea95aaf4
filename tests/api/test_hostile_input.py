"""Hostile values against a real server (issue 15): each class of input that once answered 500, broke another
request, or left a stored response unreadable, reproduced as it was found. Each must now be a named 400 (or a
404 for a URL), with nothing stored, and leave the server answering everyone else."""

from __future__ import annotations

import base64
import io
import json
import sqlite3
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.api.server import Server

LONE = "\ud800"  # a lone UTF-16 surrogate: valid JSON escape, not valid Unicode


def post(server: Server, path: str, body: dict[str, Any] | bytes) -> httpx.Response:
    """POST a body exactly as given (``json.dumps`` escapes surrogates as ``\\ud800``, as a hostile client does)."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"content-type": "application/json", "authorization": "Bearer sk-anything"}
    return httpx.post(f"{server.v1}{path}", content=content, headers=headers, timeout=120)


def assert_400(r: httpx.Response, param: str | None, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == 400, (r.status_code, r.text[:500])
    error = r.json()["error"]
    assert {"message", "type", "param", "code"} <= set(error), error
    assert error["param"] == param, error
    if code is not None:
        assert error["code"] == code, error
    return dict(error)


def stored_responses(server: Server) -> int:
    with sqlite3.connect(server.data_dir / "responses.sqlite3") as db:
        return int(db.execute("SELECT count(*) FROM responses").fetchone()[0])


def healthy(server: Server) -> None:
    assert httpx.get(f"{server.base_url}/metrics", timeout=30).status_code == 200
    r = server.client().images.generate(model="gpt-image-1", prompt="a red heart", quality="low", size="1024x1024")
    assert r.data[0].b64_json


# 1. Integer literals longer than Python's 4,300-digit limit, and past 64 bits.


@pytest.mark.parametrize("where", ["images", "responses"])
def test_huge_integer_literals_are_named_400s(server: Server, where: str) -> None:
    huge = b"1" + b"0" * 5000
    if where == "images":
        r = post(server, "/images/generations", b'{"prompt": "a red heart", "n": ' + huge + b"}")
        assert_400(r, "n", "integer_above_max_value")
    else:
        r = post(server, "/responses", b'{"model": "gpt-5", "input": "x", "max_output_tokens": -' + huge + b"}")
        assert_400(r, "max_output_tokens", "integer_below_min_value")
    r = post(server, "/images/generations", b'{"prompt": "a red heart", "output_compression": 18446744073709551616}')
    assert_400(r, "output_compression", "integer_above_max_value")


# 2. Lone surrogates: in a model id, a previous_response_id, a prompt, a key.


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/images/generations", {"prompt": "a red heart", "model": LONE}, "model"),
        ("/images/generations", {"prompt": f"a red {LONE} heart", "model": "gpt-image-1"}, "prompt"),
        ("/responses", {"model": "gpt-5", "input": "x", "previous_response_id": f"r_{LONE}"}, "previous_response_id"),
        ("/responses", {"model": LONE, "input": "draw a cat"}, "model"),
        ("/responses", {"model": "gpt-5", "input": "x", "metadata": {LONE: "v"}}, "metadata.\\ud800"),
    ],
)
def test_lone_surrogates_are_named_400s(server: Server, path: str, body: dict[str, Any], param: str) -> None:
    assert_400(post(server, path, body), param, "invalid_value")


# 4. One user's id must not break /metrics for everyone; end-user ids are not listed in the clear.


def test_a_hostile_user_id_cannot_break_metrics(server: Server) -> None:
    r = post(server, "/images/generations", {"prompt": "a red heart", "quality": "low", "user": LONE})
    assert_400(r, "user")
    shown = "Zoë 🙂 <zoe@example.com>"
    server.client().images.generate(model="gpt-image-1", prompt="a red heart", quality="low", user=shown)
    page = httpx.get(f"{server.base_url}/metrics", timeout=30)
    assert page.status_code == 200
    assert "zoe@example.com" not in page.text and "imageforge_usage_requests_total" in page.text
    healthy(server)


# 5. NaN, Infinity and 1e400 on /v1/responses: refused before anything is stored, streamed or not.


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
@pytest.mark.parametrize("field", [b"temperature", b"top_p"])
@pytest.mark.parametrize("stream", [b"false", b"true"])
def test_non_finite_numbers_are_refused_before_storing(
    server: Server, literal: bytes, field: bytes, stream: bytes
) -> None:
    before = stored_responses(server)
    body = b'{"model": "gpt-5", "input": "hello", "stream": ' + stream + b", " + b'"' + field + b'": ' + literal + b"}"
    assert_400(post(server, "/responses", body), field.decode(), "invalid_value")
    assert stored_responses(server) == before


# 6. A lone surrogate in a streamed Responses input: refused before the stream (it once left the response
#    `in_progress` for ever); the guarantee for failures after the first byte is tested in tests/serving.


def test_a_lone_surrogate_in_a_streamed_input_is_refused_before_the_stream(server: Server) -> None:
    before = stored_responses(server)
    body = {"model": "gpt-5", "stream": True, "tools": [{"type": "image_generation", "quality": "low"}],
            "input": [{"role": "user", "content": [{"type": "input_text", "text": f"draw a {LONE} cat"}]}]}  # fmt: skip
    assert_400(post(server, "/responses", body), "input[0].content[0].text", "invalid_value")
    assert stored_responses(server) == before


# 7. Wrong JSON types inside nested Responses fields.


@pytest.mark.parametrize(
    ("extra", "param", "code"),
    [
        ({"text": {"format": "x"}}, "text.format", "invalid_type"),
        ({"text": {"format": {"type": 5}}}, "text.format.type", "invalid_type"),
        ({"text": []}, "text", "invalid_type"),
        ({"input": [{"role": "user", "content": "x", "id": 1}]}, "input[0].id", "invalid_type"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "data:,", "detail": 1}]}]},
            "input[0].content[0].detail",
            "invalid_value",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_text", "text": ["x"]}]}]},
            "input[0].content[0].text",
            "invalid_type",
        ),
        ({"input": [{"role": "user", "content": [7]}]}, "input[0].content[0]", "invalid_type"),
        ({"input": [{"type": "image_generation_call", "id": "ig_1", "result": 5}]}, "input[0].result", "invalid_type"),
        ({"metadata": {"k": 5}}, "metadata.k", "invalid_type"),
        ({"metadata": []}, "metadata", "invalid_type"),
        ({"stream_options": {"include_obfuscation": "yes"}}, "stream_options.include_obfuscation", "invalid_type"),
        (
            {"tools": [{"type": "image_generation", "input_image_mask": "x"}]},
            "tools[0].input_image_mask",
            "invalid_type",
        ),
        ({"tools": {"type": "image_generation"}}, "tools", "invalid_type"),
        ({"tool_choice": 3}, "tool_choice", "invalid_type"),
        ({"temperature": 3}, "temperature", "integer_above_max_value"),
        ({"top_p": -0.5}, "top_p", "decimal_below_min_value"),
    ],
)
def test_wrong_nested_types_are_named_400s(server: Server, extra: dict[str, Any], param: str, code: str) -> None:
    before = stored_responses(server)
    assert_400(post(server, "/responses", {"model": "gpt-5", "input": "draw a cat", **extra}), param, code)
    assert stored_responses(server) == before


# 8. A non-ASCII URL signature.


@pytest.mark.parametrize("sig", ["%C3%A9", "%F0%9F%99%82", "%ED%A0%80", "%00", "a" * 10000])
def test_odd_url_signatures_are_plain_404s(server: Server, sig: str) -> None:
    r = httpx.get(f"{server.v1}/images/files/1-0123456789abcdef0123456789abcdef.png?sig={sig}", timeout=30)
    assert r.status_code == 404 and r.json()["error"]["code"] == "image_not_found"


# 9. What a Responses request can be refused for is refused before anything is stored or streamed.


def _png(size: tuple[int, int], alpha: int = 0) -> str:
    buf = io.BytesIO()
    Image.new("RGBA", size, (0, 0, 0, alpha)).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


@pytest.fixture(scope="module")
def first_turn(server: Server) -> str:
    first = server.client().responses.create(
        model="gpt-5", input="Draw a red heart", tools=[{"type": "image_generation", "quality": "low"}]
    )
    return first.id


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("mask", "code"), [(_png((64, 64)), "invalid_value"), ("data:image/png;base64,AAAA", "invalid_image")]
)
def test_a_bad_edit_mask_is_refused_before_storing(
    server: Server, first_turn: str, mask: str, code: str, stream: bool
) -> None:
    before = stored_responses(server)
    tool = {"type": "image_generation", "quality": "low", "input_image_mask": {"image_url": mask}}
    body = {"model": "gpt-5", "input": "now make it blue", "previous_response_id": first_turn, "tools": [tool],
            "stream": stream}  # fmt: skip
    assert_400(post(server, "/responses", body), "tools[0].input_image_mask.image_url", code)
    assert stored_responses(server) == before


@pytest.mark.parametrize(
    ("text", "code"),
    [("draw " + "a red heart " * 9000, "string_above_max_length"), ("x" * 1_100_000, "string_above_max_length")],
)
def test_an_input_too_long_for_the_image_prompt_is_refused_before_storing(server: Server, text: str, code: str) -> None:
    before = stored_responses(server)
    body = {"model": "gpt-5", "input": text, "tools": [{"type": "image_generation", "quality": "low"}]}
    assert_400(post(server, "/responses", body), "input", code)
    assert stored_responses(server) == before


# 10. The contract is served, so users' tooling and a schema fuzzer can read it.


def test_openapi_and_docs_are_served(server: Server) -> None:
    spec = httpx.get(f"{server.base_url}/openapi.json", timeout=30).json()
    ops = {(path, method) for path, item in spec["paths"].items() for method in item}
    assert {("/v1/images/generations", "post"), ("/v1/responses", "post"), ("/v1/models", "get")} <= ops
    body = spec["paths"]["/v1/images/generations"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("/ImageGenerateRequest")
    request = spec["components"]["schemas"]["ImageGenerateRequest"]
    assert request["required"] == ["prompt"] and request["additionalProperties"] is False
    assert "ErrorResponse" in spec["components"]["schemas"]
    docs = httpx.get(f"{server.base_url}/docs", timeout=30)
    assert docs.status_code == 200 and "/openapi.json" in docs.text
    healthy(server)
