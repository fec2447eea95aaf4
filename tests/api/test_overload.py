"""The default time bound of the queue through a real server (issue 15): a burst beyond what can be served within
1.5x of a request's own run time gets OpenAI's 429 at once, with ``Retry-After`` saying when there will be room,
and the admitted requests are served. Outcomes are asserted, never durations (those are in benchmarks/)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.api.server import Server, serve

CATALOGUE = """
include_defaults = false
[models."gpt-image-1"]
engine = "fake"
profile = "gpt-image-1"
options = { step_delay = 0.05, max_batch = 1, quality_steps = { low = 2, medium = 4, high = 60 } }
"""
BODY = {"model": "gpt-image-1", "prompt": "a red heart", "quality": "medium", "size": "1024x1024"}


@pytest.fixture(scope="module")
def default_bound(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("overload")
    (tmp / "models.toml").write_text(CATALOGUE)
    env = {"IMAGEFORGE_MAX_QUEUE_SECONDS": ""}  # the product's default: a quarter of a request's run time
    with serve(tmp / "data", "--config", str(tmp / "models.toml"), "--no-moderation-output", env=env) as s:
        yield s


def test_a_burst_beyond_the_time_bound_is_refused_with_retry_after(default_bound: Server) -> None:
    url = f"{default_bound.v1}/images/generations"
    assert httpx.post(url, json=BODY, timeout=60).status_code == 200  # the engine's cost is now measured
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: httpx.post(url, json=BODY, timeout=60), range(8)))
    codes = [r.status_code for r in answers]
    assert set(codes) <= {200, 429} and 200 in codes and 429 in codes, codes
    for r in answers:
        if r.status_code == 429:
            error = r.json()["error"]
            assert error["code"] == "rate_limit_exceeded" and "budget" in error["message"]
            assert int(r.headers["retry-after"]) >= 1 and int(r.headers["retry-after-ms"]) >= 1
            assert "x-should-retry" not in r.headers  # the SDKs retry it, after Retry-After
        else:
            assert r.json()["data"][0]["b64_json"]
    assert default_bound.metric("imageforge_rate_limited_total", reason="queue_time") == codes.count(429)


def test_a_request_refused_for_time_uses_no_rate_limit_quota(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Refused before the rate limits are charged: while a long request runs, a burst is refused for time, and the
    key's quota afterwards is what the served requests left of it."""
    tmp = tmp_path_factory.mktemp("quota")
    (tmp / "models.toml").write_text(CATALOGUE)
    env = {"IMAGEFORGE_MAX_QUEUE_SECONDS": "", "IMAGEFORGE_KEY_REQUESTS_PER_MINUTE": "6"}
    with serve(tmp / "data", "--config", str(tmp / "models.toml"), "--no-moderation-output", env=env) as s:
        url = f"{s.v1}/images/generations"
        slow_body = {**BODY, "quality": "high"}
        for body in (BODY, slow_body):  # both costs measured; 4 requests left
            assert httpx.post(url, json=body, timeout=120).status_code == 200
        with ThreadPoolExecutor(9) as pool:
            slow = pool.submit(httpx.post, url, json=slow_body, timeout=120)  # 3 left
            deadline = time.monotonic() + 60
            while s.metric("imageforge_running_jobs") < 1:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            burst = [r.status_code for r in pool.map(lambda _: httpx.post(url, json=BODY, timeout=60), range(8))]
            assert slow.result().status_code == 200
        assert burst == [429] * 8
        for _ in range(3):
            assert httpx.post(url, json=BODY, timeout=60).status_code == 200
        over = httpx.post(url, json=BODY, timeout=60)
        assert over.status_code == 429 and "requests per minute" in over.json()["error"]["message"]
