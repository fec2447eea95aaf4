"""Rate-limit windows: each limit counts on its own, a refused request is charged nothing, headers as OpenAI's;
the same over ``memory://`` and a real Redis, where two limiters (two ingress replicas) share one count, and a
Redis that goes away refuses requests (503) rather than letting them through."""

from __future__ import annotations

import pytest

from imageforge.errors import ConfigurationError, RateLimitError, ServiceUnavailableError
from imageforge.errors import reset_duration as duration
from imageforge.serving.ratelimit import RateLimiter
from tests.services import free_port, run_redis


@pytest.fixture(params=["memory", "redis"])
def storage(request: pytest.FixtureRequest) -> str:
    return "memory://" if request.param == "memory" else str(request.getfixturevalue("redis_uri"))


def test_requests_and_images_limits_with_equal_numbers_count_separately(storage: str) -> None:
    # The window store keys by identifiers and amount: without the kind in the key, both limits shared a counter
    # and each 1-image request counted twice.
    limiter = RateLimiter(key_requests=4, key_images=4, storage_uri=storage)
    for _ in range(4):
        states = limiter.check("key_a", None, images=1)
    assert {(s.kind, s.remaining) for s in states} == {("requests", 0), ("images", 0)}
    with pytest.raises(RateLimitError):
        limiter.check("key_a", None, images=1)


def test_a_refused_request_is_not_charged_and_users_are_separate(storage: str) -> None:
    limiter = RateLimiter(user_images=3, storage_uri=storage)
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


def test_two_limiters_on_one_redis_share_the_count(redis_uri: str) -> None:
    # Two ingress replicas: a limit of 5 per minute is 5 in all, not 5 each.
    a, b = RateLimiter(key_requests=5, storage_uri=redis_uri), RateLimiter(key_requests=5, storage_uri=redis_uri)
    for limiter in (a, b, a, b):
        limiter.check("key_shared", None, images=1)
    (state,) = b.check("key_shared", None, images=1)
    assert state.remaining == 0
    for limiter in (a, b):
        with pytest.raises(RateLimitError):
            limiter.check("key_shared", None, images=1)
    a.check("key_other", None, images=1)  # another key has its own count


def test_memory_limiters_count_on_their_own() -> None:
    a, b = RateLimiter(key_requests=1), RateLimiter(key_requests=1)
    a.check("k", None, images=1)
    b.check("k", None, images=1)  # per process: the reason a cluster wants Redis
    with pytest.raises(RateLimitError):
        a.check("k", None, images=1)


def test_redis_unreachable_at_start_names_the_setting() -> None:
    pytest.importorskip("redis")
    with pytest.raises(ConfigurationError, match="rate_limit_storage") as info:
        RateLimiter(key_requests=5, storage_uri=f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    assert "hunter2" not in str(info.value)  # the password is never echoed
    with pytest.raises(ConfigurationError, match="rate_limit_storage"):
        RateLimiter(key_requests=5, storage_uri="postgres://127.0.0.1/limits")
    RateLimiter(storage_uri=f"redis://127.0.0.1:{free_port()}/0")  # no limits configured: Redis is never asked


def test_redis_gone_later_refuses_requests_with_a_503() -> None:
    with run_redis() as server:
        limiter = RateLimiter(key_requests=5, user_images=5, storage_uri=server.uri)
        limiter.check("k", "alice", images=1)
        server.stop()
        for call in (lambda: limiter.check("k", "alice", images=1), lambda: limiter.test("k", None, images=1)):
            with pytest.raises(ServiceUnavailableError) as info:  # never a traceback, never let through
                call()
            assert info.value.status == 503 and info.value.code == "service_unavailable"
