"""``POST /v1/images/generations``."""

from __future__ import annotations

import asyncio
import threading

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from imageforge.api.auth import require_api_key
from imageforge.api.requests import base_url, read_json_object, request_id, watch_disconnect
from imageforge.api.state import AppState

__all__ = ["router"]

router = APIRouter(dependencies=[Depends(require_api_key)])


@router.post("/v1/images/generations")
async def create_image(request: Request) -> JSONResponse:
    state: AppState = request.app.state.imageforge
    body = await read_json_object(request, state.settings.max_body_bytes)
    cancel = threading.Event()
    watcher = asyncio.create_task(watch_disconnect(request, cancel))
    try:
        response = await state.images.generate(
            body,
            base_url=base_url(request, state.settings.public_base_url),
            request_id=request_id(request),
            cancel=cancel,
        )
    finally:
        watcher.cancel()
    return JSONResponse(response.model_dump(exclude_none=True))
