"""Models endpoints, malformed bodies, unknown URLs and the headers every response carries."""

from __future__ import annotations

import httpx
import openai
import pytest

from imageforge.config import OPENAI_ALIASES, OPENAI_NAMES
from tests.api.server import Server


def test_models_list_and_get(server: Server) -> None:
    c = server.client()
    ids = {m.id for m in c.models.list()}
    assert ids == {"imageforge-emoji", *OPENAI_NAMES, *OPENAI_ALIASES}
    m = c.models.retrieve("gpt-image-1")
    assert m.id == "gpt-image-1" and m.object == "model" and m.owned_by == "imageforge" and m.created > 0


def test_unknown_model_404(server: Server) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        server.client().models.retrieve("gpt-9")
    assert info.value.code == "model_not_found"
    assert info.value.response.headers["x-should-retry"] == "false"


@pytest.mark.parametrize(
    "content,fragment",
    [
        (b"{not json", "could not parse the JSON body"),
        (b"", "could not parse the JSON body"),
        (b"\xff\xfe", "could not parse the JSON body"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"prompt"', "must be a JSON object"),
        (b"[" * 200_000 + b"]" * 200_000, "could not parse the JSON body"),
        (b'{"prompt": "a", "n": 1e400}', "Invalid 'n': 1e400 is out of range"),
    ],
)
def test_malformed_bodies_are_400_envelopes(server: Server, content: bytes, fragment: str) -> None:
    r = httpx.post(f"{server.v1}/images/generations", content=content, headers={"content-type": "application/json"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert fragment in err["message"] and err["type"] == "invalid_request_error" and set(err) == {
        "message", "type", "param", "code",
    }  # fmt: skip
    assert r.headers["x-request-id"].startswith("req_") and r.headers["x-should-retry"] == "false"


def test_oversized_body_is_413(server: Server) -> None:
    r = httpx.post(f"{server.v1}/images/generations", json={"prompt": "x" * (2 << 20)})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"


def test_unknown_url_and_method(server: Server) -> None:
    r = httpx.get(f"{server.v1}/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["message"] == "Invalid URL (GET /v1/nothing-here)"
    r = httpx.get(f"{server.v1}/images/generations")
    assert r.status_code == 405 and r.json()["error"]["type"] == "invalid_request_error"


def test_request_ids_are_unique_and_reach_the_sdk(server: Server) -> None:
    c = server.client()
    raw = c.models.with_raw_response.list()
    first = raw.headers["x-request-id"]
    assert first.startswith("req_") and first != c.models.with_raw_response.list().headers["x-request-id"]
