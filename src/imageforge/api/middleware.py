"""Every response carries ``x-request-id`` (the SDKs surface it as ``request_id``), and an exception that escaped
every handler still becomes OpenAI's 500 envelope rather than a bare text page.

Behind a proxy that already writes the header (Ray Serve's always does: the client's own id, or a uuid), the app
adopts that id (``adopt``) and adds no header of its own, so a client sees exactly one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imageforge.api.errors import error_response
from imageforge.ids import new_id

__all__ = ["RequestIdMiddleware"]

log = logging.getLogger(__name__)


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp, adopt: Callable[[Scope], str | None] | None = None) -> None:
        self.app = app
        self.adopt = adopt  # the id the proxy in front will send; None: mint one and send it here

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        adopted = self.adopt(scope) if self.adopt is not None else None
        request_id = adopted or new_id("req")
        scope.setdefault("state", {})["request_id"] = request_id
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if adopted:
                    await send(message)
                    return
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("[%s] unhandled error", request_id)
            if started:
                raise
            resp = error_response(500, "The server had an error while processing your request.", "server_error")
            await resp(scope, receive, send_with_id)
