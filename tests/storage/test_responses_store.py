"""The SQLite response store: save/get, chains, item lookup, delete, and recovery after a crash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from imageforge.storage.responses import ResponseStore


def _response(ident: str, previous: str | None = None, status: str = "completed") -> dict[str, Any]:
    output = [{"type": "image_generation_call", "id": f"ig_{ident}", "status": "completed", "result": "AAAA"}]
    return {"id": ident, "created_at": 1, "status": status, "previous_response_id": previous, "output": output}


def test_save_get_chain_and_items(tmp_path: Path) -> None:
    store = ResponseStore(tmp_path / "r.sqlite3")
    inputs = [{"type": "message", "id": "msg_1", "role": "user", "content": []}]
    store.save(_response("resp_a"), inputs)
    store.save(_response("resp_b", previous="resp_a"), [])
    assert store.get("resp_a") == _response("resp_a") and store.get("resp_x") is None
    assert store.input_items("resp_a") == inputs
    chain = store.chain("resp_b")
    assert chain is not None and [out[0]["id"] for _, out in chain] == ["ig_resp_a", "ig_resp_b"]
    assert chain[0][0] == inputs
    assert store.item("ig_resp_b") == _response("resp_b")["output"][0]
    assert store.chain("resp_x") is None
    # Re-saving replaces (status updates); a new store on the same file sees everything (restart).
    store.save(_response("resp_b", previous="resp_a", status="failed"), [])
    again = ResponseStore(tmp_path / "r.sqlite3")
    assert again.get("resp_b")["status"] == "failed"  # type: ignore[index]


def test_delete_removes_items_and_ends_chains(tmp_path: Path) -> None:
    store = ResponseStore(tmp_path / "r.sqlite3")
    store.save(_response("resp_a"), [])
    store.save(_response("resp_b", previous="resp_a"), [])
    assert store.delete("resp_a") and not store.delete("resp_a")
    assert store.get("resp_a") is None and store.item("ig_resp_a") is None
    chain = store.chain("resp_b")
    assert chain is not None and len(chain) == 1  # the deleted turn is gone, the rest remains


def test_unfinished_responses_are_failed_at_start(tmp_path: Path) -> None:
    store = ResponseStore(tmp_path / "r.sqlite3")
    store.save(_response("resp_a", status="in_progress"), [])
    store.save(_response("resp_b"), [])
    assert store.fail_unfinished("The server restarted.") == 1
    failed = store.get("resp_a")
    assert failed is not None and failed["status"] == "failed"
    assert failed["error"] == {"code": "server_error", "message": "The server restarted."}
    assert store.get("resp_b")["status"] == "completed"  # type: ignore[index]


def test_documents_that_could_not_be_read_back_are_refused(tmp_path: Path) -> None:
    store = ResponseStore(tmp_path / "r.sqlite3")
    bad = {**_response("resp_nan"), "temperature": float("nan")}
    with pytest.raises(ValueError):
        store.save(bad, [])
    assert store.get("resp_nan") is None  # nothing half-written


def test_fail_marks_one_response_failed(tmp_path: Path) -> None:
    store = ResponseStore(tmp_path / "r.sqlite3")
    store.save(_response("resp_a", status="in_progress"), [])
    store.fail("resp_a", "could not save")
    store.fail("resp_unknown", "no such response")  # a no-op
    doc = store.get("resp_a")
    assert doc is not None and doc["status"] == "failed" and doc["error"]["message"] == "could not save"


def test_sweep_deletes_old_responses_with_their_items(tmp_path: Path) -> None:
    store = ResponseStore(tmp_path / "r.sqlite3")
    old, new = _response("resp_old"), {**_response("resp_new", previous="resp_old"), "created_at": 100}
    store.save(old, [{"type": "message", "id": "msg_old", "role": "user", "content": []}])
    store.save(new, [])
    assert store.sweep(created_before=50) == 1
    assert store.get("resp_old") is None and store.item("msg_old") is None and store.item("ig_resp_old") is None
    chain = store.chain("resp_new")  # the later response still reads: its chain ends at the deleted link
    assert chain is not None and len(chain) == 1
    assert store.sweep(created_before=50) == 0
