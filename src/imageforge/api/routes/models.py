"""``GET /v1/models`` and ``GET /v1/models/{model}``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from imageforge.api.auth import require_api_key
from imageforge.api.openapi import answers
from imageforge.api.state import AppState
from imageforge.protocol.models import Model, ModelList

__all__ = ["router"]

router = APIRouter(dependencies=[Depends(require_api_key)])


@router.get("/v1/models", summary="List the served models", responses=answers(ModelList, 401))
async def list_models(request: Request) -> JSONResponse:
    state: AppState = request.app.state.imageforge
    return JSONResponse(state.models.list().model_dump())


@router.get("/v1/models/{model_id:path}", summary="Retrieve a model", responses=answers(Model, 401, 404))
async def get_model(model_id: str, request: Request) -> JSONResponse:
    state: AppState = request.app.state.imageforge
    return JSONResponse(state.models.get(model_id).model_dump())
