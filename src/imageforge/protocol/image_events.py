"""Image stream events (reference §2.2): ``image_generation.partial_image`` and ``image_generation.completed``.

Each is sent as one SSE frame: ``event: <type>`` then one ``data:`` line holding this JSON (which repeats the
name in ``type``). Names copy the SDK's (``ImageGenPartialImageEvent``, ``ImageGenCompletedEvent``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from imageforge.protocol.errors import ErrorBody
from imageforge.protocol.images import Usage

__all__ = ["ImageGenCompletedEvent", "ImageGenPartialImageEvent", "StreamErrorEvent"]


class ImageGenPartialImageEvent(BaseModel):
    type: Literal["image_generation.partial_image"] = "image_generation.partial_image"
    b64_json: str
    """The partial image: a complete, decodable image of the denoising in progress."""
    partial_image_index: int
    """0-based index of this partial image."""
    created_at: int
    size: str
    quality: str
    background: str
    output_format: str


class ImageGenCompletedEvent(BaseModel):
    type: Literal["image_generation.completed"] = "image_generation.completed"
    b64_json: str
    created_at: int
    size: str
    quality: str
    background: str
    output_format: str
    usage: Usage


class StreamErrorEvent(BaseModel):
    """An error after the stream started (reference §2.5): the SDKs raise on the top-level ``error`` key, which
    holds the same object as a JSON error response (``moderation_details`` included for a refusal)."""

    type: Literal["error"] = "error"
    error: ErrorBody
