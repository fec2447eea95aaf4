"""Stored Responses (``store: true``, the default): what ``GET /v1/responses/{id}``, ``previous_response_id``
and item references read, behind one :class:`ResponseStore` protocol with two backends:

- **SQLite** (``responses_sqlite.py``, the default): one file under the data directory, for a single node. It
  must not sit on a network filesystem (its locks do not hold there).
- **PostgreSQL** (``responses_postgres.py``, the ``postgres`` extra): one database every ingress replica shares,
  so any replica can serve a response another one stored (reference D4, issue 18).

A store keeps JSON documents and knows nothing of their schema beyond a few columns: the ``Response`` object as
served, the request's input items (with images inline, so a stored conversation needs nothing else), and every
item by id. Calls block; services run them in a worker thread (DESIGN.md §4.4), so every backend must be safe to
call from any thread.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Protocol

__all__ = ["MAX_CHAIN", "ResponseStore", "StoredTurn", "open_response_store"]

MAX_CHAIN = 1000  # previous_response_id links followed at most (a guard against cycles in a damaged store)

StoredTurn = tuple[list[dict[str, Any]], list[dict[str, Any]]]  # (input items, output items) of one response


class ResponseStore(Protocol):
    """The contract both backends keep (tests/storage/test_responses_store.py runs it against each)."""

    def save(self, response: dict[str, Any], input_items: list[dict[str, Any]]) -> None:
        """Insert or replace a response, its input items and every item with an id (input and output). A
        document that could not be served back (NaN, Infinity) raises ``ValueError`` and nothing is written."""

    def get(self, response_id: str) -> dict[str, Any] | None: ...

    def input_items(self, response_id: str) -> list[dict[str, Any]] | None: ...

    def item(self, item_id: str) -> dict[str, Any] | None: ...

    def chain(self, response_id: str) -> list[StoredTurn] | None:
        """The conversation up to and including ``response_id``, oldest turn first; ``None`` if it is unknown.
        A link to a deleted response ends the chain there (its turns are gone, as on OpenAI)."""

    def delete(self, response_id: str) -> bool:
        """Delete a response and its items; whether it existed."""

    def fail(self, response_id: str, message: str) -> None:
        """Mark one stored response failed (when saving its final state did not work); unknown ids are a no-op."""

    def sweep(self, created_before: float) -> int:
        """Delete the responses created before ``created_before`` (Unix seconds), their input images and items
        with them; returns how many were deleted. Later responses that link to a deleted one keep working: their
        chain ends there."""

    def fail_unfinished(self, message: str) -> int:
        """At start-up: responses left ``in_progress`` (or ``queued``) by a previous process can never finish;
        mark them failed so a client polling ``GET /v1/responses/{id}`` (OpenAI-DotNet does, §7.10) stops
        waiting. Returns how many."""


def open_response_store(
    kind: Literal["sqlite", "postgres"], *, sqlite_path: Path, postgres_dsn: str | None = None
) -> ResponseStore:
    """The configured backend (``responses_store``), its schema created; a :class:`ConfigurationError` names
    the setting that is wrong (a missing DSN, an unreachable database, psycopg not installed)."""
    if kind == "postgres":
        # Imported here: psycopg is an optional extra, and a single-node server never needs it.
        from imageforge.storage.responses_postgres import PostgresResponseStore

        return PostgresResponseStore(postgres_dsn)
    from imageforge.storage.responses_sqlite import SqliteResponseStore

    return SqliteResponseStore(sqlite_path)


def dumps(doc: object) -> str:
    """Strict JSON: a document that could not be served back (NaN, Infinity) is refused here, not when read."""
    return json.dumps(doc, allow_nan=False)


def failed(doc: dict[str, Any], message: str) -> dict[str, Any]:
    """``doc`` as a failed response, with OpenAI's error object."""
    return {**doc, "status": "failed", "error": {"code": "server_error", "message": message}}
