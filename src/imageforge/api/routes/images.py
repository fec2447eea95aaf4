"""``POST /v1/images/generations``."""

from __future__ import annotations

import asyncio
import threading

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from imageforge.api.auth import key_id, require_api_key
from imageforge.api.openapi import answers, json_body
from imageforge.api.requests import base_url, read_json_object, request_id, watch_disconnect
from imageforge.api.sse import sse_frames
from imageforge.api.state import AppState
from imageforge.protocol.image_events import ImageGenCompletedEvent, ImageGenPartialImageEvent, StreamErrorEvent
from imageforge.protocol.images import ImageGenerateRequest, ImagesResponse

__all__ = ["router"]

router = APIRouter(dependencies=[Depends(require_api_key)])


@router.post(
    "/v1/images/generations",
    summary="Create image",
    openapi_extra=json_body(ImageGenerateRequest, "OpenAI's image request; which values a model takes is its own."),
    responses=answers(
        ImagesResponse, 400, 401, 404, 413, 429, 500, 503, 504,
        events=(ImageGenPartialImageEvent, ImageGenCompletedEvent, StreamErrorEvent),
    ),
)  # fmt: skip
async def create_image(request: Request) -> Response:
    state: AppState = request.app.state.imageforge
    body = await read_json_object(request, state.settings.max_body_bytes)
    resolved = state.images.resolve(body, request_id(request))  # errors here are plain JSON 400s
    key = key_id(request)
    state.engines.worker(resolved.model).admit(resolved.params)  # a full queue is a 429 first, using no quota
    limits = state.limits.check(key, resolved.end_user, resolved.params.n)  # 429 before any work
    cancel = threading.Event()
    if resolved.stream:
        # stream() moderates the prompt and queues the job now: a refused prompt or a full queue is a plain 400 or
        # 429 before the first byte; later errors (a flagged partial image included) are in-band error events.
        # Starlette cancels the body iterator when the client disconnects; it then cancels the job.
        events = await state.images.stream(resolved, body, cancel=cancel, key_id=key)
        return StreamingResponse(
            sse_frames(events, request_id(request)),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no", **limits},
        )
    watcher = asyncio.create_task(watch_disconnect(request, cancel))
    try:
        response = await state.images.complete(
            resolved, body, base_url=base_url(request, state.settings.public_base_url), cancel=cancel, key_id=key
        )
    finally:
        watcher.cancel()
    return JSONResponse(response.model_dump(exclude_none=True), headers=limits)
