"""``GET /v1/models`` shapes (reference §6): ``Model`` and the list page the SDK's ``SyncPage`` reads."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

__all__ = ["Model", "ModelList"]


class Model(BaseModel):
    id: str
    """The model identifier, which can be referenced in the API endpoints."""
    object: Literal["model"] = "model"
    created: int
    """The Unix timestamp (in seconds) when the model was created."""
    owned_by: str
    """The organization that owns the model."""


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]
