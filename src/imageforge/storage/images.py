"""The image store protocol: where ``response_format=url`` images live until their signed URL expires.

Two backends implement it: :class:`~imageforge.storage.files.FileImageStore` (a directory, local or shared over
NFS/CephFS) and :class:`~imageforge.storage.s3.S3ImageStore` (any S3-compatible object store), so a URL minted by
one replica can be fetched through another (issue 18). Both hand clients the same kind of name,
``<expires unix seconds>-<32 random hex>.<ext>``: it carries its own expiry, so no index is needed to know what has
expired, and it is parsed by one pattern here before any backend turns it into a path or a key, so nothing a client
sends ever reaches the file system or the bucket unchecked (DESIGN.md §5).

Every method blocks (disk or network): callers run them in worker threads, never on the event loop.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from imageforge.errors import ServiceUnavailableError

if TYPE_CHECKING:
    from imageforge.config import Settings

__all__ = [
    "MEDIA_TYPES",
    "ImageName",
    "ImageStore",
    "ImageStoreError",
    "StoredImage",
    "new_name",
    "open_image_store",
    "parse_name",
]

MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif",
               "svg": "image/svg+xml"}  # fmt: skip
# Up to 12 digits of expiry (year 33658), 128 random bits, one of the formats the encoder writes.
_NAME = re.compile(r"^(\d{1,12})-([0-9a-f]{32})\.(png|jpeg|webp|gif|svg)$")


class ImageStoreError(ServiceUnavailableError, OSError):
    """The shared object store failed (unreachable, refused, throttled). A request that needs it gets OpenAI's 503
    envelope (``service_unavailable``); and it is an ``OSError``, as a local disk's failures are, so the sweeper
    treats both backends alike (logs it and tries again on its next round)."""


@dataclass(frozen=True)
class ImageName:
    """A stored name, parsed: it is valid by construction."""

    name: str
    expires_at: int
    extension: str


def parse_name(name: str) -> ImageName | None:
    """The parsed name, or None for anything the stores never hand out (a path, another extension, junk)."""
    m = _NAME.match(name)
    if m is None:
        return None
    return ImageName(name, int(m.group(1)), m.group(3))


def new_name(extension: str, expires_at: int) -> ImageName:
    """A fresh name: 128 random bits from ``secrets``, so concurrent writers (any replica) never collide."""
    name = f"{expires_at}-{secrets.token_hex(16)}.{extension}"
    parsed = parse_name(name)
    if parsed is None:
        raise ValueError(f"cannot store an image as {extension!r} expiring at {expires_at}")
    return parsed


@dataclass(frozen=True)
class StoredImage:
    """One image read back from a store: its bytes, and what the files route needs to answer with them.

    The bytes are read whole (in the worker thread that called ``get``): an image is a few MiB at most, a whole
    read leaves nothing open if the client goes away, and a sweep that deletes the file meanwhile cannot cut a
    response short."""

    name: str
    expires_at: int
    extension: str
    data: bytes

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.extension]


class ImageStore(Protocol):
    """Where url-format images live. Every method blocks; call it from a worker thread."""

    def put(self, data: bytes, extension: str, expires_at: int) -> str:
        """Store ``data`` whole (a reader sees all of it or nothing) and return its new name."""
        ...

    def get(self, name: str, now: float) -> StoredImage | None:
        """The image called ``name``; None if the name is malformed, the image is missing, or it has expired."""
        ...

    def sweep(self, now: float) -> int:
        """Delete expired images; returns how many were deleted. Idempotent: replicas may sweep concurrently."""
        ...


def open_image_store(settings: Settings) -> ImageStore:
    """The store the settings name, checked now: a bad bucket or endpoint fails at start-up, not at a request."""
    # Imported here: each backend imports this module, and boto3 is needed only for s3.
    if settings.image_store == "s3":
        from imageforge.storage.s3 import S3ImageStore

        return S3ImageStore(
            settings.s3_bucket or "",
            prefix=settings.s3_prefix,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
        )
    from imageforge.storage.files import FileImageStore

    return FileImageStore(settings.image_store_path or settings.data_dir / "images")
