"""Filesystem image store: atomic writes, names that carry their expiry, and a sweep that deletes expired files.

A stored name is ``<expires unix seconds>-<32 random hex>.<ext>``: the store needs no index to know what has
expired, and nothing the client sent ever becomes part of a path (DESIGN.md §5).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from imageforge.storage.atomic import write_atomic

__all__ = ["FileImageStore", "StoredImage"]

log = logging.getLogger(__name__)
_NAME = re.compile(r"^(\d{1,12})-([0-9a-f]{32})\.(png|jpeg|webp)$")


@dataclass(frozen=True)
class StoredImage:
    name: str
    path: Path
    expires_at: int
    extension: str


class FileImageStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def put(self, data: bytes, extension: str, expires_at: int) -> StoredImage:
        """Write ``data`` atomically (temp file + rename): a reader sees the whole file or none."""
        name = f"{expires_at}-{secrets.token_hex(16)}.{extension}"
        path = self.root / name
        write_atomic(path, data)
        return StoredImage(name, path, expires_at, extension)

    def get(self, name: str, now: float) -> StoredImage | None:
        """The stored image called ``name`` if it exists and has not expired."""
        m = _NAME.match(name)
        if m is None:
            return None
        expires_at = int(m.group(1))
        path = self.root / name
        if expires_at <= now or not path.is_file():
            return None
        return StoredImage(name, path, expires_at, m.group(3))

    def sweep(self, now: float) -> int:
        """Delete expired images (and temp files left by a crash mid-write); returns how many were deleted."""
        deleted = 0
        for entry in os.scandir(self.root):
            m = _NAME.match(entry.name)
            stale_tmp = entry.name.startswith(".") and entry.name.endswith(".tmp")
            expired = m is not None and int(m.group(1)) <= now
            if stale_tmp:
                expired = entry.stat().st_mtime < now - 3600
            if expired:
                try:
                    os.unlink(entry.path)
                    deleted += 1
                except FileNotFoundError:
                    pass
        if deleted:
            log.info("swept %d expired image files", deleted)
        return deleted
