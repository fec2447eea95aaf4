"""Bookkeeping never fails the request it records (issue 15): a metrics or audit failure is logged, and the
client still gets its images."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from imageforge.api.state import AppState


def test_a_failing_metrics_backend_does_not_fail_the_request(
    state: AppState, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("the metrics backend is broken")

    monkeypatch.setattr(state.metrics, "record_usage", broken)
    body = {"prompt": "a red heart", "model": "gpt-image-1", "quality": "low"}

    async def run() -> Any:
        started = await state.generations.start(body, "req_1", threading.Event(), base_url="http://x")
        return await started.response()

    response = asyncio.run(run())
    assert response.data[0].b64_json
    assert "recording the request's audit line and usage failed" in caplog.text
