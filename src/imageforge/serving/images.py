"""``POST /v1/images/generations`` as a service: fields in, ``ImagesResponse`` out; no HTTP framework here.

1. ``validation.resolve`` turns the body into frozen ``GenerationParams`` for the chosen model's profile.
2. The model's :class:`~imageforge.scheduler.worker.EngineWorker` runs the engine off the event loop.
3. Images are encoded (one encode path, in a worker thread) and returned as base64, or stored and returned as
   signed URLs that expire.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from imageforge.config import Catalogue
from imageforge.errors import GenerationCancelled
from imageforge.imaging.encode import encode
from imageforge.params import GenerationResult
from imageforge.protocol.images import Image, ImagesResponse
from imageforge.scheduler.pool import EnginePool
from imageforge.serving.usage import TokenCounter, usage_for
from imageforge.storage.files import FileImageStore
from imageforge.storage.signing import UrlSigner
from imageforge.validation import ResolvedRequest, resolve

__all__ = ["FILES_PATH", "ImagesService"]

log = logging.getLogger(__name__)
FILES_PATH = "/v1/images/files"  # where url-format images are served (api/routes/files.py)


class ImagesService:
    def __init__(
        self,
        catalogue: Catalogue,
        engines: EnginePool,
        store: FileImageStore,
        signer: UrlSigner,
        tokens: TokenCounter,
        *,
        url_ttl_seconds: int,
        default_gpt_model: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.catalogue = catalogue
        self.engines = engines
        self.store = store
        self.signer = signer
        self.tokens = tokens
        self.url_ttl_seconds = url_ttl_seconds
        self.default_gpt_model = default_gpt_model
        self.clock = clock

    async def generate(
        self, body: Mapping[str, Any], *, base_url: str, request_id: str, cancel: threading.Event
    ) -> ImagesResponse:
        resolved = resolve(
            body,
            self.catalogue,
            self.engines.capabilities,
            default_gpt_model=self.default_gpt_model,
            request_id=request_id,
        )
        p = resolved.params
        log.info(
            "[%s] generate model=%s size=%s quality=%s n=%d format=%s response=%s moderation=%s end_user=%s",
            request_id, resolved.model, resolved.size, resolved.quality, p.n, resolved.output_format,
            resolved.response_format, resolved.moderation, resolved.end_user,
        )  # fmt: skip
        try:
            result = await self.engines.worker(resolved.model).generate(p, cancel)
        except GenerationCancelled:
            log.info("[%s] cancelled: the client went away", request_id)
            raise
        created = int(self.clock())
        data = await asyncio.to_thread(self._deliver, resolved, result, base_url, created)
        response = ImagesResponse(created=created, data=data)
        if resolved.profile.gpt:
            response.background = p.background
            response.output_format = resolved.output_format
            response.quality = resolved.quality
            response.size = resolved.size
            response.safety_identifier = body.get("safety_identifier") or None
        if resolved.profile.returns_usage:
            text_tokens = await asyncio.to_thread(self.tokens.count, body["prompt"])
            response.usage = usage_for(text_tokens, resolved.quality, p.width, p.height, p.n)
        return response

    def _deliver(self, r: ResolvedRequest, result: GenerationResult, base_url: str, created: int) -> list[Image]:
        """Encode every image (blocking; runs in a thread) and wrap it as base64 or as a stored, signed URL."""
        revised = result.prompt if r.profile.returns_revised_prompt else None
        out = []
        for image in result.images:
            data = encode(image, r.output_format, r.output_compression)
            if r.response_format == "url":
                stored = self.store.put(data, r.output_format, created + self.url_ttl_seconds)
                url = f"{base_url.rstrip('/')}{FILES_PATH}/{stored.name}?sig={self.signer.sign(stored.name)}"
                out.append(Image(url=url, revised_prompt=revised))
            else:
                out.append(Image(b64_json=base64.b64encode(data).decode("ascii"), revised_prompt=revised))
        return out
