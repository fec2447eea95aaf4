"""The in-suite fuzzer (issue 15): hostile values at every field of every endpoint of a real server, and
schemathesis against the server's own /openapi.json. Bounded and seeded, so CI is deterministic.

Asserted for every answer: never a 5xx, an error is always OpenAI's envelope, a success is what the schema says;
and meanwhile ordinary requests to the same engine (batched with whatever the fuzzer got through) keep being
served, and the server answers /health and /metrics afterwards.
"""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from imageforge.protocol.edits import ImageEditRequest
from imageforge.protocol.images import ImageGenerateRequest
from imageforge.protocol.responses import ResponseCreateRequest
from tests.api.server import Server, serve

MODELS = {
    "gpt-image-1": "gpt-image-1", "gpt-image-1-mini": "gpt-image-1-mini", "gpt-image-1.5": "gpt-image-1.5",
    "gpt-image-2": "gpt-image-2", "dall-e-2": "dall-e-2", "dall-e-3": "dall-e-3", "imageforge-emoji": "imageforge",
}  # fmt: skip
CATALOGUE = "include_defaults = false\n" + "".join(
    f'[models."{model}"]\nengine = "fake"\nprofile = "{profile}"\n' for model, profile in MODELS.items()
)
# A model whose engine animates and plans, so gif requests reach their own rules (frame_count, frame_duration_ms)
# and complexity medium/high is served rather than refused.
CATALOGUE += '[models."gpt-image-2.5-flare"]\nengine = "fake"\nprofile = "gpt-image-2.5-flare"\n'
CATALOGUE += "options = { animation = true, planning = true }\n"

# JSON fragments, inserted as they are (not re-encoded): the classes that once answered 5xx, and their kin.
HOSTILE = [
    "1" + "0" * 5000, "-" + "9" * 40, "9223372036854775808", "-9223372036854775809", "NaN", "Infinity",
    "-Infinity", "1e400", "-1e400", "1e-400", "1.7976931348623157e308", "-0.0", '"\\ud800"', '"a\\udfffb"',
    '"\\ud83d"', '"\\u0000"', '"\\u0001\\u001f\\u007f"', '"\\u202e\\ufeff"', '"Zo\\u00eb \\ud83d\\ude42"', '""', '" "',
    '"' + "x" * 40_000 + '"', "null", "true", "false", "0", "-1", "1.5", "[]", "{}", "[null]", '{"a": {"b": []}}',
    "[" * 40 + "]" * 40, '{"a": ' * 40 + "1" + "}" * 40, '"auto"', '"1024x1024"', '"0x0"', '"99999x99999"',
    '"data:image/png;base64,AAAA"', '"data:,"', '"https://example.invalid/a.png"', '"../../etc/passwd"',
]  # fmt: skip


def _png(alpha: int) -> str:
    buf = io.BytesIO()
    Image.new("RGBA", (32, 32), (200, 30, 30, alpha)).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


# Where hostile values go: (endpoint, a valid body, the JSON path of the field replaced).
IMAGE_BODY: dict[str, Any] = {"prompt": "a red heart", "model": "gpt-image-1", "quality": "low", "size": "1024x1024"}
RESPONSE_BODY: dict[str, Any] = {
    "model": "gpt-5",
    "input": [{"role": "user", "content": [{"type": "input_text", "text": "make it blue"},
                                          {"type": "input_image", "image_url": _png(255)}]}],
    "tools": [{"type": "image_generation", "quality": "low", "input_image_mask": {"image_url": _png(0)}}],
    "text": {"format": {"type": "text"}},
    "metadata": {"k": "v"},
    "reasoning": {"effort": "low"},
    "stream_options": {"include_obfuscation": False},
    "tool_choice": {"type": "image_generation"},
}  # fmt: skip
GIF_BODY: dict[str, Any] = {**IMAGE_BODY, "model": "gpt-image-2.5-flare", "output_format": "gif", "frame_count": 2,
                            "frame_duration_ms": 100}  # fmt: skip
SVG_BODY: dict[str, Any] = {**IMAGE_BODY, "model": "gpt-image-2.5-flare", "output_format": "svg",
                            "svg": {"model": "gpt-5", "reasoning": {"effort": "low"}}}  # fmt: skip
EDIT_BODY: dict[str, Any] = {  # the JSON form of an edit
    "prompt": "make it blue", "model": "gpt-image-1", "quality": "low", "images": [{"image_url": _png(255)}],
    "mask": {"image_url": _png(0)},
}  # fmt: skip
FIELDS: list[tuple[str, dict[str, Any], tuple[str | int, ...]]] = [
    *(("/images/generations", IMAGE_BODY, (name,)) for name in ImageGenerateRequest.model_fields),
    *(("/images/edits", EDIT_BODY, (name,)) for name in ImageEditRequest.model_fields),
    *(("/images/edits", EDIT_BODY, path) for path in [
        ("images", 0), ("images", 0, "image_url"), ("images", 0, "file_id"), ("mask", "image_url"),
    ]),
    *(("/images/generations", GIF_BODY, (name,)) for name in ("frame_count", "frame_duration_ms", "n", "stream")),
    *(("/images/generations", SVG_BODY, path) for path in [
        ("svg",), ("svg", "model"), ("svg", "reasoning"), ("svg", "reasoning", "effort"), ("n",),
    ]),
    *(("/responses", RESPONSE_BODY, (name,)) for name in ResponseCreateRequest.model_fields),
    *(("/responses", RESPONSE_BODY, path) for path in [
        ("input", 0), ("input", 0, "role"), ("input", 0, "content"), ("input", 0, "id"), ("input", 0, "type"),
        ("input", 0, "content", 0), ("input", 0, "content", 0, "text"), ("input", 0, "content", 0, "type"),
        ("input", 0, "content", 1, "image_url"), ("input", 0, "content", 1, "detail"),
        ("input", 0, "content", 1, "file_id"), ("tools", 0), ("tools", 0, "type"), ("tools", 0, "size"),
        ("tools", 0, "quality"), ("tools", 0, "model"), ("tools", 0, "partial_images"), ("tools", 0, "action"),
        ("tools", 0, "output_compression"), ("tools", 0, "input_fidelity"), ("tools", 0, "input_image_mask"),
        ("tools", 0, "input_image_mask", "image_url"), ("tools", 0, "frame_count"),
        ("tools", 0, "frame_duration_ms"), ("tools", 0, "svg"), ("tools", 0, "complexity"),
        ("tools", 0, "output_format"), ("text", "format"), ("text", "format", "type"),
        ("metadata", "k"), ("reasoning", "effort"), ("stream_options", "include_obfuscation"),
        ("tool_choice", "type"),
    ]),
]  # fmt: skip
_MARK = "\u0000HOSTILE\u0000"


def hostile_body(base: dict[str, Any], path: tuple[str | int, ...], fragment: str) -> bytes:
    """``base`` with the value at ``path`` replaced by the raw JSON ``fragment``."""
    body = json.loads(json.dumps(base))
    node = body
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = _MARK
    return json.dumps(body).replace(json.dumps(_MARK), fragment).encode()


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("fuzz")
    (tmp / "models.toml").write_text(CATALOGUE)
    with serve(tmp / "data", "--config", str(tmp / "models.toml")) as s:
        yield s


class Bystander:
    """Ordinary requests sent while the fuzzer runs; every one must be served."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.answers: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=120) as client:
            while not self._stop.is_set():
                r = client.post(f"{self.server.v1}/images/generations", json=IMAGE_BODY)
                self.answers.append(r.status_code)

    def __enter__(self) -> Bystander:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(120)


# The codes of the server's own failures (5xx), however they travel: a status, an in-band stream error, or a
# Responses object or image call that failed.
SERVER_FAULTS = {"server_error", "out_of_memory", "timeout", "server_shutting_down", "engine_unavailable",
                 "planner_error"}  # fmt: skip


def _faults(doc: Any) -> list[str]:
    """Server-fault codes anywhere in a decoded answer or event (error objects and failed items)."""
    found: list[str] = []
    if isinstance(doc, dict):
        error = doc.get("error")
        if isinstance(error, dict) and (error.get("code") in SERVER_FAULTS or error.get("type") == "server_error"):
            found.append(str(error.get("code") or error.get("type")))
        if doc.get("type") == "error" and doc.get("code") in SERVER_FAULTS:  # a Responses stream's error event
            found.append(str(doc["code"]))
        for value in doc.values():
            found += _faults(value)
    elif isinstance(doc, list):
        for value in doc:
            found += _faults(value)
    return found


def check_answer(r: httpx.Response, what: str) -> None:
    assert r.status_code < 500, f"{what}: {r.status_code} {r.text[:300]}"
    if r.status_code >= 400:
        error = r.json()["error"]
        assert {"message", "type", "param", "code"} <= set(error), f"{what}: {error}"
        assert isinstance(error["message"], str) and error["message"], what
    elif r.headers["content-type"].startswith("text/event-stream"):
        frames = [f for f in r.text.split("\n\n") if f and not f.startswith(":")]
        assert frames, what
        for f in frames:
            event, data = f.split("\n", 1)
            payload = json.loads(data.removeprefix("data: "))
            assert payload["type"] == event.removeprefix("event: "), what
            assert not _faults(payload), f"{what}: a server fault inside the stream: {f[:300]}"
    else:
        body = r.json()
        assert isinstance(body, dict), what
        assert not _faults(body), f"{what}: a server fault inside the answer: {r.text[:300]}"


def healthy(server: Server) -> None:
    assert httpx.get(f"{server.base_url}/health", timeout=30).json()["status"] == "ok"
    assert httpx.get(f"{server.base_url}/metrics", timeout=30).status_code == 200
    r = httpx.post(f"{server.v1}/images/generations", json=IMAGE_BODY, timeout=120)
    assert r.status_code == 200 and r.json()["data"][0]["b64_json"]


def test_every_hostile_value_in_every_field_is_a_4xx_or_served(fuzzed: Server) -> None:
    """The grid: each class of hostile value in each field, streamed and not, four requests at a time."""
    cases = [
        (endpoint, hostile_body({**base, "stream": stream}, path, fragment),
         f"{endpoint} {'.'.join(map(str, path))}={fragment[:40]} stream={stream}")
        for endpoint, base, path in FIELDS for fragment in HOSTILE for stream in (False, True)
        if not (stream and path == ("stream",))
    ]  # fmt: skip
    client = httpx.Client(timeout=120, limits=httpx.Limits(max_connections=4))

    def send(case: tuple[str, bytes, str]) -> None:
        endpoint, body, what = case
        r = client.post(f"{fuzzed.v1}{endpoint}", content=body, headers={"content-type": "application/json"})
        check_answer(r, what)

    with Bystander(fuzzed) as bystander, client, ThreadPoolExecutor(4) as pool:
        list(pool.map(send, cases))
    assert len(cases) > 8000
    assert bystander.answers and set(bystander.answers) == {200}, set(bystander.answers)
    healthy(fuzzed)


# Multipart: hostile text in every field of an edit (raw bytes, as a client can send them), and hostile files.
HOSTILE_FORM = [
    b"1" + b"0" * 5000, b"9223372036854775808", b"-9223372036854775809", b"NaN", b"Infinity", b"-1", b"1.5", b" ",
    b"x" * 40_000, b"\x00", b"true", b"null", b"[]", b"{}", b"\xff\xfe", b"\xed\xa0\x80", b"\xf0\x9f\x99\x82",
    b"auto", b"0x0", b"99999x99999", b"data:,",
]  # fmt: skip


def _file(kind: str) -> bytes:
    buf = io.BytesIO()
    if kind == "animated":
        frames = [Image.new("RGBA", (16, 16), (i * 60, 0, 0, 255)) for i in range(3)]
        frames[0].save(buf, "PNG", save_all=True, append_images=frames[1:])
        return buf.getvalue()
    Image.new("RGBA", (32, 32), (200, 30, 30, 255)).save(buf, "PNG")
    png = buf.getvalue()
    return {"truncated": png[: len(png) // 2], "empty": b"", "text": b"hello, not an image", "html": b"<html></html>",
            "header only": png[:33], "png": png}[kind]  # fmt: skip


FORM_FIELDS = [n for n in ImageEditRequest.model_fields if n not in ("images", "mask")]


def test_hostile_multipart_fields_and_files(fuzzed: Server) -> None:
    """Every hostile text value in every form field of an edit, and hostile files in each file part."""
    good = _file("png")
    cases: list[tuple[list[tuple[str, Any]], str]] = []
    for name in [*FORM_FIELDS, "svg[model]", "image", "mask", "markup"]:
        for value in HOSTILE_FORM:
            parts = [("image", ("a.png", good, "image/png")), ("prompt", (None, b"a heart")),
                     ("model", (None, b"gpt-image-1")), ("quality", (None, b"low"))]  # fmt: skip
            parts = [p for p in parts if p[0] != name] + [(name, (None, value))]
            cases.append((parts, f"form {name}={value[:30]!r}"))
    for part in ("image", "image[]", "image[3]", "mask", "markup"):
        for kind in ("truncated", "empty", "text", "html", "header only", "animated"):
            parts = [("image", ("a.png", good, "image/png")), ("prompt", (None, b"a heart")),
                     ("model", (None, b"gpt-image-1"))]  # fmt: skip
            cases.append(([*parts, (part, ("x.png", _file(kind), "image/png"))], f"file {part}={kind}"))
    client = httpx.Client(timeout=120, limits=httpx.Limits(max_connections=4))

    def send(case: tuple[list[tuple[str, Any]], str]) -> None:
        parts, what = case
        for endpoint in ("/images/edits", "/images/variations"):
            check_answer(client.post(f"{fuzzed.v1}{endpoint}", files=parts), f"{endpoint} {what}")

    with Bystander(fuzzed) as bystander, client, ThreadPoolExecutor(4) as pool:
        list(pool.map(send, cases))
    assert bystander.answers and set(bystander.answers) == {200}, set(bystander.answers)
    healthy(fuzzed)


HOSTILE_TEXT = ["\ud800", "a\udfffb", "\u0000", "%", "%ED%A0%80", "..", "../../etc/passwd", "x" * 10_000, "é", "🙂"]


@pytest.mark.parametrize("value", HOSTILE_TEXT)
def test_hostile_paths_and_query_values(fuzzed: Server, value: str) -> None:
    quoted = quote(value.encode("utf-8", "surrogatepass"), safe="")
    v1 = fuzzed.v1
    urls = [
        f"{v1}/models/{quoted}", f"{v1}/responses/{quoted}", f"{v1}/responses/{quoted}/input_items",
        f"{v1}/responses/resp_x/input_items?order={quoted}", f"{v1}/images/files/{quoted}?sig={quoted}",
    ]  # fmt: skip
    for url in urls:
        check_answer(httpx.get(url, timeout=30), url[:120])
    check_answer(httpx.delete(f"{fuzzed.v1}/responses/{quoted}", timeout=30), "DELETE")


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(st.characters(codec="utf-8"), max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)  # fmt: skip


@settings(
    max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(where=st.sampled_from(FIELDS), value=_json_values, stream=st.booleans())
def test_any_json_value_in_any_field(fuzzed: Server, where: Any, value: Any, stream: bool) -> None:
    """Random JSON (huge integers, NaN and infinities included, as Python's json writes them) anywhere."""
    endpoint, base, path = where
    body = {**base, "stream": stream}
    fragment = json.dumps(value)  # NaN -> NaN, inf -> Infinity: both must be refused by name
    r = httpx.post(f"{fuzzed.v1}{endpoint}", content=hostile_body(body, path, fragment), timeout=120,
                   headers={"content-type": "application/json"})  # fmt: skip
    check_answer(r, f"{endpoint} {path}={fragment[:60]}")


def test_schemathesis_against_the_served_schema(fuzzed: Server, tmp_path: Any) -> None:
    """Every operation of /openapi.json, positive and negative data, with schemathesis' own checks: no 5xx, and
    every answer (each event of a stream included) conforms to the documented schema."""
    cmd = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{fuzzed.base_url}/openapi.json",
        "--checks", "not_a_server_error,response_schema_conformance", "--max-examples", "25",
        "--generation-deterministic", "--workers", "1", "--no-color", "--request-timeout", "120",
        "--report", "junit", "--report-junit-path", str(tmp_path / "junit.xml"),
    ]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, cwd=tmp_path)
    summary = run.stdout[-4000:]
    assert run.returncode == 0, summary
    m = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    assert m is not None and int(m.group(1)) == int(m.group(2)) >= 500, summary
    for operation in ("POST /v1/images/generations", "POST /v1/responses", "GET /v1/models"):
        assert operation in (tmp_path / "junit.xml").read_text(), operation
    healthy(fuzzed)
