"""``POST /v1/images/edits`` (multipart, or the JSON form) and ``POST /v1/images/variations`` (multipart)."""

from __future__ import annotations

import threading

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from imageforge.api.auth import key_id, require_api_key
from imageforge.api.openapi import answers, form_body
from imageforge.api.requests import base_url, read_json_object, request_id
from imageforge.api.responding import images_answer
from imageforge.api.state import AppState
from imageforge.api.uploads import read_image_form
from imageforge.protocol.edits import ImageEditRequest, ImageVariationRequest
from imageforge.protocol.image_events import ImageEditCompletedEvent, ImageEditPartialImageEvent, StreamErrorEvent
from imageforge.protocol.images import ImagesResponse

__all__ = ["router"]

router = APIRouter(dependencies=[Depends(require_api_key)])
_EDIT_BODY = (
    "The image(s) to edit, an optional mask and the fields of OpenAI's edit request; or the JSON form with the "
    "images as data URLs."
)


@router.post(
    "/v1/images/edits",
    summary="Create image edit",
    openapi_extra=form_body(ImageEditRequest, ("image", "mask"), _EDIT_BODY, json=True),
    responses=answers(
        ImagesResponse, 400, 401, 404, 413, 429, 500, 503, 504,
        events=(ImageEditPartialImageEvent, ImageEditCompletedEvent, StreamErrorEvent),
    ),
)  # fmt: skip
async def create_image_edit(request: Request) -> Response:
    state: AppState = request.app.state.imageforge
    cancel = threading.Event()
    where = {"key_id": key_id(request), "base_url": base_url(request, state.settings.public_base_url)}
    if request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json":
        body = await read_json_object(request, state.settings.max_upload_bytes)
        run = await state.edits.start_json(body, request_id(request), cancel, **where)
    else:
        form = await read_image_form(request, max_body_bytes=state.settings.max_upload_bytes)
        run = await state.edits.start_form(form, request_id(request), cancel, **where)
    return await images_answer(request, run, cancel)


@router.post(
    "/v1/images/variations",
    summary="Create image variation",
    openapi_extra=form_body(ImageVariationRequest, ("image",), "A square PNG and dall-e-2's variation fields."),
    responses=answers(ImagesResponse, 400, 401, 404, 413, 429, 500, 503, 504),
)
async def create_image_variation(request: Request) -> Response:
    state: AppState = request.app.state.imageforge
    cancel = threading.Event()
    form = await read_image_form(request, max_body_bytes=state.settings.max_upload_bytes, max_images=1)
    run = await state.variations.start(form, request_id(request), cancel, key_id=key_id(request),
                                       base_url=base_url(request, state.settings.public_base_url))  # fmt: skip
    return await images_answer(request, run, cancel)
