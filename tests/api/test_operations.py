"""Operations (issue 15): a second SIGTERM exits at once, a drain timeout ends cut requests in OpenAI's shape, a
model that cannot load answers 503, stored responses expire, and /metrics needs a key when the server has keys.
Real server processes on the fake engine; ordering and outcomes are asserted, never durations."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.api.server import Server, serve

CATALOGUE = """
include_defaults = false
[models."gpt-image-1"]
engine = "fake"
profile = "gpt-image-1"
options = { step_delay = 0.1, quality_steps = { low = 2, medium = 4, high = 1000 } }
"""
SLOW = {"model": "gpt-image-1", "prompt": "slow", "quality": "high", "size": "1024x1024"}


def _config(tmp: Path, text: str = CATALOGUE) -> Path:
    path = tmp / "models.toml"
    path.write_text(text)
    return path


def _until(check: Any, what: str, limit_s: float = 60) -> None:
    deadline = time.monotonic() + limit_s
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen"
        time.sleep(0.05)


def _running(s: Server, jobs: int) -> None:
    _until(lambda: s.metric("imageforge_running_jobs") >= jobs, f"{jobs} running job(s)")


def test_a_second_sigterm_exits_at_once(tmp_path: Path) -> None:
    with serve(tmp_path / "data", "--config", str(_config(tmp_path)), "--drain-timeout", "600",
               "--no-moderation-output") as s:  # fmt: skip
        assert s.proc is not None
        cut: list[BaseException] = []

        def slow() -> None:
            try:
                httpx.post(f"{s.v1}/images/generations", json=SLOW, timeout=300)
            except httpx.HTTPError as exc:  # the connection goes with the process
                cut.append(exc)

        t = threading.Thread(target=slow)
        t.start()
        _running(s, 1)
        s.proc.send_signal(signal.SIGTERM)
        _until(lambda: httpx.get(f"{s.base_url}/ready", timeout=10).status_code == 503, "draining")
        s.proc.send_signal(signal.SIGTERM)
        s.proc.wait(timeout=30)  # the job has ~100 s to go and the drain 600 s: neither was waited for
        assert s.proc.returncode is not None
        t.join(30)
        assert cut, "the in-flight request was not waited for"


def test_a_drain_timeout_ends_cut_requests_with_the_envelope(tmp_path: Path) -> None:
    with serve(tmp_path / "data", "--config", str(_config(tmp_path)), "--drain-timeout", "1",
               "--batch-wait-ms", "2000", "--batch-wait-alone", "--no-moderation-output") as s:  # fmt: skip
        assert s.proc is not None
        got: dict[str, Any] = {}

        def plain() -> None:
            got["plain"] = httpx.post(f"{s.v1}/images/generations", json=SLOW, timeout=300)

        def streamed() -> None:
            body = {**SLOW, "stream": True, "partial_images": 0}
            with httpx.stream("POST", f"{s.v1}/images/generations", json=body, timeout=300) as r:
                got["stream_status"] = r.status_code
                got["stream"] = r.read().decode()

        threads = [threading.Thread(target=plain), threading.Thread(target=streamed)]
        for t in threads:
            t.start()
        _running(s, 2)  # one batch: the two arrived within its 2 s wait
        s.proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(120)
        s.proc.wait(timeout=60)
        assert s.proc.returncode == 0
    r = got["plain"]
    assert r.status_code == 503 and r.headers["content-type"].startswith("application/json")
    assert r.json()["error"]["code"] == "server_shutting_down" and r.headers["x-request-id"].startswith("req_")
    assert got["stream_status"] == 200
    frames = [f for f in got["stream"].split("\n\n") if f.startswith("event: ")]
    event, data = frames[-1].split("\n", 1)
    assert event == "event: error"
    assert json.loads(data.removeprefix("data: "))["error"]["code"] == "server_shutting_down"


def test_a_model_that_cannot_load_answers_503(tmp_path: Path) -> None:
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"\x80\x04 a pickle")
    config = _config(tmp_path, f"""
include_defaults = false
[models."gpt-image-1"]
engine = "diffusers"
profile = "gpt-image-1"
options = {{ model = "{ckpt}" }}
""")  # fmt: skip
    with serve(tmp_path / "data", "--config", str(config), engines_ready=False) as s:
        r = httpx.post(f"{s.v1}/images/generations", json={**SLOW, "quality": "low"}, timeout=60)
        assert r.status_code == 503, r.text
        error = r.json()["error"]
        assert error["code"] == "engine_unavailable" and "could not be loaded" in error["message"]
        assert r.headers["x-should-retry"] == "false"  # it will not load on a retry either
        assert "safetensors" in error["message"]
        assert httpx.get(f"{s.base_url}/ready", timeout=10).status_code == 503


def test_stored_responses_expire_after_the_retention(tmp_path: Path) -> None:
    env = {"IMAGEFORGE_RESPONSES_RETENTION_SECONDS": "2", "IMAGEFORGE_SWEEP_INTERVAL_SECONDS": "0.2"}
    with serve(tmp_path / "data", "--config", str(_config(tmp_path)), env=env) as s:
        client = s.client()
        stored = client.responses.create(model="gpt-5", input="hello")
        assert client.responses.retrieve(stored.id).id == stored.id

        def gone() -> bool:
            return httpx.get(f"{s.v1}/responses/{stored.id}", timeout=10).status_code == 404

        _until(gone, "the sweep of an expired response")
        r = httpx.post(f"{s.v1}/responses", json={"model": "gpt-5", "input": "more", "previous_response_id": stored.id})
        assert r.status_code == 400 and r.json()["error"]["code"] == "previous_response_not_found"


def test_metrics_needs_a_key_whenever_the_server_has_one(tmp_path: Path) -> None:
    env = {"IMAGEFORGE_API_KEYS": "sk-user-000000001"}
    with serve(tmp_path / "data", "--config", str(_config(tmp_path)), "--metrics-key", "scrape-secret-1", env=env,
               api_key="sk-user-000000001") as s:  # fmt: skip
        url = f"{s.base_url}/metrics"
        anonymous = httpx.get(url, timeout=10)
        assert anonymous.status_code == 401 and anonymous.json()["error"]["type"] == "invalid_request_error"
        assert httpx.get(url, headers={"authorization": "Bearer wrong-key-123"}, timeout=10).status_code == 401
        for key in ("sk-user-000000001", "scrape-secret-1"):
            assert httpx.get(url, headers={"authorization": f"Bearer {key}"}, timeout=10).status_code == 200
        # The metrics key is for /metrics only.
        r = httpx.get(f"{s.v1}/models", headers={"authorization": "Bearer scrape-secret-1"}, timeout=10)
        assert r.status_code == 401
    with serve(tmp_path / "open", "--config", str(_config(tmp_path)), "--metrics-key", "scrape-secret-2") as s:
        assert httpx.get(f"{s.base_url}/metrics", timeout=10).status_code == 401  # /v1 open, /metrics not
        assert httpx.get(f"{s.v1}/models", timeout=10).status_code == 200
