"""Reading the multipart form of edits and variations: file parts in order with their params, text fields as the
SDKs send them, every refusal a named 400 (or a 413 that stops reading early), never a 422 or a 500."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from imageforge.api.uploads import is_image_field, read_image_form
from imageforge.errors import ImageForgeError

CAP = 50 << 20
BOUNDARY = "test-boundary-1234"
PNG = b"\x89PNG\r\n\x1a\n" + b"not really decoded here"


def _app(max_body_bytes: int = CAP, max_images: int = 16) -> FastAPI:
    app = FastAPI()

    @app.exception_handler(ImageForgeError)
    async def _error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ImageForgeError)
        body = {"status": exc.status, "param": exc.param, "code": exc.code, "message": exc.message}
        return JSONResponse(body, status_code=exc.status)

    @app.post("/form")
    async def form(request: Request) -> dict[str, Any]:
        got = await read_image_form(request, max_body_bytes=max_body_bytes, max_images=max_images)
        return {
            "images": [[f.param, hashlib.sha256(f.data).hexdigest()[:8], len(f.data)] for f in got.images],
            "mask": None if got.mask is None else [got.mask.param, len(got.mask.data)],
            "markup": None if got.markup is None else [got.markup.param, len(got.markup.data)],
            "fields": got.fields,
        }

    return app


Part = tuple[str, bytes | str, str | None]  # name, value, file name (None: a text part)


def _body(parts: list[Part], *, close: bool = True) -> bytes:
    out = b""
    for name, value, filename in parts:
        data = value.encode() if isinstance(value, str) else value
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename is not None:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + data + b"\r\n"
    return out + (f"--{BOUNDARY}--\r\n".encode() if close else b"")


def _post(
    content: bytes | AsyncIterator[bytes],
    *,
    headers: dict[str, str] | None = None,
    app: FastAPI | None = None,
) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app or _app())
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            h = {"content-type": f"multipart/form-data; boundary={BOUNDARY}", **(headers or {})}
            return await client.post("/form", content=content, headers=h)

    return asyncio.run(go())


def _form(parts: list[Part], **kw: Any) -> httpx.Response:
    return _post(_body(parts), **kw)


def _error(resp: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body: dict[str, Any] = resp.json()
    return body


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:8]


# -- files ------------------------------------------------------------------------------------------------------


def test_single_image_and_fields() -> None:
    resp = _form([("image", PNG, "a.png"), ("prompt", "a red fox", None), ("n", "2", None)])
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "images": [["image", _digest(PNG), len(PNG)]],
        "mask": None,
        "markup": None,
        "fields": {"prompt": "a red fox", "n": "2"},
    }


def test_bracket_array_keeps_order_and_indexes_params() -> None:
    files = [PNG + bytes([i]) for i in range(3)]
    resp = _form([("image[]", f, f"{i}.png") for i, f in enumerate(files)])
    assert resp.status_code == 200, resp.text
    assert resp.json()["images"] == [[f"image[{i}]", _digest(f), len(f)] for i, f in enumerate(files)]


def test_repeated_image_and_indexed_names() -> None:
    a, b = PNG + b"a", PNG + b"bb"
    for names in (("image", "image"), ("image[0]", "image[1]"), ("image", "image[]")):
        resp = _form([(names[0], a, "a.png"), ("prompt", "x", None), (names[1], b, "b.png")])
        assert resp.status_code == 200, resp.text
        assert resp.json()["images"] == [["image[0]", _digest(a), len(a)], ["image[1]", _digest(b), len(b)]]


def test_one_image_in_bracket_form_is_indexed() -> None:
    resp = _form([("image[]", PNG, "a.png")])
    assert resp.json()["images"] == [["image[0]", _digest(PNG), len(PNG)]]


def test_mask_and_markup() -> None:
    resp = _form([("image", PNG, "a.png"), ("mask", b"m" * 3, "m.png"), ("markup", b"k" * 5, "k.png")])
    assert resp.status_code == 200, resp.text
    assert resp.json()["mask"] == ["mask", 3] and resp.json()["markup"] == ["markup", 5]


def test_the_sdk_encoding_via_httpx_files() -> None:
    """What openai-python sends: httpx's own multipart encoder, raw bytes named 'upload', None as ''."""

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app()), base_url="http://test") as client:
            return await client.post(
                "/form",
                data={"prompt": "p", "stream": "true", "user": "", "svg[model]": "m", "svg[reasoning][effort]": "low"},
                files=[("image[]", ("upload", PNG)), ("image[]", ("upload", PNG + b"2"))],
            )

    resp = asyncio.run(go())
    assert resp.status_code == 200, resp.text
    assert [p for p, _, _ in resp.json()["images"]] == ["image[0]", "image[1]"]
    assert resp.json()["fields"] == {
        "prompt": "p",
        "stream": "true",
        "svg[model]": "m",
        "svg[reasoning][effort]": "low",
    }


def test_seventeen_images_are_refused() -> None:
    resp = _form([("image[]", PNG, f"{i}.png") for i in range(17)])
    err = _error(resp)
    assert (err["param"], err["code"]) == ("image", "invalid_value") and "16" in err["message"]
    assert _form([("image[]", PNG, f"{i}.png") for i in range(16)]).status_code == 200
    err = _error(_form([("image", PNG, "a.png"), ("image", PNG, "b.png")], app=_app(max_images=1)))  # variations
    assert (err["param"], err["code"]) == ("image", "invalid_value") and "at most 1 image " in err["message"]


def test_a_string_where_an_image_belongs() -> None:
    err = _error(_form([("image", "https://example.test/a.png", None), ("prompt", "x", None)]))
    assert err == {
        "status": 400,
        "param": "image[0]",
        "code": "invalid_type",
        "message": "Invalid type for 'image[0]': expected a file, but got a string instead.",
    }
    err = _error(_form([("image[]", PNG, "a.png"), ("image[]", "text", None)]))
    assert (err["param"], err["code"]) == ("image[1]", "invalid_type")
    err = _error(_form([("image", PNG, "a.png"), ("mask", "text", None)]))
    assert (err["param"], err["code"]) == ("mask", "invalid_type")


def test_a_file_where_a_string_belongs() -> None:
    err = _error(_form([("image", PNG, "a.png"), ("prompt", b"a fox", "prompt.txt")]))
    assert (err["param"], err["code"]) == ("prompt", "invalid_type")
    assert err["message"] == "Invalid type for 'prompt': expected a string, but got a file instead."


def test_two_masks_are_refused() -> None:
    err = _error(_form([("image", PNG, "a.png"), ("mask", PNG, "m.png"), ("mask", PNG, "m2.png")]))
    assert (err["param"], err["code"]) == ("mask", "invalid_value")


# -- text fields ------------------------------------------------------------------------------------------------


def test_empty_strings_are_absent_and_values_kept_as_sent() -> None:
    resp = _form(
        [
            ("image", PNG, "a.png"),
            ("mask", "", None),  # mask=None from the SDK
            ("size", "", None),
            ("stream", "true", None),
            ("svg[model]", "svg-1", None),
            ("svg[reasoning][effort]", "high", None),
            ("prompt", "un renard roux é 🦊", None),
        ]
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["mask"] is None
    assert resp.json()["fields"] == {
        "stream": "true",
        "svg[model]": "svg-1",
        "svg[reasoning][effort]": "high",
        "prompt": "un renard roux é 🦊",
    }


def test_duplicate_text_field_is_refused() -> None:
    err = _error(_form([("image", PNG, "a.png"), ("prompt", "a", None), ("prompt", "b", None)]))
    assert (err["param"], err["code"]) == ("prompt", "invalid_value")
    err = _error(_form([("image", PNG, "a.png"), ("n", "", None), ("n", "2", None)]))
    assert err["param"] == "n"


def test_invalid_utf8_in_a_field_is_refused() -> None:
    for bad in (b"caf\xe9", b"\xed\xa0\x80", b"\xff\xfe"):  # latin-1, an encoded lone surrogate, garbage
        err = _error(_form([("image", PNG, "a.png"), ("prompt", bad, None)]))
        assert (err["param"], err["code"]) == ("prompt", "invalid_value")
        assert "UTF-8" in err["message"]


def test_a_declared_charset_is_not_honoured() -> None:
    # unicode_escape would turn the text "\ud800" into a lone surrogate; only UTF-8 is decoded
    resp = _form(
        [("image", PNG, "a.png"), ("prompt", "\\ud800", None)],
        headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}; charset=unicode_escape"},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["fields"] == {"prompt": "\\ud800"}


def test_an_over_long_field_is_refused() -> None:
    err = _error(_form([("image", PNG, "a.png"), ("prompt", "x" * (1 << 20) + "x", None)]))
    assert (err["param"], err["code"]) == ("prompt", "invalid_value")


# -- size caps --------------------------------------------------------------------------------------------------


def test_a_streamed_body_over_the_cap_is_refused_early() -> None:
    sent = 0
    chunk = b"\0" * (1 << 20)

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'.encode()
        sent += 1
        yield head + PNG
        for _ in range(60):
            sent += 1
            yield chunk
        sent += 1
        yield f"\r\n--{BOUNDARY}--\r\n".encode()

    err = _error(_post(body()), 413)  # no content-length: httpx sends it chunked
    assert err["code"] == "request_too_large" and str(CAP) in err["message"]
    assert sent <= 52  # the server stopped reading right after the 50th megabyte


def test_a_declared_length_over_the_cap_is_refused_before_reading() -> None:
    consumed = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal consumed
        consumed += 1
        yield _body([("image", PNG, "a.png")])

    app = _app(max_body_bytes=1000)
    err = _error(_post(body(), headers={"content-length": "1001"}, app=app), 413)
    assert err["code"] == "request_too_large" and "1000" in err["message"]
    assert consumed == 0


def test_a_small_cap_counts_the_bytes_received() -> None:
    parts: list[Part] = [("image", PNG * 40, "a.png")]
    assert len(_body(parts)) > 1000
    err = _error(_post(_body(parts), app=_app(max_body_bytes=1000)), 413)
    assert err["code"] == "request_too_large"


# -- malformed bodies -------------------------------------------------------------------------------------------


def test_malformed_multipart_is_a_400() -> None:
    cases: list[tuple[bytes, dict[str, str]]] = [
        (b"this is not multipart at all", {}),
        (_body([("image", PNG, "a.png")], close=False), {}),  # truncated: no closing boundary
        (b"", {}),
        (f"--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nx\r\n--{BOUNDARY}--\r\n".encode(), {}),  # no name
        (f"--{BOUNDARY}\r\nbroken header line\r\n\r\nx\r\n--{BOUNDARY}--\r\n".encode(), {}),
        (_body([("image", PNG, "a.png")]), {"content-type": "multipart/form-data"}),  # no boundary
        (_body([("image", PNG, "a.png")]), {"content-type": "application/json"}),
        (b"image=abc", {"content-type": "application/x-www-form-urlencoded"}),
    ]
    for content, headers in cases:
        err = _error(_post(content, headers=headers))
        assert (err["param"], err["code"]) == (None, "invalid_multipart"), (content[:60], err)


def test_a_part_name_that_is_not_utf8_is_a_400() -> None:
    body = (
        f"--{BOUNDARY}\r\n".encode()
        + b'Content-Disposition: form-data; name="pr\xffompt"\r\n\r\nx\r\n'
        + f"--{BOUNDARY}--\r\n".encode()
    )
    err = _error(_post(body))
    assert err["code"] == "invalid_multipart"


def test_image_field_names() -> None:
    assert all(is_image_field(n) for n in ("image", "image[]", "image[0]", "image[15]"))
    assert not any(is_image_field(n) for n in ("images", "image[a]", "mask", "image[0][x]", "Image"))
