"""Per-API-key and per-end-user rate limits: requests and images per minute, over moving windows.

The windows are kept by the ``limits`` library (in memory, per process). A request is checked against every
configured limit before any is charged, so a refused request costs nothing. Refusals are OpenAI's 429
(``rate_limit_exceeded``) with ``Retry-After`` and the ``x-ratelimit-*`` headers of the limit that was hit;
admitted requests carry the headers of the key's limits (reference §5.5: plain integers, durations like ``6m0s``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from imageforge.errors import RateLimitError, reset_duration
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

    def check(self, key_id: str, user: str | None, images: int) -> dict[str, str]:
        """Charge one request of ``images`` images, or raise :class:`RateLimitError` without charging anything.
        Returns the ``x-ratelimit-*`` headers of the key's limits after this request."""
        applicable: list[tuple[_Limit, str]] = []
        for lim in self._limits:
            who = key_id if lim.scope == "key" else user
            if who and (lim.kind == "requests" or images > 0):
                applicable.append((lim, who))
        for lim, who in applicable:
            cost = 1 if lim.kind == "requests" else images
            item = self._items[lim]
            if cost > lim.per_minute or not self._window.test(item, lim.scope, lim.kind, who, cost=cost):
                self._refuse(lim, who, cost)
        for lim, who in applicable:
            self._window.hit(self._items[lim], lim.scope, lim.kind, who, cost=1 if lim.kind == "requests" else images)
        return self._headers([(lim, who) for lim, who in applicable if lim.scope == "key"])

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
            headers={
                f"x-ratelimit-limit-{lim.kind}": str(lim.per_minute),
                f"x-ratelimit-remaining-{lim.kind}": str(max(0, stats.remaining)),
                f"x-ratelimit-reset-{lim.kind}": reset_duration(wait),
            },
        )

    def _headers(self, applicable: list[tuple[_Limit, str]]) -> dict[str, str]:
        out = {}
        for lim, who in applicable:
            stats = self._window.get_window_stats(self._items[lim], lim.scope, lim.kind, who)
            out[f"x-ratelimit-limit-{lim.kind}"] = str(lim.per_minute)
            out[f"x-ratelimit-remaining-{lim.kind}"] = str(max(0, stats.remaining))
            out[f"x-ratelimit-reset-{lim.kind}"] = reset_duration(max(0.0, stats.reset_time - time.time()))
        return out
