"""``POST /v1/responses`` (the image_generation tool), ``GET``/``DELETE /v1/responses/{id}`` and its input items."""

from __future__ import annotations

import asyncio
import threading
from typing import Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from imageforge.api.auth import key_id, require_api_key
from imageforge.api.errors import limit_headers
from imageforge.api.openapi import answers, json_body
from imageforge.api.requests import read_json_object, request_id, watch_disconnect
from imageforge.api.responding import SSE_HEADERS, model_response
from imageforge.api.sse import sse_frames
from imageforge.api.state import AppState
from imageforge.protocol.response_events import RESPONSE_STREAM_EVENTS
from imageforge.protocol.responses import Response as ResponseObject
from imageforge.protocol.responses import ResponseCreateRequest, ResponseDeleted, ResponseItemList

__all__ = ["router"]

router = APIRouter(dependencies=[Depends(require_api_key)])


@router.post(
    "/v1/responses",
    summary="Create a response (the image_generation tool)",
    openapi_extra=json_body(ResponseCreateRequest, "The Responses request, as far as image generation needs it."),
    responses=answers(
        ResponseObject, 400, 401, 404, 413, 429, 500, 503, 504,
        events=RESPONSE_STREAM_EVENTS,
        links={op: {"operationId": op, "parameters": {"response_id": "$response.body#/id"}}
               for op in ("retrieve_response", "list_input_items", "delete_response")},
    ),
)  # fmt: skip
async def create_response(request: Request) -> Response:
    state: AppState = request.app.state.imageforge
    body = await read_json_object(request, state.settings.max_responses_body_bytes)
    prepared = await state.responses.prepare(body, request_id(request))  # errors here are plain JSON 400s
    prepared.key_id = key_id(request)
    cancel = threading.Event()
    run = await state.responses.start(prepared, cancel)  # a full queue or a rate limit: 429 before any byte
    headers = limit_headers(run.limits)
    if prepared.stream:
        events = state.responses.events(prepared, run, cancel)
        return StreamingResponse(sse_frames(events, request_id(request), style="responses"),
                                 media_type="text/event-stream", headers={**SSE_HEADERS, **headers})  # fmt: skip
    watcher = asyncio.create_task(watch_disconnect(request, cancel))
    try:
        response = await state.responses.create(prepared, run, cancel)
    finally:
        watcher.cancel()
    return model_response(response, headers)


@router.get("/v1/responses/{response_id}", summary="Retrieve a stored response", operation_id="retrieve_response",
            responses=answers(ResponseObject, 404))  # fmt: skip
async def retrieve_response(response_id: str, request: Request) -> JSONResponse:
    state: AppState = request.app.state.imageforge
    return JSONResponse(await state.responses.retrieve(response_id))


@router.delete("/v1/responses/{response_id}", summary="Delete a stored response", operation_id="delete_response",
               responses=answers(ResponseDeleted, 404))  # fmt: skip
async def delete_response(response_id: str, request: Request) -> JSONResponse:
    state: AppState = request.app.state.imageforge
    await state.responses.delete(response_id)
    return JSONResponse(ResponseDeleted(id=response_id).model_dump())


@router.get("/v1/responses/{response_id}/input_items", summary="List a stored response's input items",
            operation_id="list_input_items", responses=answers(ResponseItemList, 400, 404))  # fmt: skip
async def list_input_items(response_id: str, request: Request, order: Literal["asc", "desc"] = "desc") -> JSONResponse:
    state: AppState = request.app.state.imageforge
    items = await state.responses.input_items(response_id)
    if order == "desc":  # OpenAI's default order: newest first
        items = items[::-1]
    page = ResponseItemList(data=items, first_id=items[0]["id"] if items else None,
                            last_id=items[-1]["id"] if items else None)  # fmt: skip
    return JSONResponse(page.model_dump())
