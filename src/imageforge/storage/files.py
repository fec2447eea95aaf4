"""Filesystem image store: atomic writes, names that carry their expiry, and a sweep that deletes expired files.

Images live flat in one directory under their stored name (``images.py``): the store needs no index to know what
has expired, and only a name that parses becomes part of a path. Several replicas may share the directory (NFS,
CephFS): writes are temp file + rename in that directory, and sweeping is idempotent.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from imageforge.storage.atomic import write_atomic
from imageforge.storage.images import StoredImage, new_name, parse_name

__all__ = ["FileImageStore"]

log = logging.getLogger(__name__)
_STALE_TMP_SECONDS = 3600  # a temp file this old was left by a crash mid-write, not by a writer still at work


class FileImageStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def put(self, data: bytes, extension: str, expires_at: int) -> str:
        """Write ``data`` atomically (temp file + rename): a reader sees the whole file or none."""
        name = new_name(extension, expires_at).name
        write_atomic(self.root / name, data)
        return name

    def get(self, name: str, now: float) -> StoredImage | None:
        """The stored image called ``name`` if it exists and has not expired."""
        parsed = parse_name(name)
        if parsed is None or parsed.expires_at <= now:
            return None
        try:
            data = (self.root / parsed.name).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        return StoredImage(parsed.name, parsed.expires_at, parsed.extension, data)

    def sweep(self, now: float) -> int:
        """Delete expired images (and temp files left by a crash mid-write); returns how many were deleted."""
        deleted = 0
        for entry in os.scandir(self.root):
            parsed = parse_name(entry.name)
            if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                expired = entry.stat().st_mtime < now - _STALE_TMP_SECONDS
            else:
                expired = parsed is not None and parsed.expires_at <= now
            if expired:
                try:
                    os.unlink(entry.path)
                    deleted += 1
                except FileNotFoundError:  # another replica swept it first
                    pass
        if deleted:
            log.info("swept %d expired image files", deleted)
        return deleted
