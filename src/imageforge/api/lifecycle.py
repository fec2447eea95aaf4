"""Graceful drain: on SIGTERM stop admitting (503 envelope), let in-flight requests finish, then exit 0.

uvicorn's own SIGTERM handling closes the listening socket and gives open requests a grace period, but a client
that connects meanwhile gets a refused connection, not an answer, and the process then re-raises the signal
(exit code 143). Here the first SIGTERM only switches the app to *draining*: new requests get OpenAI's 503
envelope (``server_shutting_down``), ``/ready`` turns 503 so a load balancer stops sending, and in-flight requests
(streams included) run to completion. When none are left, or after ``drain_timeout_seconds``, uvicorn is told to
exit; the lifespan then closes the engines (cancelling what is still running) and the process exits 0. A second
SIGTERM, or SIGINT, exits at once as uvicorn does.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from imageforge.api.errors import from_exception
from imageforge.errors import ShuttingDownError
from imageforge.serving.images import FILES_PATH

__all__ = ["Drain", "DrainMiddleware", "DrainingServer"]

log = logging.getLogger(__name__)
EXEMPT = frozenset({"/health", "/ready", "/metrics"})  # probes keep answering while draining


class Drain:
    """The admission switch and the count of requests in flight (touched on the event loop thread only; read
    from the drain thread, which a plain int allows)."""

    def __init__(self) -> None:
        self.draining = False
        self.in_flight = 0


class DrainMiddleware:
    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        # Probes keep answering, and images made by requests that finished during the drain stay downloadable.
        if scope["type"] != "http" or path in EXEMPT or path.startswith(FILES_PATH):
            await self.app(scope, receive, send)
            return
        if self.drain.draining:
            err = ShuttingDownError("The server is shutting down and accepts no new requests; retry shortly.")
            await from_exception(err)(scope, receive, send)
            return
        self.drain.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.drain.in_flight -= 1


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, drain: Drain, timeout_s: float) -> None:
        super().__init__(config)
        self.drain = drain
        self.timeout_s = timeout_s

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and not self.drain.draining and not self.should_exit:
            self.drain.draining = True
            log.info("SIGTERM: draining %d request(s) for up to %.0f s", self.drain.in_flight, self.timeout_s)
            threading.Thread(target=self._exit_when_drained, name="drain", daemon=True).start()
            return  # not recorded as a captured signal: the process exits 0 instead of re-raising SIGTERM
        super().handle_exit(sig, frame)

    def _exit_when_drained(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        while self.drain.in_flight > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.drain.in_flight:
            log.warning("drain timeout: %d request(s) still in flight are cut off", self.drain.in_flight)
        else:
            log.info("drained; exiting")
        self.should_exit = True
