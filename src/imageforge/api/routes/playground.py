"""``GET /``: the playground page, and its static assets under ``/playground/`` (``src/imageforge/web/``).

Files only: the page talks to the public API from the browser with the key its user types, so it holds no secret
and needs no key to load. Kept out of ``/openapi.json``. Assets are revalidated on every load (``no-cache`` with
an ETag, answered 304 when unchanged), so an upgraded server never runs a stale script; the content security
policy lets the page load nothing from anywhere but this server.
"""

from __future__ import annotations

import functools
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles

__all__ = ["ASSETS_PATH", "router"]

ASSETS_PATH = "/playground"
_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_HEADERS = {
    "cache-control": "no-cache",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
}

router = APIRouter(include_in_schema=False)


@functools.cache
def _directory() -> Path:
    return Path(str(files("imageforge.web") / "playground"))


@functools.cache
def _static() -> StaticFiles:
    return StaticFiles(directory=_directory())


@router.api_route("/", methods=["GET", "HEAD"])
async def playground_page() -> FileResponse:
    return FileResponse(_directory() / "index.html", media_type=_MEDIA_TYPES[".html"], headers=_HEADERS)


@router.api_route(ASSETS_PATH + "/{name}", methods=["GET", "HEAD"])
async def playground_asset(name: str, request: Request) -> Response:
    """One file of the page; StaticFiles refuses paths outside the folder and answers conditional requests."""
    response = await _static().get_response(name, request.scope)  # a missing file raises a 404
    response.headers.update(_HEADERS)
    media_type = _MEDIA_TYPES.get(Path(name).suffix)
    if media_type is not None and response.status_code == 200:
        response.headers["content-type"] = media_type
    return response
