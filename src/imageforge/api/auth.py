"""Bearer-key checks with OpenAI's 401 envelopes (reference §5.3).

With keys configured every key is compared in constant time (digests, all of them, no early exit); with none
configured any key, or none, is accepted (``imageforge serve`` then refuses to bind a non-loopback address).
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request

from imageforge.errors import AuthenticationError

__all__ = ["ApiKeys", "require_api_key"]


class ApiKeys:
    def __init__(self, keys: list[str]) -> None:
        self._digests = [hashlib.sha256(k.encode()).digest() for k in keys]

    @property
    def required(self) -> bool:
        return bool(self._digests)

    def check(self, authorization: str | None) -> None:
        if not self._digests:
            return
        scheme, _, key = (authorization or "").partition(" ")
        key = key.strip()
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


async def require_api_key(request: Request) -> None:
    keys: ApiKeys = request.app.state.api_keys
    keys.check(request.headers.get("authorization"))
