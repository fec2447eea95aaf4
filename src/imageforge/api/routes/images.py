"""``POST /v1/images/generations``."""

from __future__ import annotations

import threading

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from imageforge.api.auth import key_id, require_api_key
from imageforge.api.openapi import answers, json_body
from imageforge.api.requests import base_url, read_json_object, request_id
from imageforge.api.responding import images_answer
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
    cancel = threading.Event()
    run = await state.generations.start(body, request_id(request), cancel, key_id=key_id(request),
                                        base_url=base_url(request, state.settings.public_base_url))  # fmt: skip
    return await images_answer(request, run, cancel)
