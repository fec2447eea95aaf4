"""The Images API's side of a pipeline run (generations, edits, variations): ``ImagesResponse`` for a plain
request, the ``image_generation.*`` or ``image_edit.*`` events of a stream (reference §2.2, §11.3).

The three endpoints differ in how a request is resolved; what they answer is the same shape, written here once.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from imageforge.config import Catalogue
from imageforge.errors import LimitState
from imageforge.params import EngineCapabilities
from imageforge.protocol.image_events import (
    ImageEditCompletedEvent,
    ImageEditPartialImageEvent,
    ImageGenCompletedEvent,
    ImageGenPartialImageEvent,
)
from imageforge.protocol.images import Image, ImagesResponse, SvgUsage, Usage
from imageforge.serving.pipeline import Failed, Final, GenerationPipeline, ImageJob, KeepAlive, Preview, Started
from imageforge.serving.usage import usage_for

__all__ = ["ImagesEndpoint", "ImagesRun", "StreamItem"]

StreamItem = BaseModel | KeepAlive

SVG_TRACER = "vtracer"  # what svg_usage.model names: the vectoriser that made the svg


class ImagesEndpoint:
    """What the three Images API adapters share: the pipeline they run on and the models they serve."""

    def __init__(self, pipeline: GenerationPipeline, catalogue: Catalogue, *, default_gpt_model: str = "gpt-image-1"):
        self.pipeline = pipeline
        self.catalogue = catalogue
        self.default_gpt_model = default_gpt_model

    def capabilities(self, model: str) -> EngineCapabilities:
        return self.pipeline.gateway.capabilities(model)


@dataclass
class ImagesRun:
    """An admitted Images API request: its limits, and either its events or its response."""

    job: ImageJob
    started: Started
    events_of: Literal["generation", "edit"] = "generation"

    @property
    def stream(self) -> bool:
        return self.job.request.stream

    @property
    def limits(self) -> tuple[LimitState, ...]:
        return self.started.limits

    async def response(self) -> ImagesResponse:
        final = await self.started.final()
        r, p = self.job.request, self.job.request.params
        revised = final.revised_prompt if r.profile.returns_revised_prompt else None
        response = ImagesResponse(
            created=final.created_at,
            data=[Image(b64_json=d.b64, url=d.url, revised_prompt=revised) for d in final.images],
        )
        if r.profile.gpt:
            response.background = p.background
            response.output_format = r.output_format
            response.quality = r.quality
            response.size = r.size
            response.safety_identifier = r.safety_identifier
            if r.output_format == "svg":  # traced, not written by a language model: no tokens (SvgUsage)
                response.svg_usage = SvgUsage(input_tokens=0, output_tokens=0, reasoning_tokens=0, total_tokens=0,
                                              model=SVG_TRACER)  # fmt: skip
        if r.profile.returns_usage:
            response.usage = self._usage(final)
        return response

    def _usage(self, final: Final) -> Usage:
        p = self.job.request.params
        return usage_for(final.text_tokens, self.job.request.quality, p.width, p.height, p.n, final.input_image_tokens)

    async def events(self) -> AsyncGenerator[StreamItem]:
        """The stream's wire events; a failure after the start is raised (the SSE layer writes it in-band)."""
        r, p = self.job.request, self.job.request.params
        edit = self.events_of == "edit"
        async with aclosing(self.started.events) as events:
            async for event in events:
                if isinstance(event, KeepAlive):
                    yield event
                elif isinstance(event, Preview):
                    partial = ImageEditPartialImageEvent if edit else ImageGenPartialImageEvent
                    yield partial(b64_json=event.b64, partial_image_index=event.index, created_at=event.created_at,
                                  size=r.size, quality=r.quality, background=p.background,
                                  output_format=r.output_format)  # fmt: skip
                elif isinstance(event, Final):
                    done = ImageEditCompletedEvent if edit else ImageGenCompletedEvent
                    yield done(b64_json=str(event.images[0].b64), created_at=event.created_at,
                               usage=self._usage(event), safety_identifier=r.safety_identifier, size=r.size,
                               quality=r.quality, background=p.background, output_format=r.output_format)  # fmt: skip
                elif isinstance(event, Failed):
                    raise event.error
