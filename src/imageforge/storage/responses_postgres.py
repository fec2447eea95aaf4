"""The shared response store: PostgreSQL through psycopg 3 (the ``postgres`` extra), for several ingress
replicas. Any replica serves ``GET /v1/responses/{id}`` and ``previous_response_id`` for a response another one
stored (reference D4, issue 18).

- Documents are JSONB. JSONB keeps values, not text: object keys come back in its own order (JSON objects are
  unordered; the SDKs do not care), and it cannot hold ``\\u0000``, which clients may send in any string. Strings
  are therefore escaped reversibly (``_escape``) with a private-use character before they are stored.
- The schema is created idempotently by every replica at start-up, under an advisory lock so that replicas
  starting together do not race on ``CREATE TABLE IF NOT EXISTS``; ``imageforge_schema`` records its version.
- One connection per call: calls come from worker threads (DESIGN.md §4.4) and nothing has to be closed at
  shutdown; a pooler (PgBouncer) in front of the database is the place to pool, if connections ever cost.
- An unreachable database at start-up is a :class:`ConfigurationError` naming ``postgres_dsn``; later, a call
  that cannot reach it raises :class:`ServiceUnavailableError` (OpenAI's 503 envelope), never a traceback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from imageforge.errors import ConfigurationError, ServiceUnavailableError
from imageforge.storage.responses import MAX_CHAIN, StoredTurn, dumps, failed

if TYPE_CHECKING:
    import psycopg

__all__ = ["SCHEMA_VERSION", "PostgresResponseStore"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_LOCK_KEY = 0x1F0A6E5  # pg_advisory_xact_lock key of schema creation ("imageforge"), any constant will do
_CONNECT_TIMEOUT_S = 10  # unless the DSN sets connect_timeout: a dead host must not hang a request for minutes

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS imageforge_schema (component TEXT PRIMARY KEY, version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS imageforge_responses (
        id TEXT PRIMARY KEY,
        created_at BIGINT NOT NULL,
        status TEXT NOT NULL,
        previous_response_id TEXT,
        body JSONB NOT NULL,
        input JSONB NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS imageforge_response_items (
        id TEXT PRIMARY KEY,
        response_id TEXT NOT NULL REFERENCES imageforge_responses(id) ON DELETE CASCADE,
        body JSONB NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS imageforge_items_by_response ON imageforge_response_items(response_id)",
    "CREATE INDEX IF NOT EXISTS imageforge_responses_by_created ON imageforge_responses(created_at)",
    "COMMENT ON TABLE imageforge_responses IS 'ImageForge stored Responses (store: true): the Response as served "
    "(body) and its input items; strings escaped for JSONB (storage/responses_postgres.py)'",
    "COMMENT ON TABLE imageforge_response_items IS 'ImageForge: every input and output item of a stored response, "
    "by id (item references); deleted with its response'",
)

_CHAIN = """
WITH RECURSIVE turn(id, input, output, previous, depth) AS (
    SELECT id, input, body -> 'output', previous_response_id, 1 FROM imageforge_responses WHERE id = %(id)s
    UNION ALL
    SELECT r.id, r.input, r.body -> 'output', r.previous_response_id, turn.depth + 1
    FROM imageforge_responses r JOIN turn ON r.id = turn.previous
    WHERE turn.depth < %(max)s
)
SELECT input::text, output::text FROM turn ORDER BY depth DESC
"""

T = TypeVar("T")


class PostgresResponseStore:
    def __init__(self, dsn: str | None) -> None:
        if not dsn:
            raise ConfigurationError(
                "responses_store is 'postgres' but postgres_dsn (IMAGEFORGE_POSTGRES_DSN) is unset"
            )
        try:
            import psycopg
        except ImportError as exc:
            raise ConfigurationError(
                "responses_store is 'postgres' but psycopg is not installed: pip install 'imageforge[postgres]'"
            ) from exc
        self._psycopg = psycopg
        try:
            params = psycopg.conninfo.conninfo_to_dict(dsn)
        except psycopg.Error as exc:  # its message quotes no password
            raise ConfigurationError(f"postgres_dsn is not a valid PostgreSQL connection string: {exc}") from exc
        if "connect_timeout" not in params:
            dsn = psycopg.conninfo.make_conninfo(dsn, connect_timeout=_CONNECT_TIMEOUT_S)
        self._dsn = dsn
        try:
            self._create_schema()
        except psycopg.Error as exc:
            raise ConfigurationError(f"postgres_dsn: cannot open the response store: {exc}") from exc

    def _create_schema(self) -> None:
        with self._psycopg.connect(self._dsn) as db:
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            for statement in _SCHEMA:
                db.execute(statement)
            db.execute(
                "INSERT INTO imageforge_schema (component, version) VALUES ('responses', %s) "
                "ON CONFLICT (component) DO NOTHING",
                (SCHEMA_VERSION,),
            )
            row = db.execute("SELECT version FROM imageforge_schema WHERE component = 'responses'").fetchone()
        if row is None or row[0] > SCHEMA_VERSION:
            raise ConfigurationError(
                f"postgres_dsn: the response store's schema is version {row and row[0]}, newer than this "
                f"ImageForge's {SCHEMA_VERSION}: upgrade ImageForge on every replica"
            )

    @contextmanager
    def _connect(self) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        """One transaction on a new connection (committed on success, rolled back on error); a database that
        cannot be reached is OpenAI's 503, not a 500 traceback."""
        try:
            with self._psycopg.connect(self._dsn) as db:
                yield db
        except self._psycopg.OperationalError as exc:
            log.warning("the response store (PostgreSQL) is unreachable: %s", exc)
            raise ServiceUnavailableError("The response store is unavailable; please try again shortly.") from exc

    def _one(self, sql: str, params: tuple[Any, ...]) -> Any:
        with self._connect() as db:
            row = db.execute(sql, params).fetchone()
        return None if row is None else _loads(row[0])

    def save(self, response: dict[str, Any], input_items: list[dict[str, Any]]) -> None:
        ident = response["id"]
        by_id = {i["id"]: i for i in (*input_items, *response.get("output", ())) if i.get("id")}  # last one wins
        # Sorted: concurrent saves that share items lock their rows in one order (no deadlock).
        rows = [(item_id, ident, _dump(by_id[item_id])) for item_id in sorted(by_id)]
        body, inputs = _dump(response), _dump(input_items)  # before the transaction: a bad document writes nothing
        with self._connect() as db:
            db.execute(
                "INSERT INTO imageforge_responses (id, created_at, status, previous_response_id, body, input) "
                "VALUES (%s, %s, %s, %s, %s::jsonb, %s::jsonb) ON CONFLICT (id) DO UPDATE SET "
                "created_at = EXCLUDED.created_at, status = EXCLUDED.status, "
                "previous_response_id = EXCLUDED.previous_response_id, body = EXCLUDED.body, input = EXCLUDED.input",
                (ident, int(response["created_at"]), response["status"], response.get("previous_response_id"),
                 body, inputs),
            )  # fmt: skip
            db.execute("DELETE FROM imageforge_response_items WHERE response_id = %s", (ident,))
            with db.cursor() as cur:
                cur.executemany(
                    "INSERT INTO imageforge_response_items (id, response_id, body) VALUES (%s, %s, %s::jsonb) "
                    "ON CONFLICT (id) DO UPDATE SET response_id = EXCLUDED.response_id, body = EXCLUDED.body",
                    rows,
                )

    def get(self, response_id: str) -> dict[str, Any] | None:
        doc = self._one("SELECT body::text FROM imageforge_responses WHERE id = %s", (response_id,))
        return None if doc is None else dict(doc)

    def input_items(self, response_id: str) -> list[dict[str, Any]] | None:
        doc = self._one("SELECT input::text FROM imageforge_responses WHERE id = %s", (response_id,))
        return None if doc is None else list(doc)

    def item(self, item_id: str) -> dict[str, Any] | None:
        doc = self._one("SELECT body::text FROM imageforge_response_items WHERE id = %s", (item_id,))
        return None if doc is None else dict(doc)

    def chain(self, response_id: str) -> list[StoredTurn] | None:
        # One recursive query (oldest turn first); the depth bound guards against cycles in a damaged store.
        with self._connect() as db:
            rows = db.execute(_CHAIN, {"id": response_id, "max": MAX_CHAIN}).fetchall()
        if not rows:
            return None
        return [(_loads(inputs), _loads(output) if output is not None else []) for inputs, output in rows]

    def delete(self, response_id: str) -> bool:
        with self._connect() as db:
            return db.execute("DELETE FROM imageforge_responses WHERE id = %s", (response_id,)).rowcount > 0

    def fail(self, response_id: str, message: str) -> None:
        with self._connect() as db:
            db.execute(
                "UPDATE imageforge_responses SET status = 'failed', body = body || %s::jsonb WHERE id = %s",
                (_dump(failed({}, message)), response_id),
            )  # `||` replaces the top-level status and error keys: one statement, no read-modify-write race

    def sweep(self, created_before: float) -> int:
        with self._connect() as db:
            cur = db.execute("DELETE FROM imageforge_responses WHERE created_at < %s", (int(created_before),))
            return cur.rowcount

    def fail_unfinished(self, message: str) -> int:
        with self._connect() as db:
            cur = db.execute(
                "UPDATE imageforge_responses SET status = 'failed', body = body || %s::jsonb "
                "WHERE status IN ('in_progress', 'queued')",
                (_dump(failed({}, message)),),
            )
            return cur.rowcount


# JSONB refuses U+0000 in strings. Reversible escaping with a private-use character: _ESC itself becomes
# _ESC + "e" and U+0000 becomes _ESC + "0"; strings with neither (nearly all) are left as they are.
_ESC = "\ue000"
_ENCODE = {_ESC: _ESC + "e", "\x00": _ESC + "0"}
_DECODE = {"e": _ESC, "0": "\x00"}


def _escape_str(s: str) -> str:
    if _ESC not in s and "\x00" not in s:
        return s
    return s.replace(_ESC, _ENCODE[_ESC]).replace("\x00", _ENCODE["\x00"])


def _unescape_str(s: str) -> str:
    if _ESC not in s:
        return s
    out, parts = [], s.split(_ESC)
    out.append(parts[0])
    for part in parts[1:]:
        out.append(_DECODE[part[0]] + part[1:])
    return "".join(out)


def _walk(doc: T, on_str: Any) -> T:
    if isinstance(doc, str):
        return on_str(doc)  # type: ignore[no-any-return]
    if isinstance(doc, dict):
        return {on_str(k): _walk(v, on_str) for k, v in doc.items()}  # type: ignore[return-value]
    if isinstance(doc, list):
        return [_walk(v, on_str) for v in doc]  # type: ignore[return-value]
    return doc


def _dump(doc: object) -> str:
    return dumps(_walk(doc, _escape_str))


def _loads(text: str) -> Any:
    return _walk(json.loads(text), _unescape_str)
