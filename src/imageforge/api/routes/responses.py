"""``POST /v1/responses`` (the image_generation tool), ``GET``/``DELETE /v1/responses/{id}`` and its input items."""

from __future__ import annotations

import asyncio
import threading

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from imageforge.api.auth import key_id, require_api_key
from imageforge.api.requests import read_json_object, request_id, watch_disconnect
from imageforge.api.sse import sse_frames
from imageforge.api.state import AppState

__all__ = ["router"]

router = APIRouter(dependencies=[Depends(require_api_key)])


@router.post("/v1/responses")
async def create_response(request: Request) -> Response:
    state: AppState = request.app.state.imageforge
    body = await read_json_object(request, state.settings.max_responses_body_bytes)
    prepared = await state.responses.prepare(body, request_id(request))  # errors here are plain JSON 400s
    prepared.key_id = key_id(request)
    user = prepared.request.safety_identifier or prepared.request.user
    images = 1 if prepared.image_model is not None and prepared.context.tool_offered else 0
    if images:
        state.engines.worker(str(prepared.image_model)).admit()  # a full queue is a 429 before any work or byte
    limits = state.limits.check(prepared.key_id, user, images)  # after admit: a full queue uses no quota
    cancel = threading.Event()
    if prepared.stream:
        events = state.responses.events(prepared, cancel)
        return StreamingResponse(
            sse_frames(events, request_id(request), style="responses"),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no", **limits},
        )
    watcher = asyncio.create_task(watch_disconnect(request, cancel))
    try:
        response = await state.responses.create(prepared, cancel)
    finally:
        watcher.cancel()
    return JSONResponse(response.model_dump(mode="json"), headers=limits)


@router.get("/v1/responses/{response_id}")
async def retrieve_response(response_id: str, request: Request) -> JSONResponse:
    state: AppState = request.app.state.imageforge
    return JSONResponse(await state.responses.retrieve(response_id))


@router.delete("/v1/responses/{response_id}")
async def delete_response(response_id: str, request: Request) -> JSONResponse:
    state: AppState = request.app.state.imageforge
    await state.responses.delete(response_id)
    return JSONResponse({"id": response_id, "object": "response.deleted", "deleted": True})


@router.get("/v1/responses/{response_id}/input_items")
async def list_input_items(response_id: str, request: Request) -> JSONResponse:
    state: AppState = request.app.state.imageforge
    items = await state.responses.input_items(response_id)
    if request.query_params.get("order", "desc") == "desc":  # OpenAI's default order: newest first
        items = items[::-1]
    return JSONResponse({
        "object": "list", "data": items, "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None, "has_more": False,
    })  # fmt: skip
