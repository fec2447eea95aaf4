"""The SSE writer: frames, keep-alive comments, and an in-band error event once the stream has started."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from pydantic import BaseModel

from imageforge.api.sse import KEEPALIVE_FRAME, sse_frames
from imageforge.errors import EngineError
from imageforge.serving.pipeline import KeepAlive


class _Event(BaseModel):
    type: str = "image_generation.partial_image"
    b64_json: str = "AAAA"


async def _events() -> AsyncIterator[BaseModel | KeepAlive]:
    yield _Event()
    yield KeepAlive()
    raise EngineError("the engine failed")


def test_frames_keepalive_and_in_band_error() -> None:
    async def collect() -> list[bytes]:
        return [f async for f in sse_frames(_events(), "req_x")]

    frames = asyncio.run(collect())
    expected = b'data: {"type":"image_generation.partial_image","b64_json":"AAAA"}\n\n'
    assert frames[0] == b"event: image_generation.partial_image\n" + expected
    assert frames[1] == KEEPALIVE_FRAME
    head, data = frames[2].decode().rstrip("\n").split("\n")
    assert head == "event: error"
    err = json.loads(data.removeprefix("data: "))
    assert err["type"] == "error" and err["error"]["message"] == "the engine failed"
    assert set(err["error"]) == {"message", "type", "param", "code"}
