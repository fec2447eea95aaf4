"""Delivering images: each one is moderated while it is encoded (the one encode path, ``encoding.py``, in its own
pool), then sent as base64 or written to the image store behind a signed URL that expires.

Nothing of a flagged image is returned or stored; with several images, one flagged image refuses them all.
Where a stored image is served from is the API layer's business: it gives a ``link`` function.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from imageforge.serving.audit import RequestAudit
from imageforge.serving.encoding import EncodePool
from imageforge.serving.screening import Screening, level_of
from imageforge.storage.images import ImageStore
from imageforge.storage.signing import UrlSigner
from imageforge.validation import ResolvedRequest

__all__ = ["DeliveredImage", "Delivery", "Link"]

# (base URL, stored name, signature) -> the URL a client fetches the image from
Link = Callable[[str, str, str], str]


@dataclass(frozen=True)
class DeliveredImage:
    b64: str | None = None
    url: str | None = None


def _abandon(future: asyncio.Future[Any]) -> None:
    """Cancel work whose result is no longer wanted; an error it already raised is retrieved, not logged."""
    future.cancel()
    future.add_done_callback(lambda f: f.cancelled() or f.exception())


class Delivery:
    def __init__(
        self,
        screening: Screening,
        encoder: EncodePool,
        store: ImageStore,
        signer: UrlSigner,
        link: Link,
        *,
        url_ttl_seconds: int,
    ) -> None:
        self.screening = screening
        self.encoder = encoder
        self.store = store
        self.signer = signer
        self.link = link
        self.url_ttl_seconds = url_ttl_seconds

    async def deliver(
        self,
        r: ResolvedRequest,
        images: Sequence[Any],
        minor: bool,
        audit: RequestAudit,
        *,
        b64: bool,
        base_url: str = "",
        created: int = 0,
    ) -> list[DeliveredImage]:
        """Moderate and encode ``images``; base64 text, or stored and linked (``b64=False``)."""
        level = level_of(r.moderation)
        if r.frame_count:  # gif: the images are the frames of n animations, one file each (every frame moderated)
            frames = r.frame_count
            jobs = [self.encoder.run(list(images[i : i + frames]), "gif", None, as_b64=b64,
                                     frame_duration_ms=r.frame_duration_ms)
                    for i in range(0, len(images), frames)]  # fmt: skip
        else:
            jobs = [self.encoder.run(im, r.output_format, r.output_compression, as_b64=b64, svg_detail=r.svg_detail)
                    for im in images]  # fmt: skip
        encoding = asyncio.gather(*jobs)
        try:
            await self.screening.outputs(images, level, minor, audit, gpt=r.profile.gpt)
        except BaseException:
            _abandon(encoding)
            raise
        encoded = list(await encoding)
        audit.encode_ms += sum(cpu for _, cpu in encoded) * 1000
        if b64:
            return [DeliveredImage(b64=str(out)) for out, _ in encoded]
        blobs = [out for out, _ in encoded if isinstance(out, bytes)]
        return await asyncio.to_thread(self._store, blobs, r.output_format, base_url, created)

    def _store(self, blobs: list[bytes], extension: str, base_url: str, created: int) -> list[DeliveredImage]:
        """Write url-format images (blocking: disk or network; runs in a thread) and sign their URLs."""
        out = []
        for data in blobs:
            name = self.store.put(data, extension, created + self.url_ttl_seconds)
            out.append(DeliveredImage(url=self.link(base_url, name, self.signer.sign(name))))
        return out
