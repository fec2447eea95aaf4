"""Request helpers for routes: the JSON body (bounded, OpenAI's errors), the request id, the public base URL,
and cancelling work when the client goes away."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from fastapi import Request

from imageforge.errors import RequestTooLargeError
from imageforge.protocol.jsonbody import parse_json_object

__all__ = ["base_url", "read_json_object", "request_id", "watch_disconnect"]

_PARSE_ON_LOOP_BYTES = 64 << 10  # larger bodies (input images) are parsed in a thread, off the event loop


async def read_json_object(request: Request, max_bytes: int) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise RequestTooLargeError(f"The request body is larger than the limit of {max_bytes} bytes.")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > max_bytes:
            raise RequestTooLargeError(f"The request body is larger than the limit of {max_bytes} bytes.")
    data = bytes(raw)
    if len(data) <= _PARSE_ON_LOOP_BYTES:
        return parse_json_object(data)
    return await asyncio.to_thread(parse_json_object, data)


def request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", ""))


def base_url(request: Request, configured: str | None) -> str:
    """The configured public base URL, else the scheme and host the client reached."""
    if configured:
        return configured.rstrip("/")
    return str(request.base_url).rstrip("/")


async def watch_disconnect(request: Request, cancel: threading.Event) -> None:
    """Set ``cancel`` the moment the client disconnects, so the engine stops at the next step boundary.

    The body has been read, so the next ASGI message the server sends this request is ``http.disconnect``;
    waiting on it reacts at once, where polling ``is_disconnected()`` would let steps run in between.
    """
    while not cancel.is_set():
        message = await request.receive()
        if message["type"] == "http.disconnect":
            cancel.set()
            return
