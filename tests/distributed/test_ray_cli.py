"""``imageforge serve --backend ray``: the command starts a Ray cluster on this machine, deploys the embedded model
and serves OpenAI's API through Serve's proxy until SIGTERM."""

from __future__ import annotations

import base64
import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest
from PIL import Image

from tests.distributed.conftest import poll_ready
from tests.services import free_port, unavailable

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_serve_backend_ray_serves_the_embedded_model_and_stops_on_sigterm(tmp_path: Path) -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        unavailable("ray[serve] is not installed (pip install -e '.[test]')")
    port = free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "IMAGEFORGE_RAY_INGRESS_CPUS": "0.25"}
    env.pop("RAY_ADDRESS", None)
    cmd = [sys.executable, "-m", "imageforge", "serve", "--backend", "ray", "--port", str(port),
           "--data-dir", str(tmp_path / "data"), "--threads", "1"]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:

        def alive() -> None:
            assert proc.poll() is None, log.read_text(errors="replace")

        poll_ready(base, check=alive)
        assert "on Ray Serve" in log.read_text(errors="replace")
        health = httpx.get(f"{base}/health", timeout=10).json()
        assert [r["deployment"] for r in health["replicas"] if r["kind"] == "engine"] == ["engine-imageforge-emoji"]
        with openai.OpenAI(base_url=f"{base}/v1", api_key="sk-any", max_retries=0, timeout=300) as client:
            r = client.images.generate(model="gpt-image-1", prompt="a red apple", quality="low", size="1024x1024")
        img = Image.open(io.BytesIO(base64.b64decode(r.data[0].b64_json or "")))
        assert img.size == (1024, 1024)
        assert len(img.convert("RGB").getcolors(1 << 24) or []) > 16, "a real drawing, not a flat placeholder"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 0, log.read_text(errors="replace")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
