"""How many requests are inside the server right now: counted where they enter (the HTTP layer), read by the
engine workers, which wait for batch partners only while some other request could still become one."""

from __future__ import annotations

__all__ = ["Traffic"]


class Traffic:
    """A plain counter: changed on the event loop thread only, read from engine threads (an int read is atomic)."""

    def __init__(self) -> None:
        self.in_flight = 0
