"""A real ``imageforge serve`` process for API tests: its own port and data directory, logs kept for failures."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import openai

READY_TIMEOUT_S = 180.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    base_url: str  # http://127.0.0.1:PORT
    data_dir: Path
    log_path: Path
    api_key: str = "sk-anything"
    proc: subprocess.Popen[bytes] | None = None
    _clients: dict[str, openai.OpenAI] = field(default_factory=dict)

    @property
    def v1(self) -> str:
        return f"{self.base_url}/v1"

    def client(self, api_key: str | None = None) -> openai.OpenAI:
        """One SDK client per key, closed with the server (so no pooled socket outlives the test session)."""
        key = api_key or self.api_key
        if key not in self._clients:
            self._clients[key] = openai.OpenAI(base_url=self.v1, api_key=key, max_retries=0, timeout=300)
        return self._clients[key]

    def close_clients(self) -> None:
        for c in self._clients.values():
            c.close()
        self._clients.clear()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def metrics_page(self) -> str:
        """``/metrics``, read with the server's API key (it needs one whenever the server has keys)."""
        r = httpx.get(f"{self.base_url}/metrics", headers={"authorization": f"Bearer {self.api_key}"}, timeout=10)
        r.raise_for_status()
        return r.text

    def metric(self, name: str, **labels: str) -> float:
        """The sum of a metric's samples in /metrics over the label sets that carry ``labels``."""
        total = 0.0
        for line in self.metrics_page().splitlines():
            if line.startswith(name + "{"):
                head, value = line.rsplit(" ", 1)
                if all(f'{k}="{v}"' in head for k, v in labels.items()):
                    total += float(value)
        return total


def _wait_ready(server: Server, proc: subprocess.Popen[bytes], engines: bool = True) -> None:
    """Until every engine is ready (or, with ``engines=False``, until each has finished loading, even failed)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"imageforge serve exited with {proc.returncode}:\n{server.log()}")
        try:
            health = httpx.get(f"{server.base_url}/health", timeout=2).json()
            states = list(health["engines"].values())
            if states and all(s == "ready" for s in states):
                return
            if not engines and states and all(s == "ready" or s.startswith("failed") for s in states):
                return
            if any(s.startswith("failed") for s in states):
                raise RuntimeError(f"engine failed to load: {health}\n{server.log()}")
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"imageforge serve not ready after {READY_TIMEOUT_S}s:\n{server.log()}")


@contextmanager
def serve(
    data_dir: Path,
    *args: str,
    env: dict[str, str] | None = None,
    api_key: str = "sk-anything",
    engines_ready: bool = True,
) -> Iterator[Server]:
    """Run ``imageforge serve`` until the block ends (SIGINT, then SIGKILL if it hangs).

    The suite's clients send requests in parallel to servers shared by many tests, so test servers let a request
    wait up to 600 s for the work ahead of it (``IMAGEFORGE_MAX_QUEUE_SECONDS``) unless a test sets it (``""``
    keeps the product's default); the time bound is tested on servers of its own (tests/api/test_overload.py)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = Server(f"http://127.0.0.1:{port}", data_dir, data_dir.parent / f"{data_dir.name}-{port}.log", api_key)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEFORGE_")}
    full_env.update(
        {"HF_HUB_OFFLINE": "1", "IMAGEFORGE_THREADS": "2", "IMAGEFORGE_MAX_QUEUE_SECONDS": "600", **(env or {})}
    )
    full_env = {k: v for k, v in full_env.items() if v != ""}  # "" in ``env``: leave the setting at its default
    cmd = [sys.executable, "-m", "imageforge", "serve", "--port", str(port), "--data-dir", str(data_dir), *args]
    with open(server.log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env)
    server.proc = proc
    try:
        _wait_ready(server, proc, engines_ready)
        yield server
    finally:
        server.close_clients()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
