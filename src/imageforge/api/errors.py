"""The one mapping from ImageForge's error tree (and the framework's own errors) to OpenAI's JSON envelope.

Validation failures are 400, never FastAPI's 422 (reference §5.1). Deterministic client errors carry
``x-should-retry: false`` so the OpenAI SDKs do not retry them; 429 carries ``Retry-After`` and the
``x-ratelimit-*`` headers of the limit that was hit.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from imageforge.errors import EngineUnavailableError, ImageForgeError, LimitState, RateLimitError, reset_duration
from imageforge.protocol.errors import ErrorBody, ErrorResponse

__all__ = ["error_response", "install_error_handlers", "limit_headers"]

log = logging.getLogger(__name__)
_NO_RETRY = {400, 401, 403, 404, 405, 413, 415, 422, 499, 504}  # 504: the same work would time out again


class _ErrorJSONResponse(JSONResponse):
    """An error body can always be written: text that is not valid Unicode (which input validation refuses, but
    an error may still quote) is escaped rather than failing the error response itself."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def error_response(
    status: int,
    message: str,
    type_: str,
    param: str | None = None,
    code: str | None = None,
    extra: dict[str, object] | None = None,
) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(message=message, type=type_, param=param, code=code, **(extra or {})))
    headers = {"x-should-retry": "false"} if status in _NO_RETRY else {}
    return _ErrorJSONResponse(body.model_dump(), status_code=status, headers=headers)


def from_exception(exc: ImageForgeError) -> JSONResponse:
    resp = error_response(exc.status, exc.message, exc.type, exc.param, exc.code, exc.extra)
    if isinstance(exc, EngineUnavailableError):  # a model that did not load will not load on a retry either
        resp.headers["x-should-retry"] = "false"
    if isinstance(exc, RateLimitError):
        # The SDKs read retry-after-ms first, then retry-after (whole seconds, rounded up).
        resp.headers["retry-after"] = str(max(1, math.ceil(exc.retry_after)))
        resp.headers["retry-after-ms"] = str(max(1, math.ceil(exc.retry_after * 1000)))
        resp.headers.update(limit_headers(exc.limits))
    return resp


def limit_headers(limits: Iterable[LimitState]) -> dict[str, str]:
    """OpenAI's ``x-ratelimit-*`` headers (reference §5.5): plain integers, durations like ``6m0s``."""
    out = {}
    for state in limits:
        if state.limit is not None:
            out[f"x-ratelimit-limit-{state.kind}"] = str(state.limit)
        out[f"x-ratelimit-remaining-{state.kind}"] = str(state.remaining)
        out[f"x-ratelimit-reset-{state.kind}"] = reset_duration(state.reset_seconds)
    return out


async def _imageforge_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ImageForgeError)
    if exc.status >= 500:
        log.error("[%s] %r", getattr(request.state, "request_id", "-"), exc)
    return from_exception(exc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
    param = ".".join(loc) or None
    return error_response(400, f"Invalid value for '{param}': {first.get('msg', 'invalid')}.", "invalid_request_error",
                          param, "invalid_value")  # fmt: skip


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        message = f"Invalid URL ({request.method} {request.url.path})"
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed for {request.url.path}."
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, message, "invalid_request_error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ImageForgeError, _imageforge_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
