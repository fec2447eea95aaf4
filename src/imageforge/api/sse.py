"""Server-sent events in OpenAI's framing (reference §2.1, §2.4-2.5): per event an ``event:`` line naming the type
and one ``data:`` line of JSON repeating it in ``type``, then a blank line. No ``[DONE]``: the response ends when
the stream does. Keep-alives are ``:`` comment lines (the SDKs ignore them). An error after the first byte is an
in-band ``error`` event, and the stream ends."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

from pydantic import BaseModel

from imageforge.errors import ImageForgeError

__all__ = ["KEEPALIVE_FRAME", "sse_frames"]

log = logging.getLogger(__name__)
KEEPALIVE_FRAME = b": keep-alive\n\n"


def frame(event_type: str, data: str) -> bytes:
    return f"event: {event_type}\ndata: {data}\n\n".encode()


async def sse_frames(events: AsyncIterator[BaseModel | str], request_id: str) -> AsyncIterator[bytes]:
    """Wire frames for ``events`` (models with a ``type`` field; any plain string is a keep-alive)."""
    try:
        async for event in events:
            if isinstance(event, str):
                yield KEEPALIVE_FRAME
            else:
                yield frame(str(getattr(event, "type")), event.model_dump_json())  # noqa: B009 - models differ
    except ImageForgeError as exc:
        if exc.status >= 500:
            log.error("[%s] stream failed: %r", request_id, exc)
        error = {"message": exc.message, "type": exc.type, "param": exc.param, "code": exc.code}
        yield frame("error", json.dumps({"type": "error", "error": error}))
