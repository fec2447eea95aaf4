"""The single-node response store: SQLite under the data directory, so stored responses survive restarts.

Each call opens its own connection, so any thread may call; WAL lets readers and the writer work at once. The
file must be on a local disk: SQLite's locks do not hold on NFS (a cluster uses ``responses_postgres.py``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from imageforge.storage.responses import MAX_CHAIN, StoredTurn, dumps, failed

__all__ = ["SqliteResponseStore"]

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


class SqliteResponseStore:
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
        items = [i for i in (*input_items, *response.get("output", ())) if i.get("id")]
        body, inputs = dumps(response), dumps(input_items)  # before the transaction: a bad document writes nothing
        rows = [(i["id"], response["id"], dumps(i)) for i in items]
        with self._connect() as db:
            db.execute("DELETE FROM items WHERE response_id = ?", (response["id"],))
            db.execute(
                "INSERT OR REPLACE INTO responses (id, created_at, status, previous_response_id, body, input) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (response["id"], response["created_at"], response["status"], response.get("previous_response_id"),
                 body, inputs),
            )  # fmt: skip
            db.executemany("INSERT OR REPLACE INTO items (id, response_id, body) VALUES (?, ?, ?)", rows)

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
        with self._connect() as db:
            row = db.execute("SELECT body FROM responses WHERE id = ?", (response_id,)).fetchone()
            if row is not None:
                db.execute("UPDATE responses SET status = 'failed', body = ? WHERE id = ?",
                           (_failed(row[0], message), response_id))  # fmt: skip

    def sweep(self, created_before: float) -> int:
        with self._connect() as db:
            return db.execute("DELETE FROM responses WHERE created_at < ?", (int(created_before),)).rowcount

    def fail_unfinished(self, message: str) -> int:
        with self._connect() as db:
            rows = db.execute("SELECT id, body FROM responses WHERE status IN ('in_progress', 'queued')").fetchall()
            for ident, body in rows:
                db.execute(
                    "UPDATE responses SET status = 'failed', body = ? WHERE id = ?", (_failed(body, message), ident)
                )
        return len(rows)


def _failed(body: str, message: str) -> str:
    return dumps(failed(json.loads(body), message))
