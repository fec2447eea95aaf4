"""Engine work stays off the event loop: the server answers while it generates, a full queue answers 429 at once,
and a client that goes away cancels its job. Ordering is asserted, never timing."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.api.server import Server, serve

SLOW = {"model": "gpt-image-1", "prompt": "a red heart", "size": "1536x1024", "quality": "high", "n": 2}


@pytest.fixture(scope="module")
def small_queue(tmp_path_factory: pytest.TempPathFactory) -> Server:
    with serve(tmp_path_factory.mktemp("queue") / "data", env={"IMAGEFORGE_QUEUE_LIMIT": "1"}) as s:
        yield s  # type: ignore[misc]


def _wait_for_log(server: Server, text: str, count: int = 1) -> None:
    deadline = time.monotonic() + 120
    while server.log().count(text) < count:
        assert time.monotonic() < deadline, f"{text!r} never appeared in the log"
        time.sleep(0.05)


def _wait_for_metric(server: Server, name: str, value: float) -> None:
    deadline = time.monotonic() + 120
    while server.metric(name) != value:
        assert time.monotonic() < deadline, f"{name} never reached {value}"
        time.sleep(0.05)


def test_server_answers_while_generating_and_a_full_queue_is_429(small_queue: Server) -> None:
    """Queue limit 1: one job runs, one waits, the third is refused at once with OpenAI's 429."""
    events: list[str] = []

    def slow(i: int) -> None:
        r = httpx.post(f"{small_queue.v1}/images/generations", json={**SLOW, "prompt": f"a red heart {i}"},
                       timeout=300)  # fmt: skip
        events.append(f"generation {r.status_code}")

    running = threading.Thread(target=slow, args=(1,))
    running.start()
    _wait_for_metric(small_queue, "imageforge_running_jobs", 1)  # the first job is with the engine
    waiting = threading.Thread(target=slow, args=(2,))
    waiting.start()
    _wait_for_metric(small_queue, "imageforge_queue_depth", 1)  # the second waits for it
    models = small_queue.client().models.list()
    events.append("models")
    with pytest.raises(openai.RateLimitError) as info:
        small_queue.client().images.generate(model="gpt-image-1", prompt="a cat", quality="low")
    events.append("429")
    with pytest.raises(openai.RateLimitError):  # a stream is refused the same way, before any event
        small_queue.client().images.generate(model="gpt-image-1", prompt="a cat", quality="low", stream=True)
    running.join()
    waiting.join()
    assert models.data and events == ["models", "429", "generation 200", "generation 200"]
    assert info.value.code == "rate_limit_exceeded" and info.value.type == "requests"
    headers = info.value.response.headers
    assert int(headers["retry-after"]) >= 1 and int(headers["retry-after-ms"]) >= 1
    assert headers["x-ratelimit-limit-requests"] == "1" and headers["x-ratelimit-remaining-requests"] == "0"
    assert "queued" in info.value.message
    assert small_queue.metric("imageforge_rate_limited_total") >= 1


def test_a_client_that_goes_away_cancels_its_job(small_queue: Server) -> None:
    before = small_queue.log().count("cancelled: the client went away")
    started = small_queue.log().count("generate model=")

    def abandon() -> None:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{small_queue.v1}/images/generations", json={**SLOW, "n": 4}, timeout=httpx.Timeout(5, read=1))

    t = threading.Thread(target=abandon)
    t.start()
    _wait_for_log(small_queue, "generate model=", started + 1)
    t.join()
    _wait_for_log(small_queue, "cancelled: the client went away", before + 1)
    # The engine is free again: the next request is served.
    r = small_queue.client().images.generate(model="gpt-image-1", prompt="a cat", quality="low")
    assert r.data and r.data[0].b64_json


def test_requests_wait_their_turn(tmp_path: Path, server: Server) -> None:
    results: list[int] = []

    def one(i: int) -> None:
        r = httpx.post(
            f"{server.v1}/images/generations",
            json={"model": "gpt-image-1", "prompt": f"a heart {i}", "quality": "low"},
            timeout=300,
        )
        results.append(r.status_code)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert results == [200, 200, 200]
