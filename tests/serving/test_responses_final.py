"""A stored response always ends ``completed``, ``failed`` or ``cancelled`` — whatever raises between its first
save and its last, streamed or not (issue 15: one once stayed ``in_progress`` until a restart). Faults are
injected into a real service on the fake engine."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from typing import Any

import pytest

from imageforge.api.state import AppState
from imageforge.errors import ImageForgeError
from imageforge.protocol.response_events import ResponseCompletedEvent, ResponseFailedEvent
from imageforge.serving.responses import ResponsesService

BODY = {"model": "gpt-5", "input": "Draw a red heart", "tools": [{"type": "image_generation", "quality": "low"}]}


async def _run(service: ResponsesService, stream: bool, fault: Any) -> tuple[str, list[str], BaseException | None]:
    prepared = await service.prepare({**BODY, "stream": stream}, "req_test")
    fault(prepared)
    kinds: list[str] = []
    cancel = threading.Event()
    run = await service.start(prepared, cancel)
    try:
        if stream:
            async for event in service.events(prepared, run, cancel):
                kinds.append(getattr(event, "type", "keepalive"))
        else:
            final = await service.create(prepared, run, cancel)
            kinds.append(final.status)
    except ImageForgeError as exc:
        return prepared.response.id, kinds, exc
    return prepared.response.id, kinds, None


def _raise(exc: BaseException) -> Any:
    def fail(*_a: Any, **_k: Any) -> Any:
        raise exc

    return fail


FAULTS = {
    # a bug after the image call (the assistant message)
    "message": lambda s, m: m.setattr(s, "_message", _raise(TypeError("a bug in the message"))),
    # a bug in the image pipeline itself
    "image": lambda s, m: m.setattr(s.pipeline.delivery, "deliver", _raise(KeyError("a bug in the pipeline"))),
    # counting usage fails (it once raised TypeError on invalid text and skipped the final save)
    "usage": lambda s, m: m.setattr(s, "_written_tokens", _raise(TypeError("cannot count"))),
}


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("where", sorted(FAULTS))
def test_a_fault_anywhere_still_ends_the_stored_response(
    state: AppState, monkeypatch: pytest.MonkeyPatch, where: str, stream: bool
) -> None:
    service = state.responses
    ident, kinds, raised = asyncio.run(_run(service, stream, lambda _p: FAULTS[where](service, monkeypatch)))
    stored = service.store.get(ident)
    assert stored is not None and stored["status"] in ("completed", "failed"), stored
    if where == "usage":  # counting is not the response: it completes, without usage
        assert stored["status"] == "completed" and stored["usage"] is None
    else:
        assert stored["status"] == "failed" and stored["error"]["code"] == "server_error"
    if stream:
        assert kinds[-1] in (ResponseCompletedEvent.model_fields["type"].default,
                             ResponseFailedEvent.model_fields["type"].default)  # fmt: skip
    elif stored["status"] == "failed":
        assert raised is not None and raised.status == 500  # a non-streaming client gets a retriable 500


@pytest.mark.parametrize("stream", [True, False])
def test_a_failed_final_save_still_leaves_the_response_failed(
    state: AppState, monkeypatch: pytest.MonkeyPatch, stream: bool
) -> None:
    service = state.responses
    real_save = service.store.save
    saves: list[str] = []

    def save(doc: dict[str, Any], items: list[dict[str, Any]]) -> None:
        saves.append(doc["status"])
        if doc["status"] != "in_progress":
            raise sqlite3.OperationalError("disk I/O error")
        real_save(doc, items)

    monkeypatch.setattr(service.store, "save", save)
    ident, _, _ = asyncio.run(_run(service, stream, lambda _p: None))
    stored = service.store.get(ident)
    assert saves == ["in_progress", "completed"]
    assert stored is not None and stored["status"] == "failed"
