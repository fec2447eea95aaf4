"""The server's app on uvicorn in a thread of the benchmark's own process (so the benchmark can also reach the
app's engines directly), ready once every engine is."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import uvicorn
from fastapi import FastAPI

from imageforge.api.app import create_app
from imageforge.config import Settings

__all__ = ["serve_in_thread"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_in_thread(data_dir: str) -> tuple[str, FastAPI, uvicorn.Server]:
    """(base URL, app, server) of a default server on a free port; ``server.should_exit = True`` stops it."""
    port = _free_port()
    app = create_app(Settings(data_dir=data_dir, port=port, log_level="warning"))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    while True:
        try:
            states = httpx.get(f"{base}/health").json()["engines"].values()
            if states and all(s == "ready" for s in states):
                return base, app, server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
