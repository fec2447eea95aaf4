"""A real ImageForge server on a catalogue of the ladder's own, on uvicorn in a thread of this process (as
``benchmarks/inprocess.py``, which serves only the default catalogue): the engines run here, on this GPU."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

__all__ = ["RunningServer", "catalogue_toml", "serve_catalogue"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def catalogue_toml(model_id: str, options: dict[str, Any]) -> str:
    """A catalogue serving only ``model_id``: a diffusers engine with ``options``, under the ``imageforge``
    profile (GPT-style parameters, any size from 16 px)."""
    lines = [
        "include_defaults = false",
        f"[models.{json.dumps(model_id)}]",
        'engine = "diffusers"',
        'profile = "imageforge"',
        f"[models.{json.dumps(model_id)}.options]",
    ]
    lines += [f"{key} = {_toml_value(value)}" for key, value in options.items()]
    return "\n".join(lines) + "\n"


@dataclass
class RunningServer:
    base: str  # http://127.0.0.1:PORT
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def v1(self) -> str:
        return f"{self.base}/v1"

    def stop(self) -> None:
        """Shut down (the app's lifespan closes the engines) and wait for the thread."""
        self.server.should_exit = True
        self.thread.join(120)


def serve_catalogue(toml: str, work: Path, *, ready_timeout_s: float = 900.0, **settings: Any) -> RunningServer:
    """Serve the catalogue ``toml`` (written into ``work``) until ``stop()``; returns once every engine is ready,
    raises if one fails to load. ``settings`` are further ``imageforge.config.Settings`` fields."""
    from imageforge.api.app import create_app
    from imageforge.config import Settings

    work.mkdir(parents=True, exist_ok=True)
    path = work / "models.toml"
    path.write_text(toml)
    port = _free_port()
    app = create_app(Settings(config=path, data_dir=work / "data", port=port, log_level="warning", **settings))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="imageforge-server", daemon=True)
    thread.start()
    running = RunningServer(f"http://127.0.0.1:{port}", server, thread)
    deadline = time.monotonic() + ready_timeout_s
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise RuntimeError("the server thread exited before it was ready")
        try:
            states = dict(httpx.get(f"{running.base}/health", timeout=5).json()["engines"])
        except (httpx.HTTPError, KeyError, ValueError):
            states = {}
        failed = {name: s for name, s in states.items() if str(s).startswith("failed")}
        if failed:
            running.stop()
            raise RuntimeError(f"engine failed to load: {failed}")
        if states and all(s == "ready" for s in states.values()):
            return running
        time.sleep(0.2)
    running.stop()
    raise RuntimeError(f"server not ready after {ready_timeout_s:.0f} s")
