"""Graceful drain: on SIGTERM stop admitting (503 envelope), let in-flight requests finish, then exit 0.

uvicorn's own SIGTERM handling closes the listening socket and gives open requests a grace period, but a client
that connects meanwhile gets a refused connection, not an answer, and the process then re-raises the signal
(exit code 143). Here the first SIGTERM only switches the app to *draining*: new requests get OpenAI's 503
envelope (``server_shutting_down``), ``/ready`` turns 503 so a load balancer stops sending, and in-flight requests
(streams included) run to completion. When none are left, uvicorn is told to exit; the lifespan then closes the
engines and the process exits 0.

When ``drain_timeout_seconds`` passes first, the requests still in flight are ended, each in OpenAI's shape: the
engine jobs they wait for are failed with ``server_shutting_down`` (a 503 envelope, or an in-band ``error``
event in a stream), and a request uvicorn still has to cancel answers that same envelope if it has not started
its response (never uvicorn's plain-text 500). A second SIGTERM, or SIGINT, during the drain exits at once,
without waiting for anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imageforge.api.errors import from_exception
from imageforge.api.paths import FILES_PATH
from imageforge.errors import ShuttingDownError
from imageforge.scheduler.traffic import Traffic

__all__ = ["Drain", "DrainMiddleware", "DrainingServer"]

log = logging.getLogger(__name__)
EXEMPT = frozenset({"/health", "/ready", "/metrics"})  # probes keep answering while draining


class Drain:
    """The admission switch and the count of requests in flight (touched on the event loop thread only; read
    from the drain thread and the engine threads, which a plain int allows). The count is ``traffic``'s, which
    the engine workers share."""

    def __init__(self, traffic: Traffic | None = None) -> None:
        self.draining = False
        self.traffic = traffic if traffic is not None else Traffic()

    @property
    def in_flight(self) -> int:
        return self.traffic.in_flight

    @in_flight.setter
    def in_flight(self, value: int) -> None:
        self.traffic.in_flight = value


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
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started |= message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except asyncio.CancelledError:
            if self.drain.draining and not started:  # cut by the shutdown: still OpenAI's envelope, not a bare 500
                err = ShuttingDownError("The server shut down before this request finished; retry it.")
                with contextlib.suppress(Exception):  # the client may be gone too; the cancellation goes on
                    await from_exception(err)(scope, receive, send)
            raise
        finally:
            self.drain.in_flight -= 1


class DrainingServer(uvicorn.Server):
    CUT_GRACE_S = 5.0  # after the drain timeout, how long the ended requests get to send their last bytes

    def __init__(
        self, config: uvicorn.Config, drain: Drain, timeout_s: float, abort: Callable[[str], None] | None = None
    ) -> None:
        super().__init__(config)
        self.drain = drain
        self.timeout_s = timeout_s
        self.abort = abort  # fails every queued and running engine job (thread-safe)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and not self.drain.draining and not self.should_exit:
            self.drain.draining = True
            log.info("SIGTERM: draining %d request(s) for up to %.0f s", self.drain.in_flight, self.timeout_s)
            threading.Thread(target=self._exit_when_drained, name="drain", daemon=True).start()
            return  # not recorded as a captured signal: the process exits 0 instead of re-raising SIGTERM
        if self.drain.draining and sig in (signal.SIGTERM, signal.SIGINT):
            log.warning("second signal during the drain: exiting now")
            self.force_exit = True  # uvicorn then waits for no connection, task or lifespan step
        super().handle_exit(sig, frame)

    def _exit_when_drained(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        while self.drain.in_flight > 0 and time.monotonic() < deadline and not self.should_exit:
            time.sleep(0.05)
        if self.drain.in_flight and not self.should_exit:
            log.warning("drain timeout: ending %d request(s) still in flight", self.drain.in_flight)
            if self.abort is not None:
                self.abort("The server is shutting down and stopped this request before it finished; retry it.")
            grace = time.monotonic() + self.CUT_GRACE_S
            while self.drain.in_flight > 0 and time.monotonic() < grace and not self.should_exit:
                time.sleep(0.05)
        else:
            log.info("drained; exiting")
        self.should_exit = True
