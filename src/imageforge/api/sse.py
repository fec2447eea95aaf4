"""Server-sent events in OpenAI's framing (reference §2.1, §2.4-2.5, §4.4, §7.10): per event an ``event:`` line
naming the type and exactly one ``data:`` line of JSON repeating it in ``type``, then a blank line; no ``id:`` or
``retry:`` lines (OpenAI-DotNet would surface them as events). No ``[DONE]``: the response ends when the stream
does. Keep-alives are ``:`` comment lines (the SDKs ignore them). An error after the first byte is an in-band
``error`` event, and the stream ends."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any, Literal

from imageforge.errors import ImageForgeError
from imageforge.protocol.errors import ErrorBody
from imageforge.protocol.image_events import StreamErrorEvent
from imageforge.protocol.response_events import ResponseErrorEvent
from imageforge.serving.pipeline import KeepAlive

__all__ = ["KEEPALIVE_FRAME", "frame", "sse_frames"]

log = logging.getLogger(__name__)
KEEPALIVE_FRAME = b": keep-alive\n\n"


def frame(event_type: str, data: str) -> bytes:
    return f"event: {event_type}\ndata: {data}\n\n".encode()


def _error_data(exc: ImageForgeError, style: Literal["images", "responses"], sequence_number: int) -> str:
    if style == "responses":  # reference §4.3: the fields at the top level, numbered like every other event
        event = ResponseErrorEvent(code=exc.code or exc.type, message=exc.message, param=exc.param,
                                   sequence_number=sequence_number)  # fmt: skip
        return event.model_dump_json()
    # Images API (§2.5): a nested `error` object, which the SDKs raise as APIError.
    body = ErrorBody(message=exc.message, type=exc.type, param=exc.param, code=exc.code, **exc.extra)
    return StreamErrorEvent(error=body).model_dump_json()


async def sse_frames(
    events: AsyncGenerator[Any],  # models with a `type` field, or KeepAlive
    request_id: str,
    style: Literal["images", "responses"] = "images",
) -> AsyncIterator[bytes]:
    """Wire frames for ``events`` (models with a ``type`` field; :class:`KeepAlive` is a comment line)."""
    next_sequence = 0
    try:
        async with aclosing(events) as source:  # closed at once when the client goes away: the job is cancelled
            async for event in source:
                if isinstance(event, KeepAlive):
                    yield KEEPALIVE_FRAME
                    continue
                next_sequence = int(getattr(event, "sequence_number", next_sequence - 1)) + 1
                yield frame(str(getattr(event, "type")), event.model_dump_json())  # noqa: B009 - models differ
    except ImageForgeError as exc:
        if exc.status >= 500:
            log.error("[%s] stream failed: %r", request_id, exc)
        yield frame("error", _error_data(exc, style, next_sequence))
