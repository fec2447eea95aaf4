"""``GET /v1/images/files/{name}?sig=...``: url-format images, fetched without an API key (like OpenAI's CDN
URLs). The signature and expiry are the credential; a wrong, missing or expired one is a plain 404.

The image comes from the configured image store (a directory or an S3 bucket, ``storage/images.py``), read in a
worker thread, so any replica that shares the store and the signing key serves any replica's URLs."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import Response

from imageforge.api.openapi import answers
from imageforge.api.paths import FILES_PATH
from imageforge.api.state import AppState
from imageforge.errors import NotFoundError
from imageforge.imaging.encode import MEDIA_TYPES

__all__ = ["router"]

router = APIRouter()


_IMAGE = {"schema": {"type": "string", "format": "binary"}}


@router.get(
    FILES_PATH + "/{name}",
    summary="Download a url-format image (the signature is the credential)",
    responses=answers(None, 404, media={m: _IMAGE for m in sorted(set(MEDIA_TYPES.values()))}),
    response_class=Response,
)
async def get_image_file(name: str, request: Request, sig: str = "") -> Response:
    state: AppState = request.app.state.imageforge
    now = state.clock()
    # The signature first: an unsigned name never reaches the store (no disk or network work for junk).
    stored = await asyncio.to_thread(state.store.get, name, now) if sig and state.signer.verify(name, sig) else None
    if stored is None:
        raise NotFoundError("The image does not exist, or its URL has expired.", code="image_not_found")
    max_age = max(0, int(stored.expires_at - now))
    return Response(
        stored.data,
        media_type=stored.media_type,
        # An svg opened from this origin could run script if it held any (ours hold paths only): forbid it anyway.
        headers={
            "cache-control": f"private, max-age={max_age}",
            "x-content-type-options": "nosniff",
            "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
        },
    )
