"""Writing an admitted Images API run to the client: a JSON ``ImagesResponse``, or its events as SSE; the
``x-ratelimit-*`` headers of the caller's limits on both."""

from __future__ import annotations

import asyncio
import threading

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from imageforge.api.errors import limit_headers
from imageforge.api.requests import request_id, watch_disconnect
from imageforge.api.sse import sse_frames
from imageforge.serving.images_wire import ImagesRun

__all__ = ["SSE_HEADERS", "images_answer"]

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


async def images_answer(request: Request, run: ImagesRun, cancel: threading.Event) -> Response:
    headers = limit_headers(run.limits)
    if run.stream:
        # Later errors (a flagged partial image included) are in-band error events. Starlette cancels the body
        # iterator when the client disconnects; closing the events cancels the job.
        return StreamingResponse(sse_frames(run.events(), request_id(request)), media_type="text/event-stream",
                                 headers={**SSE_HEADERS, **headers})  # fmt: skip
    watcher = asyncio.create_task(watch_disconnect(request, cancel))
    try:
        response = await run.response()
    finally:
        watcher.cancel()
    return JSONResponse(response.model_dump(exclude_none=True), headers=headers)
