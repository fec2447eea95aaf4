"""The serving core through a real server process and the official SDK, on the fake engine (the server's own
logic): per-key and per-user rate limits with OpenAI's headers, faults that leave the server serving, /metrics,
/ready, the audit log, and a SIGTERM drain. Ordering and counts are asserted, never timing."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from imageforge.metrics import hashed_user
from tests.api.server import Server, serve

CATALOGUE = """
[models."fake-fast"]
engine = "fake"
profile = "gpt-image-1"
options = { fail_on = "explode", oom_above = 2 }

[models."fake-slow"]
engine = "fake"
profile = "gpt-image-1"
options = { step_delay = 0.05, quality_steps = { low = 2, medium = 4, high = 60 } }
"""


def _catalogue(tmp: Path) -> Path:
    path = tmp / "models.toml"
    path.write_text(CATALOGUE)
    return path


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("core")
    env = {
        "IMAGEFORGE_API_KEYS": "sk-alpha-0000000001,sk-beta-0000000002",
        "IMAGEFORGE_KEY_REQUESTS_PER_MINUTE": "5",
        "IMAGEFORGE_USER_IMAGES_PER_MINUTE": "2",
    }
    with serve(tmp / "data", "--config", str(_catalogue(tmp)), env=env, api_key="sk-alpha-0000000001") as s:
        yield s


def test_per_key_request_limit_answers_429_with_openai_headers(limited: Server) -> None:
    beta = limited.client("sk-beta-0000000002")
    raw = beta.images.with_raw_response.generate(model="fake-fast", prompt="one", quality="low")
    assert raw.headers["x-ratelimit-limit-requests"] == "5" and raw.headers["x-ratelimit-remaining-requests"] == "4"
    for i in range(4):
        beta.images.generate(model="fake-fast", prompt=f"more {i}", quality="low")
    with pytest.raises(openai.RateLimitError) as info:
        beta.images.generate(model="fake-fast", prompt="four", quality="low")
    err = info.value
    assert err.code == "rate_limit_exceeded" and err.type == "requests" and "requests per minute" in err.message
    assert 1 <= int(err.response.headers["retry-after"]) <= 60
    assert err.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert err.response.headers["x-ratelimit-reset-requests"].endswith("s")
    # The other key is not affected.
    assert limited.client().images.generate(model="fake-fast", prompt="alpha", quality="low").data


def test_per_user_image_limit_counts_images_across_keys(limited: Server) -> None:
    alpha = limited.client()
    alpha.images.generate(model="fake-fast", prompt="u", quality="low", n=2, user="end-user-7")
    with pytest.raises(openai.RateLimitError) as info:
        alpha.images.generate(model="fake-fast", prompt="u", quality="low", user="end-user-7")
    assert "user on images per minute" in info.value.message
    assert info.value.response.headers["x-ratelimit-limit-images"] == "2"
    # Another end-user still gets images; the refused request was not charged to the key's window either.
    assert alpha.images.generate(model="fake-fast", prompt="u", quality="low", user="end-user-8").data
    assert limited.metric("imageforge_rate_limited_total", reason="user_images") >= 1


def test_engine_error_and_out_of_memory_fail_only_that_request(limited: Server) -> None:
    # Its own key, so the per-key window of the other tests does not interfere.
    with serve(limited.data_dir.parent / "faults", "--config", str(limited.data_dir.parent / "models.toml")) as s:
        client = s.client()
        with pytest.raises(openai.InternalServerError) as info:
            client.images.generate(model="fake-fast", prompt="please explode", quality="low")
        assert info.value.status_code == 500 and info.value.type == "server_error"
        with pytest.raises(openai.InternalServerError) as oom:
            client.images.generate(model="fake-fast", prompt="too many", quality="low", n=3)
        assert oom.value.code == "out_of_memory" and "3 image(s)" in oom.value.message
        assert client.images.generate(model="fake-fast", prompt="still serving", quality="low").data
        assert s.metric("imageforge_images_total", model="fake-fast", outcome="error") == 1
        assert s.metric("imageforge_images_total", model="fake-fast", outcome="out_of_memory") == 3
        assert s.metric("imageforge_images_total", model="fake-fast", outcome="ok") == 1


def test_metrics_ready_and_the_audit_log(limited: Server) -> None:
    before = limited.metric("imageforge_usage_images_total", user=hashed_user("audited-user"))
    limited.client().images.generate(model="fake-fast", prompt="a secret prompt text", quality="low",
                                     user="audited-user")  # fmt: skip
    assert limited.metric("imageforge_usage_images_total", user=hashed_user("audited-user")) == before + 1
    assert limited.metric("imageforge_usage_pixels_total", user=hashed_user("audited-user")) == 1024 * 1024
    for name in ("imageforge_batch_images_count", "imageforge_queue_seconds_count", "imageforge_run_seconds_count",
                 "imageforge_encode_seconds_count", "imageforge_request_seconds_count"):  # fmt: skip
        assert limited.metric(name) >= 1, name
    assert httpx.get(f"{limited.base_url}/ready", timeout=10).status_code == 200
    lines = [json.loads(line.split(" imageforge.audit: ", 1)[1]) for line in limited.log().splitlines()
             if " imageforge.audit: " in line]  # fmt: skip
    mine = [rec for rec in lines if rec["user"] == "audited-user"]
    assert mine and mine[-1]["outcome"] == "ok" and mine[-1]["n"] == 1 and mine[-1]["size"] == "1024x1024"
    assert mine[-1]["key_id"].startswith("key_") and "sk-alpha" not in limited.log()
    assert {"queue_ms", "run_ms", "encode_ms", "total_ms", "request_id", "model"} <= set(mine[-1])
    assert "a secret prompt text" not in limited.log(), "no prompt text at INFO"


def test_sigterm_drains_in_flight_requests_refuses_new_ones_and_exits_0(tmp_path: Path) -> None:
    with serve(tmp_path / "data", "--config", str(_catalogue(tmp_path))) as s:
        assert s.proc is not None
        outcome: dict[str, object] = {}

        def slow() -> None:  # 60 steps x 50 ms: in flight when SIGTERM comes
            outcome["slow"] = s.client().images.generate(model="fake-slow", prompt="slow", quality="high", n=1)

        t = threading.Thread(target=slow)
        t.start()
        deadline = time.monotonic() + 60
        while s.metric("imageforge_running_jobs") < 1:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        s.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while httpx.get(f"{s.base_url}/ready", timeout=10).status_code != 503:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with (  # the client is closed here: a pooled socket left to the GC warns at teardown (an error here)
            openai.OpenAI(base_url=s.v1, api_key="sk-x", max_retries=0) as client,
            pytest.raises(openai.InternalServerError) as info,
        ):
            client.images.generate(model="fake-fast", prompt="new", quality="low")
        assert info.value.status_code == 503 and info.value.code == "server_shutting_down"
        assert t.is_alive() or "slow" in outcome
        t.join(60)
        assert "slow" in outcome, "the in-flight request finished"
        assert s.proc.wait(timeout=60) == 0
