"""Per-API-key and per-end-user rate limits: requests and images per minute, over moving windows.

The windows are kept by the ``limits`` library (in memory, per process). A request is checked against every
configured limit before any is charged, so a refused request costs nothing. Refusals are OpenAI's 429
(``rate_limit_exceeded``) carrying the limit that was hit; admitted requests learn where the key's limits stand
(:class:`~imageforge.errors.LimitState`; the API layer writes both as ``x-ratelimit-*`` headers, reference §5.5).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from imageforge.errors import LimitState, RateLimitError, reset_duration
from imageforge.metrics import Metrics

__all__ = ["RateLimiter"]


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
    ) -> None:
        wanted = [("key", "requests", key_requests), ("key", "images", key_images),
                  ("user", "requests", user_requests), ("user", "images", user_images)]  # fmt: skip
        self._limits = [_Limit(scope, kind, n) for scope, kind, n in wanted if n]
        self._items = {lim: RateLimitItemPerMinute(lim.per_minute) for lim in self._limits}
        self._window = MovingWindowRateLimiter(MemoryStorage())  # keyed by (scope, kind, who) and the amount
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
            if cost > lim.per_minute or not self._window.test(self._items[lim], lim.scope, lim.kind, who, cost=cost):
                self._refuse(lim, who, cost)

    def hit(self, key_id: str, user: str | None, images: int, requests: int = 1) -> tuple[LimitState, ...]:
        """Charge what :meth:`test` passed; where the key's limits stand now."""
        applicable = self._applicable(key_id, user, images, requests)
        for lim, who, cost in applicable:
            self._window.hit(self._items[lim], lim.scope, lim.kind, who, cost=cost)
        return tuple(self._state(lim, who) for lim, who, _ in applicable if lim.scope == "key")

    def check(self, key_id: str, user: str | None, images: int, requests: int = 1) -> tuple[LimitState, ...]:
        """:meth:`test`, then :meth:`hit`: a refused request costs nothing."""
        self.test(key_id, user, images, requests)
        return self.hit(key_id, user, images, requests)

    def _refuse(self, lim: _Limit, who: str, cost: int) -> None:
        stats = self._window.get_window_stats(self._items[lim], lim.scope, lim.kind, who)
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
        stats = self._window.get_window_stats(self._items[lim], lim.scope, lim.kind, who)
        return LimitState(lim.kind, lim.per_minute, max(0, stats.remaining), max(0.0, stats.reset_time - time.time()))
