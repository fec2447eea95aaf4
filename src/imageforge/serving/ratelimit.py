"""Per-API-key and per-end-user rate limits: requests and images per minute, over moving windows.

The windows are kept by the ``limits`` library in the storage that ``rate_limit_storage`` names: ``memory://``
(the default; per process, so N ingress replicas would each allow the limit, N times it in all) or
``redis://host:port/db`` (the ``redis`` extra), which every replica shares, so a limit is the total across them
(reference D4, issue 18). A request is checked against every configured limit before any is charged, so a
refused request costs nothing.

Redis that cannot be reached at start-up is a :class:`ConfigurationError` naming ``rate_limit_storage``; later,
a request whose limits cannot be checked is refused with OpenAI's 503 envelope (``service_unavailable``), never
let through unlimited. The calls are synchronous (the pipeline tests, queues and charges without an ``await`` in
between); short socket timeouts bound how long a dead Redis can hold the event loop. Across replicas, requests
racing in the same instant may each pass the test before either is charged, so the total can exceed a limit by
the number of such racers; each charge itself is atomic (a Lua script in Redis). Refusals are OpenAI's 429
(``rate_limit_exceeded``) carrying the limit that was hit; admitted requests learn where the key's limits stand
(:class:`~imageforge.errors.LimitState`; the API layer writes both as ``x-ratelimit-*`` headers, reference §5.5).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

from limits import RateLimitItemPerMinute
from limits.errors import ConfigurationError as LimitsConfigurationError
from limits.errors import StorageError
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from imageforge.errors import ConfigurationError, LimitState, RateLimitError, ServiceUnavailableError, reset_duration
from imageforge.metrics import Metrics

__all__ = ["RateLimiter"]

log = logging.getLogger(__name__)

_SCHEMES = ("memory", "redis", "rediss", "redis+unix", "redis+sentinel", "redis+cluster")  # the tested ones
_REDIS_TIMEOUT_S = 1.0  # per socket operation: a dead Redis holds a request (and the loop) this long at most
T = TypeVar("T")


@dataclass(frozen=True)
class _Limit:
    scope: str  # "key" or "user"
    kind: str  # "requests" or "images"
    per_minute: int


class RateLimiter:
    def __init__(
        self,
        *,
        key_requests: int | None = None,
        key_images: int | None = None,
        user_requests: int | None = None,
        user_images: int | None = None,
        metrics: Metrics | None = None,
        storage_uri: str = "memory://",
    ) -> None:
        wanted = [("key", "requests", key_requests), ("key", "images", key_images),
                  ("user", "requests", user_requests), ("user", "images", user_images)]  # fmt: skip
        self._limits = [_Limit(scope, kind, n) for scope, kind, n in wanted if n]
        self._items = {lim: RateLimitItemPerMinute(lim.per_minute) for lim in self._limits}
        self._window = MovingWindowRateLimiter(_open_storage(storage_uri, check=bool(self._limits)))
        self._metrics = metrics

    @property
    def enabled(self) -> bool:
        return bool(self._limits)

    def _applicable(self, key_id: str, user: str | None, images: int, requests: int) -> list[tuple[_Limit, str, int]]:
        out = []
        for lim in self._limits:
            who = key_id if lim.scope == "key" else user
            cost = requests if lim.kind == "requests" else images
            if who and cost > 0:
                out.append((lim, who, cost))
        return out

    def test(self, key_id: str, user: str | None, images: int, requests: int = 1) -> None:
        """Raise :class:`RateLimitError` if ``requests`` requests (1, or 0 for the images of a request already
        charged) of ``images`` images would pass a limit; charges nothing."""
        for lim, who, cost in self._applicable(key_id, user, images, requests):
            # keyed by (scope, kind, who) and the amount
            if cost > lim.per_minute or not self._call(self._window.test, lim, who, cost):
                self._refuse(lim, who, cost)

    def hit(self, key_id: str, user: str | None, images: int, requests: int = 1) -> tuple[LimitState, ...]:
        """Charge what :meth:`test` passed; where the key's limits stand now."""
        applicable = self._applicable(key_id, user, images, requests)
        for lim, who, cost in applicable:
            self._call(self._window.hit, lim, who, cost)
        return tuple(self._state(lim, who) for lim, who, _ in applicable if lim.scope == "key")

    def check(self, key_id: str, user: str | None, images: int, requests: int = 1) -> tuple[LimitState, ...]:
        """:meth:`test`, then :meth:`hit`: a refused request costs nothing."""
        self.test(key_id, user, images, requests)
        return self.hit(key_id, user, images, requests)

    def _call(self, method: Callable[..., T], lim: _Limit, who: str, cost: int | None = None) -> T:
        """One call on the window storage; storage that cannot answer refuses the request (503), it never lets
        it through unlimited."""
        extra = {} if cost is None else {"cost": cost}
        try:
            return method(self._items[lim], lim.scope, lim.kind, who, **extra)
        except StorageError as exc:
            log.warning("the rate-limit storage is unreachable: %s", exc)
            raise ServiceUnavailableError("The rate-limit service is unavailable; please try again shortly.") from exc

    def _refuse(self, lim: _Limit, who: str, cost: int) -> None:
        stats = self._call(self._window.get_window_stats, lim, who)
        if cost > lim.per_minute:
            wait = 60.0
            detail = f"this request asks for {cost} {lim.kind}, more than the limit allows in a minute"
        else:
            wait = max(0.001, stats.reset_time - time.time())
            detail = f"{stats.remaining} left in the current window"
        if self._metrics is not None:
            self._metrics.rate_limited.labels(f"{lim.scope}_{lim.kind}").inc()
        whom = "API key" if lim.scope == "key" else "user"
        raise RateLimitError(
            f"Rate limit reached for this {whom} on {lim.kind} per minute: limit {lim.per_minute}, {detail}. "
            f"Please try again in {reset_duration(wait)}.",
            retry_after=wait,
            limits=(LimitState(lim.kind, lim.per_minute, max(0, stats.remaining), wait),),
        )

    def _state(self, lim: _Limit, who: str) -> LimitState:
        stats = self._call(self._window.get_window_stats, lim, who)
        return LimitState(lim.kind, lim.per_minute, max(0, stats.remaining), max(0.0, stats.reset_time - time.time()))


def _open_storage(uri: str, *, check: bool) -> Storage:
    """The window storage ``rate_limit_storage`` names; with ``check``, proved reachable now (start-up)."""
    parts = urlsplit(uri)
    shown = parts._replace(netloc=parts.hostname or "").geturl() if parts.password else uri  # no secrets in logs
    if parts.scheme not in _SCHEMES:
        raise ConfigurationError(
            f"rate_limit_storage {shown!r}: expected memory:// or redis://host:port/db (or {', '.join(_SCHEMES[2:])})"
        )
    redis = parts.scheme != "memory"
    options: dict[str, float | str | bool] = (
        {"socket_timeout": _REDIS_TIMEOUT_S, "socket_connect_timeout": _REDIS_TIMEOUT_S} if redis else {}
    )
    try:
        storage = storage_from_string(uri, wrap_exceptions=True, **options)
    except LimitsConfigurationError as exc:  # the redis package is missing, or the URI is malformed
        raise ConfigurationError(f"rate_limit_storage {shown!r}: {exc} (pip install 'imageforge[redis]')") from exc
    if not isinstance(storage, Storage):  # an async+ scheme; refused above, this tells mypy
        raise ConfigurationError(f"rate_limit_storage {shown!r}: an asynchronous storage is not supported")
    if redis and check and not storage.check():
        raise ConfigurationError(f"rate_limit_storage {shown!r}: cannot reach Redis there")
    return storage
