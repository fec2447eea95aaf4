"""Streaming events of ``POST /v1/responses`` with the image tool (reference §4.3-4.4).

Each is one SSE frame: ``event: <type>`` then one ``data:`` line holding this JSON (OpenAI-DotNet dispatches on
the ``event:`` line and reads exactly one ``data:`` line, §7.10). ``sequence_number`` is given by the stream,
counting from 0 on ``response.created``. Names copy the SDK's.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel

from imageforge.protocol.responses import OutputItem, OutputText, Response

__all__ = [
    "RESPONSE_STREAM_EVENTS",
    "ResponseCompletedEvent",
    "ResponseContentPartAddedEvent",
    "ResponseContentPartDoneEvent",
    "ResponseCreatedEvent",
    "ResponseErrorEvent",
    "ResponseEvent",
    "ResponseFailedEvent",
    "ResponseImageGenCallCompletedEvent",
    "ResponseImageGenCallGeneratingEvent",
    "ResponseImageGenCallInProgressEvent",
    "ResponseImageGenCallPartialImageEvent",
    "ResponseInProgressEvent",
    "ResponseOutputItemAddedEvent",
    "ResponseOutputItemDoneEvent",
    "ResponseTextDeltaEvent",
    "ResponseTextDoneEvent",
]


class _Event(BaseModel):
    sequence_number: int = 0


class ResponseCreatedEvent(_Event):
    type: Literal["response.created"] = "response.created"
    response: Response


class ResponseInProgressEvent(_Event):
    type: Literal["response.in_progress"] = "response.in_progress"
    response: Response


class ResponseCompletedEvent(_Event):
    type: Literal["response.completed"] = "response.completed"
    response: Response


class ResponseFailedEvent(_Event):
    type: Literal["response.failed"] = "response.failed"
    response: Response


class ResponseOutputItemAddedEvent(_Event):
    type: Literal["response.output_item.added"] = "response.output_item.added"
    output_index: int
    item: OutputItem


class ResponseOutputItemDoneEvent(_Event):
    type: Literal["response.output_item.done"] = "response.output_item.done"
    output_index: int
    item: OutputItem


class _ImageCallEvent(_Event):
    item_id: str
    output_index: int


class ResponseImageGenCallInProgressEvent(_ImageCallEvent):
    type: Literal["response.image_generation_call.in_progress"] = "response.image_generation_call.in_progress"


class ResponseImageGenCallGeneratingEvent(_ImageCallEvent):
    type: Literal["response.image_generation_call.generating"] = "response.image_generation_call.generating"


class ResponseImageGenCallPartialImageEvent(_ImageCallEvent):
    type: Literal["response.image_generation_call.partial_image"] = "response.image_generation_call.partial_image"
    partial_image_index: int
    """0-based index of this partial image."""
    partial_image_b64: str
    """A complete image of the denoising in progress, in the requested format and size."""
    background: str
    output_format: str
    quality: str
    size: str


class ResponseImageGenCallCompletedEvent(_ImageCallEvent):
    """Carries no image: the image is in the ``response.output_item.done`` that follows."""

    type: Literal["response.image_generation_call.completed"] = "response.image_generation_call.completed"


class _ContentEvent(_Event):
    item_id: str
    output_index: int
    content_index: int = 0


class ResponseContentPartAddedEvent(_ContentEvent):
    type: Literal["response.content_part.added"] = "response.content_part.added"
    part: OutputText


class ResponseContentPartDoneEvent(_ContentEvent):
    type: Literal["response.content_part.done"] = "response.content_part.done"
    part: OutputText


class ResponseTextDeltaEvent(_ContentEvent):
    type: Literal["response.output_text.delta"] = "response.output_text.delta"
    delta: str
    logprobs: list[object] = []


class ResponseTextDoneEvent(_ContentEvent):
    type: Literal["response.output_text.done"] = "response.output_text.done"
    text: str
    logprobs: list[object] = []


class ResponseErrorEvent(_Event):
    """An error after the stream started (reference §4.3): its fields at the top level, numbered like the rest."""

    type: Literal["error"] = "error"
    code: str | None
    message: str
    param: str | None = None


ResponseEvent = (
    ResponseCreatedEvent
    | ResponseInProgressEvent
    | ResponseCompletedEvent
    | ResponseFailedEvent
    | ResponseOutputItemAddedEvent
    | ResponseOutputItemDoneEvent
    | ResponseImageGenCallInProgressEvent
    | ResponseImageGenCallGeneratingEvent
    | ResponseImageGenCallPartialImageEvent
    | ResponseImageGenCallCompletedEvent
    | ResponseContentPartAddedEvent
    | ResponseContentPartDoneEvent
    | ResponseTextDeltaEvent
    | ResponseTextDoneEvent
)

# Every event a Responses stream can carry (the served schema's union).
RESPONSE_STREAM_EVENTS: tuple[type[BaseModel], ...] = (*get_args(ResponseEvent), ResponseErrorEvent)
