"""Bearer-key checks with OpenAI's 401 envelopes (reference §5.3).

With keys configured every key is compared in constant time (digests, all of them, no early exit); with none
configured any key, or none, is accepted (``imageforge serve`` then refuses to bind a non-loopback address).
Each caller is known by a *key id*, ``key_`` and the first 12 hex digits of the key's SHA-256, in metrics, rate
limits and the audit log; the key itself is never logged.
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request

from imageforge.errors import AuthenticationError

__all__ = ["ApiKeys", "key_id", "require_api_key"]


class ApiKeys:
    def __init__(self, keys: list[str]) -> None:
        self._digests = [hashlib.sha256(k.encode()).digest() for k in keys]

    @property
    def required(self) -> bool:
        return bool(self._digests)

    def check(self, authorization: str | None) -> str:
        """The caller's key id (``anonymous`` with no key when none are required); 401 for a wrong key."""
        scheme, _, key = (authorization or "").partition(" ")
        key = key.strip() if scheme.lower() == "bearer" else ""
        if not self._digests:
            return "anonymous"  # any token is accepted, so a token names no one (and must not mint labels)
        if scheme.lower() != "bearer" or not key:
            raise AuthenticationError(
                "You didn't provide an API key. You need to provide your API key in an Authorization header using "
                "Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            )
        digest = hashlib.sha256(key.encode()).digest()
        ok = False
        for expected in self._digests:
            ok |= hmac.compare_digest(digest, expected)
        if not ok:
            shown = f"{key[:3]}{'*' * 4}{key[-4:]}" if len(key) > 8 else "*" * len(key)
            raise AuthenticationError(f"Incorrect API key provided: {shown}.", code="invalid_api_key")
        return _key_id(digest)


def _key_id(digest: bytes) -> str:
    return f"key_{digest.hex()[:12]}"


def key_id(request: Request) -> str:
    """The key id ``require_api_key`` recorded for this request."""
    return str(getattr(request.state, "key_id", "anonymous"))


async def require_api_key(request: Request) -> None:
    keys: ApiKeys = request.app.state.api_keys
    request.state.key_id = keys.check(request.headers.get("authorization"))
