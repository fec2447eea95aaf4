"""``/v1/images/edits`` and ``/v1/images/variations`` through the official SDK against a real server on the
embedded model: every upload shape the SDK sends, the JSON form, streaming, masks measured on pixels, colour
edits, and the upload refusals (before any job is queued)."""

from __future__ import annotations

import base64
import io
import select
import socket
import struct
import warnings
import zlib
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from PIL import Image

from tests.api.images import decode_b64, png
from tests.api.server import Server, serve
from tests.engines.test_embedded_colours import is_blue, mean_colour
from tests.engines.tiny_pipelines import save_tiny_sd


@pytest.fixture(scope="module")
def red_heart(server: Server) -> bytes:
    r = server.client().images.generate(model="gpt-image-1", prompt="a red heart", size="1024x1024", quality="low",
                                        background="transparent")  # fmt: skip
    return base64.b64decode(str(r.data[0].b64_json))


def half_mask(size: tuple[int, int]) -> bytes:
    """OpenAI's mask: transparent (alpha 0) where the image is redrawn: the left half."""
    mask = Image.new("RGBA", size, (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, size[0] // 2, size[1]))
    return png(mask)


def test_edit_with_one_file_a_list_raw_bytes_and_a_path(server: Server, red_heart: bytes, tmp_path: Path) -> None:
    client = server.client()
    path = tmp_path / "heart.png"
    path.write_bytes(red_heart)
    with path.open("rb") as f:
        one = client.images.edit(model="gpt-image-1", image=f, prompt="a red heart with a star", quality="low")
    listed = client.images.edit(model="gpt-image-1", image=[red_heart], prompt="a red heart", quality="low",
                                output_format="webp")  # fmt: skip
    raw = client.images.edit(model="gpt-image-1", image=red_heart, prompt="a red heart", quality="low", n=2,
                             output_format="jpeg", output_compression=60)  # fmt: skip
    from_path = client.images.edit(model="gpt-image-1", image=path, prompt="a red heart", quality="low")
    for r, fmt, n in ((one, "PNG", 1), (listed, "WEBP", 1), (raw, "JPEG", 2), (from_path, "PNG", 1)):
        assert len(r.data) == n and r.size == "1024x1024" and r.quality == "low"
        img, _ = decode_b64(r.data[0].b64_json)
        assert img.format == fmt and img.size == (1024, 1024)
        assert r.usage is not None and r.usage.input_tokens_details.image_tokens > 0  # the input image counts
        details = r.usage.input_tokens_details
        assert r.usage.input_tokens == details.image_tokens + details.text_tokens


def test_several_images_the_first_edited_the_others_references(server: Server, red_heart: bytes) -> None:
    """The embedded engine uses up to two more images as its references (docs/api.md's rule per engine)."""
    star = png(Image.new("RGBA", (256, 256), (30, 60, 220, 255)))
    r = server.client().images.edit(model="gpt-image-1", image=[red_heart, star, star], prompt="a heart",
                                    quality="low", size="1024x1024")  # fmt: skip
    assert decode_b64(r.data[0].b64_json)[0].size == (1024, 1024)
    assert r.usage is not None and r.usage.input_tokens_details.image_tokens > 0


def test_edit_size_auto_keeps_the_input_geometry_and_transparent_output(server: Server) -> None:
    wide = png(Image.new("RGBA", (640, 400), (200, 30, 30, 255)))
    r = server.client().images.edit(model="imageforge-emoji", image=wide, prompt="a red heart", quality="low",
                                    background="transparent")  # fmt: skip
    img, _ = decode_b64(r.data[0].b64_json)
    assert img.size == (640, 400) and r.size == "640x400" and img.mode == "RGBA"
    gpt = server.client().images.edit(model="gpt-image-1", image=wide, prompt="a red heart", quality="low")
    assert gpt.size == "1536x1024"  # the GPT profile's size nearest the input's aspect ratio


def test_masked_edit_keeps_the_unmasked_pixels(server: Server, red_heart: bytes) -> None:
    client = server.client()
    source = np.asarray(Image.open(io.BytesIO(red_heart)).convert("RGBA"), dtype=np.float64)
    r = client.images.edit(model="gpt-image-1", image=red_heart, mask=half_mask((1024, 1024)),
                           prompt="a blue heart", quality="low", background="transparent")  # fmt: skip
    out = np.asarray(decode_b64(r.data[0].b64_json)[0].convert("RGBA"), dtype=np.float64)
    kept, redrawn = np.abs(out[:, 512:] - source[:, 512:]), np.abs(out[:, :512] - source[:, :512])
    assert kept.mean() < 2.0, kept.mean()  # the right half is the source's own pixels
    assert redrawn.mean() > 10 * max(kept.mean(), 0.1), (redrawn.mean(), kept.mean())


def test_make_it_blue_gives_a_blue_heart(server: Server, red_heart: bytes) -> None:
    """The colour edit of the acceptance: blue in at least 6 of 8 seeds, measured as the colour tests do."""
    r = server.client().images.edit(model="imageforge-emoji", image=red_heart, prompt="a blue heart", n=8,
                                    quality="low", size="256x256", background="transparent")  # fmt: skip
    colours = [mean_colour(decode_b64(d.b64_json)[0]) for d in r.data]
    assert sum(is_blue(c) for c in colours) >= 6, colours


def test_streamed_edit_sends_image_edit_events(server: Server, red_heart: bytes) -> None:
    stream = server.client().images.edit(model="gpt-image-1", image=red_heart, prompt="a red heart", quality="low",
                                         stream=True, partial_images=2)  # fmt: skip
    events = list(stream)
    kinds = [e.type for e in events]
    assert kinds[-1] == "image_edit.completed" and set(kinds[:-1]) <= {"image_edit.partial_image"}
    assert [e.partial_image_index for e in events[:-1]] == list(range(len(events) - 1)) and len(events) >= 2
    done = events[-1]
    assert done.usage.input_tokens_details.image_tokens > 0 and done.size == "1024x1024"
    for e in events:
        assert decode_b64(e.b64_json)[0].size == (1024, 1024)


def test_dall_e_2_edit_and_variations(server: Server) -> None:
    client = server.client()
    square = png(Image.new("RGB", (256, 256), (30, 30, 200)).convert("RGBA"))
    edit = client.images.edit(model="dall-e-2", image=square, prompt="a blue heart", size="256x256",
                              response_format="b64_json")  # fmt: skip
    assert decode_b64(edit.data[0].b64_json)[0].size == (256, 256) and edit.usage is None
    with pytest.deprecated_call():  # the newest SDKs mark the endpoint deprecated; older clients still call it
        variations = client.images.create_variation(image=square, n=2, size="512x512", response_format="b64_json")
    images = [decode_b64(d.b64_json)[0] for d in variations.data]
    assert [im.size for im in images] == [(512, 512)] * 2
    assert np.abs(np.asarray(images[0], dtype=float) - np.asarray(images[1], dtype=float)).mean() > 0  # new seeds
    with pytest.deprecated_call():
        by_url = client.images.create_variation(image=square, size="256x256")  # dall-e-2's default: a URL
    fetched = httpx.get(str(by_url.data[0].url))
    assert fetched.status_code == 200 and Image.open(io.BytesIO(fetched.content)).size == (256, 256)


def test_the_json_form_with_data_urls(server: Server, red_heart: bytes) -> None:
    url = "data:image/png;base64," + base64.b64encode(red_heart).decode()
    body = {
        "model": "gpt-image-1",
        "prompt": "a red heart",
        "quality": "low",
        "images": [{"image_url": url}],
        "mask": {"image_url": "data:image/png;base64," + base64.b64encode(half_mask((1024, 1024))).decode()},
    }
    r = httpx.post(f"{server.v1}/images/edits", json=body, timeout=120)
    assert r.status_code == 200, r.text
    assert decode_b64(r.json()["data"][0]["b64_json"])[0].size == (1024, 1024)
    for bad, param, code in (
        ({"images": [{"image_url": "https://example.com/a.png"}]}, "images[0].image_url", "invalid_value"),
        ({"images": [{"file_id": "file-abc"}]}, "images[0].file_id", "unsupported_parameter"),
        ({"images": []}, "images", "missing_required_parameter"),
    ):
        r = httpx.post(f"{server.v1}/images/edits", json={**body, "mask": None, **bad}, timeout=30)
        assert r.status_code == 400 and (r.json()["error"]["param"], r.json()["error"]["code"]) == (param, code), r.text


def _bomb(width: int, height: int) -> bytes:
    """A PNG header claiming width x height pixels (the data is a few bytes): a decompression bomb."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))  # noqa: E731
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _error(call: Any) -> tuple[int, str | None, str | None]:
    with pytest.raises(openai.APIStatusError) as info:
        call()
    body = info.value.body if isinstance(info.value.body, dict) else {}
    return info.value.status_code, body.get("param"), body.get("code")


def test_hostile_uploads_are_refused_before_any_job(server: Server, red_heart: bytes) -> None:
    client = server.client().with_options(max_retries=0)
    queued_before = server.metric("imageforge_batch_jobs_sum")
    small = png(Image.new("RGBA", (64, 64), (0, 0, 0, 0)))
    cases = {
        "bomb": (lambda: client.images.edit(model="gpt-image-1", image=_bomb(30000, 30000), prompt="x"),
                 400, "image", "invalid_image_file"),
        "html named png": (lambda: client.images.edit(model="gpt-image-1", image=("a.png", b"<html><body>hi</body>",
                           "image/png"), prompt="x"), 400, "image", "unsupported_file_mimetype"),
        "wrong-size mask": (lambda: client.images.edit(model="gpt-image-1", image=red_heart, mask=small, prompt="x"),
                            400, "mask", "invalid_value"),
        "mask without alpha": (lambda: client.images.edit(model="gpt-image-1", image=red_heart, prompt="x",
                               mask=png(Image.new("RGB", (1024, 1024)))), 400, "mask", "invalid_image_file"),
        "17 images": (lambda: client.images.edit(model="gpt-image-1", image=[small] * 17, prompt="x"),
                      400, "image", "invalid_value"),
        "dall-e-3": (lambda: client.images.edit(model="dall-e-3", image=red_heart, prompt="x"), 400, "model",
                     "invalid_value"),
        "dall-e-2 not square": (lambda: client.images.edit(model="dall-e-2", image=png(Image.new("RGBA", (64, 32))),
                                prompt="x"), 400, "image", "invalid_image_file"),
        "fidelity on gpt-image-2": (lambda: client.images.edit(model="gpt-image-2", image=red_heart, prompt="x",
                                    input_fidelity="high"), 400, "input_fidelity", "invalid_input_fidelity_model"),
        "high fidelity on mini": (lambda: client.images.edit(model="gpt-image-1-mini", image=red_heart, prompt="x",
                                  input_fidelity="high"), 400, "input_fidelity", "invalid_value"),
        "fidelity on dall-e-2": (lambda: client.images.edit(model="dall-e-2", image=small, prompt="x",
                                 input_fidelity="low"), 400, "input_fidelity", "unknown_parameter"),
        "markup with mask": (lambda: client.images.edit(model="gpt-image-1", image=red_heart, prompt="x",
                             mask=half_mask((1024, 1024)), markup=small), 400, "markup", "invalid_value"),
        "more images than the engine uses": (lambda: client.images.edit(model="gpt-image-1", image=[red_heart] * 4,
                                             prompt="x"), 400, "image", "invalid_value"),
        "variation of dall-e-3": (lambda: client.images.create_variation(model="dall-e-3", image=small), 400,
                                  "model", "invalid_value"),
        "variation not square": (lambda: client.images.create_variation(image=png(Image.new("RGBA", (64, 32)))),
                                 400, "image", "invalid_image_file"),
    }  # fmt: skip
    for name, (call, status, param, code) in cases.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # create_variation is marked deprecated
            assert _error(call) == (status, param, code), name
    assert server.metric("imageforge_batch_jobs_sum") == queued_before  # no job ran


def test_a_60_mb_body_is_refused_while_it_streams(server: Server) -> None:
    """Over a raw socket, 1 MB at a time with no Content-Length: the server answers 413 before the body ends."""
    host, port = server.base_url.removeprefix("http://").split(":")
    head = (b"POST /v1/images/edits HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer x\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\nTransfer-Encoding: chunked\r\n\r\n")  # fmt: skip
    part = b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n\x89PNG'
    answer, sent = b"", 0
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head + b"%x\r\n%s\r\n" % (len(part), part))
        chunk = b"\0" * (1 << 20)
        while sent < 60 and not answer:
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += 1
            except OSError:  # the server closed the connection after answering
                break
            ready, _, _ = select.select([sock], [], [], 0)
            if ready:
                answer = sock.recv(65536)
        if not answer:
            sock.settimeout(10)
            answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 60  # refused while it streamed in, not after reading it all


def test_masked_edit_on_the_toy_diffusers_inpaint_pipeline(tmp_path: Path) -> None:
    """The same endpoint on a diffusers engine (a tiny Stable Diffusion built from the real classes): the pixels
    the mask keeps are the input's own, the masked ones are redrawn by the inpainting pipeline."""
    pipeline = save_tiny_sd(tmp_path / "pipelines")
    config = tmp_path / "models.toml"
    config.write_text(f'include_defaults = false\n[models."toy-sd"]\nengine = "diffusers"\nprofile = "imageforge"\n'
                      f'options = {{ model = "{pipeline}", device = "cpu" }}\n')  # fmt: skip
    source = Image.new("RGBA", (32, 32), (240, 240, 240, 255))
    source.paste((200, 30, 30, 255), (8, 8, 24, 24))
    mask = Image.new("RGBA", (32, 32), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 16, 32))  # redraw the left half
    with serve(tmp_path / "data", "--config", str(config)) as s:
        r = s.client().images.edit(model="toy-sd", image=png(source), mask=png(mask), prompt="a blue square",
                                   quality="low")  # fmt: skip
    out = np.asarray(decode_b64(r.data[0].b64_json)[0].convert("RGBA"), dtype=np.float64)
    src = np.asarray(source, dtype=np.float64)
    assert out.shape == (32, 32, 4) and r.size == "32x32"  # size auto: the input's own
    assert np.array_equal(out[:, 16:], src[:, 16:])  # kept: the input's pixels exactly
    assert np.abs(out[:, :16] - src[:, :16]).mean() > 5  # redrawn


def test_malformed_uploads_do_not_fill_the_log(server: Server) -> None:
    """The multipart parser's own warning per malformed body stays out of the log (the client got its 400)."""
    body = b'garbage before\r\n--b\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nx\r\n--b--\r\n'
    for _ in range(3):
        r = httpx.post(f"{server.v1}/images/edits", content=body, timeout=30,
                       headers={"content-type": "multipart/form-data; boundary=b"})  # fmt: skip
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_multipart"
    assert "python_multipart" not in server.log()


SMALL = png(Image.new("RGBA", (64, 64), (200, 30, 30, 255)))
# Reference §3.2 and §5.3 for edits: (fields, files, param, code); the image is SMALL unless files say otherwise.
INVALID_EDITS: list[tuple[dict[str, Any], Any, str | None, str]] = [
    ({"model": "gpt-image-1"}, [("image", ("a.png", SMALL, "image/png"))], "prompt", "missing_required_parameter"),
    ({"model": "gpt-image-1", "prompt": "x"}, [], "image", "missing_required_parameter"),
    ({"model": "dall-e-2", "prompt": "x" * 1001}, None, "prompt", "string_above_max_length"),
    ({"model": "gpt-image-1", "prompt": "x", "response_format": "url"}, None, "response_format", "unknown_parameter"),
    ({"model": "gpt-image-1", "prompt": "x", "size": "512x512"}, None, "size", "invalid_value"),
    ({"model": "dall-e-2", "prompt": "x", "size": "1536x1024"}, None, "size", "invalid_value"),
    ({"model": "gpt-image-1", "prompt": "x", "n": "0"}, None, "n", "invalid_value"),
    ({"model": "gpt-image-1", "prompt": "x", "n": "11"}, None, "n", "invalid_value"),
    ({"model": "gpt-image-1", "prompt": "x", "n": "two"}, None, "n", "invalid_type"),
    ({"model": "gpt-image-1", "prompt": "x", "quality": "ultra"}, None, "quality", "invalid_value"),
    ({"model": "dall-e-2", "prompt": "x", "quality": "low"}, None, "quality", "invalid_value"),
    ({"model": "dall-e-2", "prompt": "x", "output_format": "webp"}, None, "output_format", "unsupported_parameter"),
    ({"model": "dall-e-2", "prompt": "x", "stream": "true"}, None, "stream", "unsupported_parameter"),
    ({"model": "gpt-image-1", "prompt": "x", "partial_images": "4", "stream": "true"}, None, "partial_images",
     "invalid_value"),
    ({"model": "gpt-image-1", "prompt": "x", "stream": "yes"}, None, "stream", "invalid_type"),
    ({"model": "gpt-image-1", "prompt": "x", "background": "transparent", "output_format": "jpeg"}, None,
     "background", None),
    ({"model": "gpt-image-1", "prompt": "x", "colour": "blue"}, None, "colour", "unknown_parameter"),
    ({"model": "gpt-image-1", "prompt": "x", "input_fidelity": "medium"}, None, "input_fidelity", "invalid_value"),
    ({"model": "gpt-image-1", "prompt": "x"}, [("image[]", ("a.png", SMALL, "image/png")),
     ("image[]", ("b.png", b"GIF89a not really", "image/png"))], "image[1]", "unsupported_file_mimetype"),
    ({"model": "gpt-image-1", "prompt": "x"}, [("image", (None, b"a string, not a file"))], "image[0]",
     "invalid_type"),
    ({"model": "dall-e-2", "prompt": "x"}, [("image", ("a.jpg", b"\xff\xd8\xff" + b"0" * 64, "image/jpeg"))], "image",
     "unsupported_file_mimetype"),
]  # fmt: skip


@pytest.mark.parametrize("fields,files,param,code", INVALID_EDITS)
def test_invalid_edits_name_their_param_and_code(server: Server, fields: dict[str, Any], files: Any,
                                                 param: str | None, code: str | None) -> None:  # fmt: skip
    parts = [("image", ("a.png", SMALL, "image/png"))] if files is None else files
    r = httpx.post(f"{server.v1}/images/edits", data=fields, files=parts or None, timeout=30)
    if not parts:  # no file at all: send the fields as a multipart form anyway (the SDKs always do)
        r = httpx.post(f"{server.v1}/images/edits", files=[(k, (None, v.encode())) for k, v in fields.items()],
                       timeout=30)  # fmt: skip
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert (error["param"], error["code"]) == (param, code), error


def test_an_unknown_model_is_a_404(server: Server) -> None:
    r = httpx.post(f"{server.v1}/images/edits", data={"model": "no-such-model", "prompt": "x"},
                   files=[("image", ("a.png", SMALL, "image/png"))], timeout=30)  # fmt: skip
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
