"""OpenAI's error envelope: ``{"error": {"message", "type", "param", "code"}}`` (reference §5.1).

All four keys are always present (``null`` where empty): the spec lists them as required and SDKs read them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["ErrorBody", "ErrorResponse"]


class ErrorBody(BaseModel):
    # Extra keys travel too: OpenAI's moderation refusals add ``moderation_details`` (reference §5.4).
    model_config = ConfigDict(extra="allow")

    message: str
    """A human-readable description of the error."""
    type: str
    """The error's category, e.g. ``invalid_request_error``."""
    param: str | None = None
    """The request parameter the error is about, if any."""
    code: str | None = None
    """A machine-readable code, e.g. ``invalid_value``, ``unknown_parameter``, ``model_not_found``."""


class ErrorResponse(BaseModel):
    error: ErrorBody
