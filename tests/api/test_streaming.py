"""Images API streaming (``stream: true``, ``partial_images`` 0-3) through the official SDK and as raw SSE bytes."""

from __future__ import annotations

import base64
import io
import json
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.api.server import Server


def _pixels(b64: str) -> np.ndarray:
    with Image.open(io.BytesIO(base64.b64decode(b64))) as img:
        return np.asarray(img.convert("RGBA"), dtype=np.float64)


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_partial_images_then_completed(server: Server, k: int) -> None:
    stream = server.client().images.generate(
        model="gpt-image-1", prompt="a blue heart", size="1536x1024", quality="medium", output_format="webp",
        background="transparent", stream=True, partial_images=k,
    )  # fmt: skip
    with stream:
        events = list(stream)
    partials, final = events[:-1], events[-1]
    assert [e.type for e in partials] == ["image_generation.partial_image"] * k
    assert [e.partial_image_index for e in partials] == list(range(k))  # type: ignore[union-attr]
    assert final.type == "image_generation.completed" and final.usage.output_tokens == 1568  # type: ignore[union-attr]
    for e in events:
        with Image.open(io.BytesIO(base64.b64decode(e.b64_json))) as img:
            assert (img.size, img.format, img.mode) == ((1536, 1024), "WEBP", "RGBA")
        assert (e.size, e.quality, e.background, e.output_format) == ("1536x1024", "medium", "transparent", "webp")
        assert e.created_at > 0
    if k >= 2:  # later previews are closer to the final image (mean absolute pixel distance)
        final_px = _pixels(final.b64_json)
        distances = [float(np.abs(_pixels(e.b64_json) - final_px).mean()) for e in partials]
        assert distances == sorted(distances, reverse=True) and distances[-1] < distances[0], distances
        assert distances[0] > 0, "partials are previews of the denoising, not copies of the final image"


def test_raw_frames_follow_openai_framing(server: Server) -> None:
    body = {"model": "gpt-image-1", "prompt": "a red heart", "quality": "low", "stream": True, "partial_images": 2}
    with httpx.stream("POST", f"{server.v1}/images/generations", json=body, timeout=300) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        raw = r.read().decode()
    assert raw.endswith("\n\n") and "[DONE]" not in raw
    frames = [f for f in raw.split("\n\n") if f and not f.startswith(":")]
    types = []
    for f in frames:
        lines = f.split("\n")
        assert len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: "), f[:80]
        data = json.loads(lines[1].removeprefix("data: "))
        assert data["type"] == lines[0].removeprefix("event: ")
        types.append(data["type"])
    assert types == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]


def test_streaming_rules(server: Server) -> None:
    for body, param in (
        ({"model": "gpt-image-1", "stream": True, "n": 2}, "n"),
        ({"model": "dall-e-3", "stream": True}, "stream"),
        ({"model": "gpt-image-1", "stream": True, "partial_images": 4}, "partial_images"),
    ):
        r = httpx.post(f"{server.v1}/images/generations", json={"prompt": "x", **body})
        assert r.status_code == 400 and r.json()["error"]["param"] == param
        assert r.headers["content-type"].startswith("application/json"), "errors before the first byte are JSON"


def test_disconnect_mid_stream_cancels_the_job(server: Server) -> None:
    before = server.log().count("cancelled: the client went away")
    body = {"model": "gpt-image-1", "prompt": "a star", "size": "1024x1024", "quality": "high", "stream": True,
            "partial_images": 3}  # fmt: skip
    with httpx.stream("POST", f"{server.v1}/images/generations", json=body, timeout=300) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                assert json.loads(line[6:])["type"] == "image_generation.partial_image"
                break  # leave after the first partial image: closing the connection
    deadline = time.monotonic() + 60
    while server.log().count("cancelled: the client went away") <= before:
        assert time.monotonic() < deadline, "the abandoned stream's job was not cancelled"
        time.sleep(0.1)
    r2 = server.client().images.generate(model="gpt-image-1", prompt="a cat", quality="low")
    assert r2.data and r2.data[0].b64_json
