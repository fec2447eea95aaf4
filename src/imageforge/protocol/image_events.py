"""Image stream events (reference §2.2, §11.3): ``image_generation.partial_image`` / ``.completed`` and, for
edits, ``image_edit.partial_image`` / ``.completed``.

Each is sent as one SSE frame: ``event: <type>`` then one ``data:`` line holding this JSON (which repeats the
name in ``type``). Names copy the SDK's (``ImageGenPartialImageEvent``, ``ImageGenCompletedEvent``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from imageforge.protocol.errors import ErrorBody
from imageforge.protocol.images import Usage

__all__ = [
    "ImageEditCompletedEvent",
    "ImageEditPartialImageEvent",
    "ImageGenCompletedEvent",
    "ImageGenPartialImageEvent",
    "StreamErrorEvent",
]


class _ImageEvent(BaseModel):
    """What every image stream event carries (generations and edits alike, reference §2.2 and §11.3)."""

    b64_json: str
    """The image: a complete, decodable image of the requested size and format."""
    created_at: int
    size: str
    quality: str
    background: str
    output_format: str


class _PartialImage(_ImageEvent):
    partial_image_index: int
    """0-based index of this partial image (the denoising in progress)."""


class _Completed(_ImageEvent):
    usage: Usage
    """For an edit, input tokens count the prompt's text and the input images."""
    safety_identifier: str | None = None
    """The end-user id the request gave, echoed (newest SDK)."""


class ImageGenPartialImageEvent(_PartialImage):
    type: Literal["image_generation.partial_image"] = "image_generation.partial_image"


class ImageGenCompletedEvent(_Completed):
    type: Literal["image_generation.completed"] = "image_generation.completed"


class ImageEditPartialImageEvent(_PartialImage):
    """A partial image of an edit stream (``POST /v1/images/edits`` with ``stream``)."""

    type: Literal["image_edit.partial_image"] = "image_edit.partial_image"


class ImageEditCompletedEvent(_Completed):
    type: Literal["image_edit.completed"] = "image_edit.completed"


class StreamErrorEvent(BaseModel):
    """An error after the stream started (reference §2.5): the SDKs raise on the top-level ``error`` key, which
    holds the same object as a JSON error response (``moderation_details`` included for a refusal)."""

    type: Literal["error"] = "error"
    error: ErrorBody
