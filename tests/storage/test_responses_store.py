"""The response store's contract, run against each backend (SQLite and a real PostgreSQL): save/get, chains,
item lookup, delete, sweeping, recovery after a crash; and what a cluster needs: two store instances on one
database see each other's responses, and concurrent saves lose none. Then each backend's own start-up errors."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from imageforge.errors import ConfigurationError, ServiceUnavailableError
from imageforge.storage.responses import ResponseStore, open_response_store
from imageforge.storage.responses_sqlite import SqliteResponseStore
from tests.services import PostgresServer, free_port

Opener = Callable[[], ResponseStore]  # a new store instance on the same data (a restart, or another replica)


def _response(ident: str, previous: str | None = None, status: str = "completed") -> dict[str, Any]:
    output = [{"type": "image_generation_call", "id": f"ig_{ident}", "status": "completed", "result": "AAAA"}]
    return {"id": ident, "created_at": 1, "status": status, "previous_response_id": previous, "output": output}


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    if request.param == "sqlite":
        return lambda: open_response_store("sqlite", sqlite_path=tmp_path / "r.sqlite3")
    dsn: str = request.getfixturevalue("postgres_dsn")  # a fresh schema of this test's own
    return lambda: open_response_store("postgres", sqlite_path=tmp_path / "unused", postgres_dsn=dsn)


class TestResponseStoreContract:
    def test_save_get_chain_and_items(self, open_store: Opener) -> None:
        store = open_store()
        inputs = [{"type": "message", "id": "msg_1", "role": "user", "content": []}]
        store.save(_response("resp_a"), inputs)
        store.save(_response("resp_b", previous="resp_a"), [])
        assert store.get("resp_a") == _response("resp_a") and store.get("resp_x") is None
        assert store.input_items("resp_a") == inputs and store.input_items("resp_x") is None
        chain = store.chain("resp_b")
        assert chain is not None and [out[0]["id"] for _, out in chain] == ["ig_resp_a", "ig_resp_b"]
        assert chain[0][0] == inputs
        assert store.item("ig_resp_b") == _response("resp_b")["output"][0] and store.item("msg_1") == inputs[0]
        assert store.chain("resp_x") is None and store.item("ig_x") is None
        # Re-saving replaces (status updates); a new store on the same data sees everything (restart).
        store.save(_response("resp_b", previous="resp_a", status="failed"), [])
        again = open_store()
        assert again.get("resp_b")["status"] == "failed"  # type: ignore[index]

    def test_delete_removes_items_and_ends_chains(self, open_store: Opener) -> None:
        store = open_store()
        store.save(_response("resp_a"), [])
        store.save(_response("resp_b", previous="resp_a"), [])
        assert store.delete("resp_a") and not store.delete("resp_a")
        assert store.get("resp_a") is None and store.item("ig_resp_a") is None
        chain = store.chain("resp_b")
        assert chain is not None and len(chain) == 1  # the deleted turn is gone, the rest remains

    def test_unfinished_responses_are_failed_at_start(self, open_store: Opener) -> None:
        store = open_store()
        store.save(_response("resp_a", status="in_progress"), [])
        store.save(_response("resp_q", status="queued"), [])
        store.save(_response("resp_b"), [])
        assert store.fail_unfinished("The server restarted.") == 2
        failed = store.get("resp_a")
        assert failed is not None and failed["status"] == "failed"
        assert failed["error"] == {"code": "server_error", "message": "The server restarted."}
        assert store.get("resp_q")["status"] == "failed"  # type: ignore[index]
        assert store.get("resp_b")["status"] == "completed"  # type: ignore[index]
        assert store.fail_unfinished("The server restarted.") == 0

    def test_documents_that_could_not_be_read_back_are_refused(self, open_store: Opener) -> None:
        store = open_store()
        bad = {**_response("resp_nan"), "temperature": float("nan")}
        with pytest.raises(ValueError):
            store.save(bad, [])
        assert store.get("resp_nan") is None  # nothing half-written

    def test_fail_marks_one_response_failed(self, open_store: Opener) -> None:
        store = open_store()
        store.save(_response("resp_a", status="in_progress"), [])
        store.save(_response("resp_b", status="in_progress"), [])
        store.fail("resp_a", "could not save")
        store.fail("resp_unknown", "no such response")  # a no-op
        doc = store.get("resp_a")
        assert doc is not None and doc["status"] == "failed" and doc["error"]["message"] == "could not save"
        assert doc["output"] == _response("resp_a")["output"]  # the rest of the document is kept
        assert store.get("resp_b")["status"] == "in_progress"  # type: ignore[index]
        assert store.fail_unfinished("restarted") == 1  # the column follows the document: resp_a is not unfinished

    def test_sweep_deletes_old_responses_with_their_items(self, open_store: Opener) -> None:
        store = open_store()
        old, new = _response("resp_old"), {**_response("resp_new", previous="resp_old"), "created_at": 100}
        store.save(old, [{"type": "message", "id": "msg_old", "role": "user", "content": []}])
        store.save(new, [])
        assert store.sweep(created_before=50) == 1
        assert store.get("resp_old") is None and store.item("msg_old") is None and store.item("ig_resp_old") is None
        chain = store.chain("resp_new")  # the later response still reads: its chain ends at the deleted link
        assert chain is not None and len(chain) == 1
        assert store.sweep(created_before=50) == 0
        assert store.get("resp_new") is not None

    def test_any_string_round_trips(self, open_store: Opener) -> None:
        # Clients may send U+0000 in any string (JSONB cannot hold it: the Postgres store escapes it), and the
        # escape character itself must survive too; values keep their types.
        store = open_store()
        odd = "a\x00b \ue000 \ue000e \ue0000 Zoë 🙂 \\u0000"
        doc = {**_response("resp_odd"), "instructions": odd, "metadata": {odd: odd}, "n": [0, -(2**63), 1.5, True]}
        content = [{"type": "input_text", "text": odd}]
        inputs = [{"type": "message", "id": "msg_odd", "role": "user", "content": content}]
        store.save(doc, inputs)
        assert store.get("resp_odd") == doc and store.input_items("resp_odd") == inputs
        assert store.item("msg_odd") == inputs[0]
        chain = store.chain("resp_odd")
        assert chain is not None and chain[0][0] == inputs

    def test_two_instances_see_each_others_responses(self, open_store: Opener) -> None:
        # Two replicas on one database: either serves what the other stored, previous_response_id chains included.
        a, b = open_store(), open_store()
        a.save(_response("resp_1", status="in_progress"), [{"type": "message", "id": "msg_1", "role": "user"}])
        assert b.get("resp_1")["status"] == "in_progress"  # type: ignore[index]
        a.save(_response("resp_1"), [{"type": "message", "id": "msg_1", "role": "user"}])
        b.save(_response("resp_2", previous="resp_1"), [])
        chain = a.chain("resp_2")
        assert chain is not None and [out[0]["id"] for _, out in chain] == ["ig_resp_1", "ig_resp_2"]
        assert b.item("msg_1") == {"type": "message", "id": "msg_1", "role": "user"}
        assert b.delete("resp_1") and a.get("resp_1") is None

    def test_concurrent_saves_lose_none(self, open_store: Opener) -> None:
        stores = [open_store(), open_store()]
        idents = [f"resp_{i}" for i in range(40)]

        def save(i: int) -> None:
            ident = idents[i]
            store = stores[i % 2]
            store.save(_response(ident, status="in_progress"), [{"type": "message", "id": f"msg_{i}", "role": "user"}])
            store.save(_response(ident, previous=idents[i - 1] if i else None), [])

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(save, range(len(idents))))
        for i, ident in enumerate(idents):
            assert stores[(i + 1) % 2].get(ident) == _response(ident, previous=idents[i - 1] if i else None)
        chain = stores[0].chain(idents[-1])
        assert chain is not None and len(chain) == len(idents)
        assert stores[0].fail_unfinished("restarted") == 0


def test_the_sqlite_store_is_the_default_backend(tmp_path: Path) -> None:
    assert isinstance(open_response_store("sqlite", sqlite_path=tmp_path / "r.sqlite3"), SqliteResponseStore)
    assert (tmp_path / "r.sqlite3").exists()


class TestPostgresStartup:
    def test_a_missing_dsn_names_the_setting(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigurationError, match="postgres_dsn"):
            open_response_store("postgres", sqlite_path=tmp_path / "unused", postgres_dsn=None)

    def test_an_unreachable_database_names_the_setting(self, tmp_path: Path) -> None:
        pytest.importorskip("psycopg")
        dsn = f"host=127.0.0.1 port={free_port()} user=postgres password=hunter2 connect_timeout=5"
        with pytest.raises(ConfigurationError, match="postgres_dsn") as info:
            open_response_store("postgres", sqlite_path=tmp_path / "unused", postgres_dsn=dsn)
        assert "hunter2" not in str(info.value)  # the secret is never echoed
        with pytest.raises(ConfigurationError, match="postgres_dsn"):
            open_response_store("postgres", sqlite_path=tmp_path / "unused", postgres_dsn="host=x port=notaport =")

    def test_a_newer_schema_is_refused(self, tmp_path: Path, postgres_dsn: str) -> None:
        import psycopg

        open_response_store("postgres", sqlite_path=tmp_path / "unused", postgres_dsn=postgres_dsn)
        # Idempotent: a second replica starting on the same schema is fine.
        open_response_store("postgres", sqlite_path=tmp_path / "unused", postgres_dsn=postgres_dsn)
        with psycopg.connect(postgres_dsn) as db:
            db.execute("UPDATE imageforge_schema SET version = version + 1 WHERE component = 'responses'")
        with pytest.raises(ConfigurationError, match="newer"):
            open_response_store("postgres", sqlite_path=tmp_path / "unused", postgres_dsn=postgres_dsn)

    def test_a_database_gone_later_is_a_503(self, tmp_path: Path, postgres_server: PostgresServer) -> None:
        import psycopg

        with psycopg.connect(postgres_server.dsn(), autocommit=True) as admin:
            admin.execute("CREATE DATABASE imageforge_gone")
            store = open_response_store(
                "postgres", sqlite_path=tmp_path / "unused", postgres_dsn=postgres_server.dsn("imageforge_gone")
            )
            store.save(_response("resp_a"), [])
            admin.execute("DROP DATABASE imageforge_gone WITH (FORCE)")
        for call in (lambda: store.get("resp_a"), lambda: store.save(_response("resp_b"), []), lambda: store.sweep(9)):
            with pytest.raises(ServiceUnavailableError) as info:
                call()
            assert info.value.status == 503 and info.value.code == "service_unavailable"
