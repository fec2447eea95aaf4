"""Rate-limit windows: each limit counts on its own, a refused request is charged nothing, headers as OpenAI's."""

from __future__ import annotations

import pytest

from imageforge.errors import RateLimitError
from imageforge.errors import reset_duration as duration
from imageforge.serving.ratelimit import RateLimiter


def test_requests_and_images_limits_with_equal_numbers_count_separately() -> None:
    # The window store keys by identifiers and amount: without the kind in the key, both limits shared a counter
    # and each 1-image request counted twice.
    limiter = RateLimiter(key_requests=4, key_images=4)
    for _ in range(4):
        states = limiter.check("key_a", None, images=1)
    assert {(s.kind, s.remaining) for s in states} == {("requests", 0), ("images", 0)}
    with pytest.raises(RateLimitError):
        limiter.check("key_a", None, images=1)


def test_a_refused_request_is_not_charged_and_users_are_separate() -> None:
    limiter = RateLimiter(user_images=3)
    limiter.check("k", "alice", images=2)
    with pytest.raises(RateLimitError) as info:
        limiter.check("k", "alice", images=2)  # 2 + 2 > 3: refused, charges nothing
    assert info.value.limits[0].limit == 3 and info.value.limits[0].kind == "images" and info.value.retry_after > 0
    limiter.check("k", "alice", images=1)  # exactly the 1 left
    limiter.check("k", "bob", images=3)
    with pytest.raises(RateLimitError, match="more than the limit allows"):
        limiter.check("k", "carol", images=4)


def test_durations_in_openais_format() -> None:
    assert (duration(0.012), duration(1.5), duration(2), duration(360)) == ("12ms", "1.5s", "2s", "6m0s")
