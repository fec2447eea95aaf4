"""``POST /v1/images/generations`` as an adapter of the generation pipeline: the JSON body is resolved under the
model's rules (``validation.resolve``) into one :class:`~imageforge.serving.pipeline.ImageJob`; the answer is the
Images API's (``images_wire.py``). No HTTP framework here."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from imageforge.protocol.images import parse_request
from imageforge.serving.images_wire import ImagesEndpoint, ImagesRun
from imageforge.serving.pipeline import ImageJob
from imageforge.validation import ResolvedRequest, resolve

__all__ = ["GenerationsService", "log_request"]

log = logging.getLogger(__name__)


def log_request(kind: str, r: ResolvedRequest) -> None:
    p = r.params
    log.info(
        "[%s] %s model=%s size=%s quality=%s n=%d format=%s response=%s moderation=%s end_user=%s stream=%s "
        "partial_images=%d mode=%s",
        p.request_id, kind, r.model, r.size, r.quality, p.n, r.output_format, r.response_format, r.moderation,
        r.end_user, r.stream, r.partial_images, p.mode,
    )  # fmt: skip


class GenerationsService(ImagesEndpoint):
    def resolve(self, body: Mapping[str, Any], request_id: str) -> ResolvedRequest:
        """Validate a request body (raises the named 400s); nothing has been sent to the client yet."""
        resolved = resolve(parse_request(body), self.catalogue, self.capabilities,
                           default_gpt_model=self.default_gpt_model, request_id=request_id)  # fmt: skip
        log_request("generate", resolved)
        return resolved

    async def start(
        self, body: Mapping[str, Any], request_id: str, cancel: threading.Event, *, key_id: str = "-",
        base_url: str = "",
    ) -> ImagesRun:  # fmt: skip
        """Resolve and admit the request: every refusal (400, 429, 503) is raised here, before any byte."""
        resolved = self.resolve(body, request_id)
        job = ImageJob(resolved, prompt=str(body["prompt"]), key_id=key_id, endpoint="images.generations")
        return ImagesRun(job, await self.pipeline.start(job, cancel, base_url=base_url))
