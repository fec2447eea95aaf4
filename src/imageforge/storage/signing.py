"""Signed image URLs: an HMAC over the stored image's name, keyed by the ``url_signing_key`` setting or, without
it, by a secret kept in the data directory.

The name already carries the expiry and 128 random bits (``files.py``), so a URL cannot be guessed; the signature
makes any edit (a later expiry, another name) detectable. The key persists across restarts, so URLs handed out
before a restart keep working until they expire. Several replicas must share one key (a URL minted by one is
fetched through another), so a cluster sets ``url_signing_key`` from its secret store.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from imageforge.config import decode_signing_key

if TYPE_CHECKING:
    from imageforge.config import Settings

__all__ = ["UrlSigner", "load_or_create_key", "signing_key"]

_KEY_BYTES = 32


def load_or_create_key(path: Path) -> bytes:
    """The signing key at ``path``; created (mode 0600, atomically) on first use."""
    try:
        key = path.read_bytes()
        if len(key) >= _KEY_BYTES:
            return key
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_bytes(_KEY_BYTES))
    try:
        os.link(tmp, path)  # fails if another process created it meanwhile: theirs wins, so all agree
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_bytes()


def signing_key(settings: Settings) -> bytes:
    """The configured key (every replica the same), else this data directory's key file."""
    if settings.url_signing_key is not None:
        return decode_signing_key(settings.url_signing_key.get_secret_value())
    return load_or_create_key(settings.data_dir / "url-signing.key")


class UrlSigner:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def sign(self, name: str) -> str:
        return hmac.new(self._key, name.encode(), hashlib.sha256).hexdigest()

    def verify(self, name: str, signature: str) -> bool:
        # compare_digest refuses non-ASCII str (TypeError); a signature is hex, so anything else is simply wrong.
        if not signature.isascii():
            return False
        return hmac.compare_digest(self.sign(name), signature)
