"""Stored Responses (``store: true``, the default): SQLite under the data directory, so ``GET /v1/responses/{id}``,
``previous_response_id`` and item references work across restarts.

The store keeps JSON documents and knows nothing of their schema beyond a few columns: the ``Response`` object as
served, the request's input items (with images inline, so a stored conversation needs nothing else), and every
item by id. Calls block (SQLite); services run them in a worker thread. Each call opens its own connection, so
any thread may call; WAL lets readers and the writer work at once.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

__all__ = ["ResponseStore", "StoredTurn"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    status TEXT NOT NULL,
    previous_response_id TEXT,
    body TEXT NOT NULL,
    input TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    response_id TEXT NOT NULL REFERENCES responses(id) ON DELETE CASCADE,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS items_by_response ON items(response_id);
CREATE INDEX IF NOT EXISTS responses_by_created ON responses(created_at);
"""
MAX_CHAIN = 1000  # previous_response_id links followed at most (a guard against cycles in a damaged file)

StoredTurn = tuple[list[dict[str, Any]], list[dict[str, Any]]]  # (input items, output items) of one response


class ResponseStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30)) as db:
            db.execute("PRAGMA foreign_keys=ON")
            with db:  # one transaction: committed on success, rolled back on error
                yield db

    def save(self, response: dict[str, Any], input_items: list[dict[str, Any]]) -> None:
        """Insert or replace a response, its input items and every item with an id (input and output)."""
        items = [i for i in (*input_items, *response.get("output", ())) if i.get("id")]
        with self._connect() as db:
            db.execute("DELETE FROM items WHERE response_id = ?", (response["id"],))
            db.execute(
                "INSERT OR REPLACE INTO responses (id, created_at, status, previous_response_id, body, input) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    response["id"],
                    response["created_at"],
                    response["status"],
                    response.get("previous_response_id"),
                    _dumps(response),
                    _dumps(input_items),
                ),
            )
            db.executemany(
                "INSERT OR REPLACE INTO items (id, response_id, body) VALUES (?, ?, ?)",
                [(i["id"], response["id"], _dumps(i)) for i in items],
            )

    def get(self, response_id: str) -> dict[str, Any] | None:
        with self._connect() as db:
            row = db.execute("SELECT body FROM responses WHERE id = ?", (response_id,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def input_items(self, response_id: str) -> list[dict[str, Any]] | None:
        with self._connect() as db:
            row = db.execute("SELECT input FROM responses WHERE id = ?", (response_id,)).fetchone()
        return None if row is None else list(json.loads(row[0]))

    def item(self, item_id: str) -> dict[str, Any] | None:
        with self._connect() as db:
            row = db.execute("SELECT body FROM items WHERE id = ?", (item_id,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def chain(self, response_id: str) -> list[StoredTurn] | None:
        """The conversation up to and including ``response_id``, oldest turn first; ``None`` if it is unknown.
        A link to a deleted response ends the chain there (its turns are gone, as on OpenAI)."""
        turns: list[StoredTurn] = []
        current: str | None = response_id
        with self._connect() as db:
            while current is not None and len(turns) < MAX_CHAIN:
                row = db.execute(
                    "SELECT body, input, previous_response_id FROM responses WHERE id = ?", (current,)
                ).fetchone()
                if row is None:
                    if not turns:
                        return None
                    break
                turns.append((json.loads(row[1]), json.loads(row[0]).get("output", [])))
                current = row[2]
        turns.reverse()
        return turns

    def delete(self, response_id: str) -> bool:
        with self._connect() as db:
            return db.execute("DELETE FROM responses WHERE id = ?", (response_id,)).rowcount > 0

    def fail(self, response_id: str, message: str) -> None:
        """Mark one stored response failed (when saving its final state did not work)."""
        with self._connect() as db:
            row = db.execute("SELECT body FROM responses WHERE id = ?", (response_id,)).fetchone()
            if row is not None:
                db.execute("UPDATE responses SET status = 'failed', body = ? WHERE id = ?",
                           (_failed(row[0], message), response_id))  # fmt: skip

    def sweep(self, created_before: float) -> int:
        """Delete the responses created before ``created_before`` (Unix seconds), their input images and items
        with them; returns how many were deleted. Later responses that link to a deleted one keep working: their
        chain ends there."""
        with self._connect() as db:
            return db.execute("DELETE FROM responses WHERE created_at < ?", (int(created_before),)).rowcount

    def fail_unfinished(self, message: str) -> int:
        """At start-up: responses left ``in_progress`` by a previous process can never finish; mark them failed
        so a client polling ``GET /v1/responses/{id}`` (OpenAI-DotNet does, §7.10) stops waiting."""
        with self._connect() as db:
            rows = db.execute("SELECT id, body FROM responses WHERE status IN ('in_progress', 'queued')").fetchall()
            for ident, body in rows:
                db.execute(
                    "UPDATE responses SET status = 'failed', body = ? WHERE id = ?", (_failed(body, message), ident)
                )
        return len(rows)


def _dumps(doc: object) -> str:
    """Strict JSON: a document that could not be served back (NaN, Infinity) is refused here, not when read."""
    return json.dumps(doc, allow_nan=False)


def _failed(body: str, message: str) -> str:
    doc = json.loads(body)
    doc["status"] = "failed"
    doc["error"] = {"code": "server_error", "message": message}
    return _dumps(doc)
