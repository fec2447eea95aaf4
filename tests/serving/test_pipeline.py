"""The generation pipeline on a real app's services (fake engine): admission before any event (a refused request
costs no quota and queues nothing), typed events, one audit line per job however it ends.

Ordering and counts are asserted, never durations.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import io
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from imageforge.api.app import build_state
from imageforge.api.state import AppState
from imageforge.config import Catalogue, ModelEntry, Settings
from imageforge.engines.fake import FakeEngine
from imageforge.errors import EngineError, ModerationBlockedError, QueueFullError, RateLimitError
from imageforge.scheduler.worker import EngineWorker
from imageforge.serving.pipeline import (
    Failed,
    Final,
    ImageJob,
    KeepAlive,
    Preview,
    Started,
    preview_steps,
)
from imageforge.serving.usage import image_tokens
from tests.scheduler.holding import engine_held

Factory = Callable[..., AppState]
SMALL = "imageforge"  # the imageforge profile takes 64x64: fast images on the fake engine


@pytest.fixture
def make_state(tmp_path: Path) -> Iterator[Factory]:
    """Real app states on the fake engine (``options`` go to it), with the given settings."""
    built: list[AppState] = []

    def make(options: dict[str, Any] | None = None, **settings: Any) -> AppState:
        opts = options or {}
        catalogue = Catalogue({
            "gpt-image-1": ModelEntry(engine="fake", profile="gpt-image-1", options=opts),
            SMALL: ModelEntry(engine="fake", profile="imageforge", options=opts),
        })  # fmt: skip
        # A wait budget far above these jobs' run times: admission by time never refuses a job of these tests.
        settings.setdefault("max_queue_seconds", 60)
        s = build_state(Settings(data_dir=tmp_path / f"state{len(built)}", moderation_output=False, warmup=False,
                                 **settings), catalogue)  # fmt: skip
        built.append(s)
        return s

    yield make
    for s in built:
        s.engines.close()
        s.pipeline.delivery.encoder.close()


@pytest.fixture
def audit_log(caplog: pytest.LogCaptureFixture) -> Callable[[], list[dict[str, Any]]]:
    caplog.set_level(logging.INFO, logger="imageforge.audit")

    def lines() -> list[dict[str, Any]]:
        return [json.loads(r.getMessage()) for r in caplog.records if r.name == "imageforge.audit"]

    return lines


_ids = iter(range(1_000_000))


def make_job(state: AppState, *, key_id: str = "key_a", charge_request: bool = True, **fields: Any) -> ImageJob:
    body = {"prompt": "a red heart", "model": SMALL, "size": "64x64", "quality": "low", **fields}
    resolved = state.generations.resolve(body, f"req_{next(_ids)}")
    return ImageJob(resolved, prompt=str(body["prompt"]), key_id=key_id, charge_request=charge_request)


def worker_of(state: AppState) -> EngineWorker:
    return state.engines.worker(SMALL)


def engine_of(state: AppState) -> FakeEngine:
    engine = worker_of(state).engine
    assert isinstance(engine, FakeEngine)
    return engine


def usage_requests(state: AppState, key: str = "key_a") -> float | None:
    """Requests counted as served (delivered) for ``key``: None until one is."""
    return state.metrics.registry.get_sample_value("imageforge_usage_requests_total", {"key": key, "user": "-"})


def queue_depth(state: AppState) -> float | None:
    return state.metrics.registry.get_sample_value("imageforge_queue_depth", {"engine": worker_of(state).name})


async def run_all(state: AppState, job: ImageJob, cancel: threading.Event | None = None) -> list[Any]:
    started = await state.pipeline.start(job, cancel or threading.Event())
    return [event async for event in started.events]


async def final(state: AppState, job: ImageJob) -> Final:
    started = await state.pipeline.start(job, threading.Event())
    return await started.final()


def decode(b64: str | None) -> Image.Image:
    assert b64
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def one_audit(lines: list[dict[str, Any]], job: ImageJob) -> dict[str, Any]:
    mine = [a for a in lines if a["request_id"] == job.request.params.request_id]
    assert len(mine) == 1, f"one audit line per job, got {len(mine)}"
    return mine[0]


# -- the events of a job ----------------------------------------------------------------------------------------


def test_a_non_streaming_job_yields_one_final_with_its_images_and_one_audit_line(
    make_state: Factory, audit_log: Callable[[], list[dict[str, Any]]]
) -> None:
    state = make_state(key_images_per_minute=10)
    job = make_job(state, n=3)

    async def run() -> tuple[Started, list[Any]]:
        started = await state.pipeline.start(job, threading.Event())
        return started, [event async for event in started.events]

    started, events = asyncio.run(run())
    assert [type(e) for e in events] == [Final]
    done = events[0]
    assert len(done.images) == 3
    for image in done.images:
        assert image.url is None
        decoded = decode(image.b64)
        assert (decoded.format, decoded.size) == ("PNG", (64, 64))
    assert done.revised_prompt == "a red heart"
    assert done.text_tokens > 0
    assert done.output_image_tokens == image_tokens("low", 64, 64) * 3
    # Admission charged the images before any event, and said where the key's limit stands.
    assert [(s.kind, s.limit, s.remaining) for s in started.limits] == [("images", 10, 7)]

    audit = one_audit(audit_log(), job)
    assert (audit["outcome"], audit["status"], audit["n"], audit["key_id"]) == ("ok", 200, 3, "key_a")
    assert audit["moderation_stage"] is None
    assert len(audit_log()) == 1
    usage = state.metrics.registry.get_sample_value("imageforge_usage_images_total", {"key": "key_a", "user": "-"})
    assert usage == 3


def test_url_format_images_are_stored_and_linked(make_state: Factory) -> None:
    state = make_state()
    job = make_job(state, n=2)
    job = dataclasses.replace(job, request=dataclasses.replace(job.request, response_format="url"))

    async def run() -> Final:
        started = await state.pipeline.start(job, threading.Event(), base_url="http://testserver")
        return await started.final()

    done = asyncio.run(run())
    assert len(done.images) == 2
    assert all(i.b64 is None and i.url and i.url.startswith("http://testserver") for i in done.images)


def test_a_streaming_job_yields_its_partial_images_then_one_final_image(
    make_state: Factory, audit_log: Callable[[], list[dict[str, Any]]]
) -> None:
    state = make_state(options={"step_delay": 0.01})
    job = make_job(state, quality="high", stream=True, partial_images=2)  # 8 steps: previews after 3 and 5
    assert preview_steps(job.request.params.denoising_steps, 2) == [3, 5]

    events = [e for e in asyncio.run(run_all(state, job)) if not isinstance(e, KeepAlive)]
    assert [type(e) for e in events] == [Preview, Preview, Final]
    assert [e.index for e in events[:2]] == [0, 1]
    for preview in events[:2]:
        assert decode(preview.b64).size == (64, 64)
    done = events[-1]
    assert len(done.images) == 1 and done.images[0].b64
    audit = one_audit(audit_log(), job)
    assert (audit["outcome"], audit["stream"]) == ("ok", True)


def test_a_stream_asking_for_no_partial_images_gets_only_the_final(make_state: Factory) -> None:
    state = make_state()
    job = make_job(state, quality="high", stream=True)
    events = [e for e in asyncio.run(run_all(state, job)) if not isinstance(e, KeepAlive)]
    assert [type(e) for e in events] == [Final]


def test_keep_alives_while_a_long_step_runs_only_when_streaming(make_state: Factory) -> None:
    state = make_state(options={"step_delay": 0.1})
    state.pipeline.keepalive_s = 0.01
    streamed = asyncio.run(run_all(state, make_job(state, stream=True)))
    assert any(isinstance(e, KeepAlive) for e in streamed)
    assert isinstance(streamed[-1], Final)
    plain = asyncio.run(run_all(state, make_job(state)))
    assert [type(e) for e in plain] == [Final]


def test_the_final_reports_the_jobs_input_image_tokens(make_state: Factory) -> None:
    state = make_state()
    job = dataclasses.replace(make_job(state), input_image_tokens=123)
    done = asyncio.run(final(state, job))
    assert done.input_image_tokens == 123


# -- admission: refused requests cost nothing and queue nothing ---------------------------------------------------


def test_a_request_the_queue_refuses_at_submit_charges_no_quota(
    make_state: Factory, monkeypatch: pytest.MonkeyPatch, audit_log: Callable[[], list[dict[str, Any]]]
) -> None:
    state = make_state(key_images_per_minute=2)

    def full(*_a: Any, **_k: Any) -> Any:
        raise QueueFullError("The server is busy.", retry_after=1.0)

    monkeypatch.setattr(state.pipeline.gateway, "submit", full)
    refused = make_job(state)
    with pytest.raises(QueueFullError):
        asyncio.run(final(state, refused))
    audit = one_audit(audit_log(), refused)
    assert (audit["outcome"], audit["status"]) == ("rate_limit_exceeded", 429)
    monkeypatch.undo()

    for _ in range(2):  # the limit's two images are both still there
        assert len(asyncio.run(final(state, make_job(state))).images) == 1
    with pytest.raises(RateLimitError) as info:  # and the limit is live
        asyncio.run(final(state, make_job(state)))
    assert not isinstance(info.value, QueueFullError)


def test_a_request_refused_by_a_queue_filled_during_its_moderation_charges_no_quota(make_state: Factory) -> None:
    """Two requests pass the queue check together; the first one queued fills the queue, the second is refused
    by the (atomic) submit: it is charged nothing."""
    state = make_state(key_images_per_minute=3, queue_limit=1)
    worker = worker_of(state)

    async def run(release: Callable[[], None]) -> list[Any]:
        outcomes = await asyncio.gather(state.pipeline.start(make_job(state, prompt="first"), threading.Event()),
                                        state.pipeline.start(make_job(state, prompt="second"), threading.Event()),
                                        return_exceptions=True)  # fmt: skip
        assert len(worker._waiting) == 1
        release()
        first, second = outcomes
        assert isinstance(first, Started)
        assert isinstance(second, QueueFullError)
        return [(await first.final()), *outcomes[1:]]

    with engine_held(worker) as release:
        asyncio.run(run(release))
    # The first request took one image of three; the refused one none: two more pass.
    for _ in range(2):
        asyncio.run(final(state, make_job(state)))
    with pytest.raises(RateLimitError):
        asyncio.run(final(state, make_job(state)))
    assert [[p.prompt for p in call] for call in engine_of(state).calls] == [["first"], ["a red heart"],
                                                                              ["a red heart"]]  # fmt: skip


def test_a_rate_limited_request_queues_no_job_and_is_audited_once(
    make_state: Factory, audit_log: Callable[[], list[dict[str, Any]]]
) -> None:
    state = make_state(key_images_per_minute=1)
    asyncio.run(final(state, make_job(state)))
    calls, worker = len(engine_of(state).calls), worker_of(state)
    assert queue_depth(state) == 0

    limited = make_job(state)
    with engine_held(worker):
        with pytest.raises(RateLimitError) as info:
            asyncio.run(final(state, limited))
        assert worker._waiting == []
        assert queue_depth(state) == 0
    assert not isinstance(info.value, QueueFullError)
    assert info.value.status == 429 and info.value.limits[0].kind == "images"
    assert len(engine_of(state).calls) == calls
    audit = one_audit(audit_log(), limited)
    assert (audit["outcome"], audit["status"]) == ("rate_limit_exceeded", 429)
    assert state.metrics.registry.get_sample_value("imageforge_rate_limited_total", {"reason": "key_images"}) == 1
    # A refused request delivered nothing: only the first one's usage.
    assert usage_requests(state) == 1


def test_another_key_is_not_limited_by_the_first_ones_quota(make_state: Factory) -> None:
    state = make_state(key_images_per_minute=1)
    asyncio.run(final(state, make_job(state, key_id="key_a")))
    with pytest.raises(RateLimitError):
        asyncio.run(final(state, make_job(state, key_id="key_a")))
    asyncio.run(final(state, make_job(state, key_id="key_b")))


def test_a_moderation_refusal_at_input_queues_nothing_and_charges_nothing(
    make_state: Factory, audit_log: Callable[[], list[dict[str, Any]]]
) -> None:
    state = make_state(key_requests_per_minute=1, key_images_per_minute=1)
    worker = worker_of(state)
    blocked = make_job(state, prompt="a naked woman", user="user-7")
    with engine_held(worker):
        with pytest.raises(ModerationBlockedError) as info:
            asyncio.run(final(state, blocked))
        assert worker._waiting == []
        assert queue_depth(state) is None, "nothing was ever queued"
    assert (info.value.stage, info.value.categories) == ("input", ["sexual"])
    audit = one_audit(audit_log(), blocked)
    assert (audit["outcome"], audit["status"], audit["moderation_stage"]) == ("moderation_blocked", 400, "input")
    assert audit["moderation_categories"] == ["sexual"]
    assert engine_of(state).calls == []
    # The one request and the one image of the minute are still there.
    assert len(asyncio.run(final(state, make_job(state))).images) == 1


def test_a_request_the_engine_cannot_take_is_refused_before_moderation_and_charges_nothing(
    make_state: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = make_state(key_requests_per_minute=1)
    screened: list[str] = []
    real = state.pipeline.screening.inputs

    async def inputs(prompt: str, *a: Any, **k: Any) -> Any:
        screened.append(prompt)
        return await real(prompt, *a, **k)

    monkeypatch.setattr(state.pipeline.screening, "inputs", inputs)

    def busy(*_a: Any, **_k: Any) -> None:
        raise QueueFullError("The server is busy.", retry_after=1.0)

    with monkeypatch.context() as m:
        m.setattr(state.pipeline.gateway, "admit", busy)
        with pytest.raises(QueueFullError):
            asyncio.run(final(state, make_job(state, prompt="refused early")))
    assert screened == [], "a full queue costs no classifier time"
    asyncio.run(final(state, make_job(state)))
    assert screened == ["a red heart"]


def test_a_request_already_charged_is_charged_only_its_images(make_state: Factory) -> None:
    state = make_state(key_requests_per_minute=1, key_images_per_minute=3)
    for _ in range(3):
        asyncio.run(final(state, make_job(state, charge_request=False)))
    with pytest.raises(RateLimitError) as info:
        asyncio.run(final(state, make_job(state, charge_request=False)))
    assert info.value.limits[0].kind == "images"


# -- how a job ends ---------------------------------------------------------------------------------------------


def test_closing_the_events_after_the_first_preview_cancels_the_job(
    make_state: Factory, audit_log: Callable[[], list[dict[str, Any]]]
) -> None:
    state = make_state(options={"step_delay": 0.05})
    job = make_job(state, quality="high", stream=True, partial_images=3)  # 8 steps, previews after 2, 4, 6
    cancel = threading.Event()

    async def run() -> Any:
        started = await state.pipeline.start(job, cancel)
        first = await anext(started.events)
        while isinstance(first, KeepAlive):
            first = await anext(started.events)
        await started.events.aclose()
        return first

    assert isinstance(asyncio.run(run()), Preview)
    assert cancel.is_set(), "the engine is told to stop"
    audit = one_audit(audit_log(), job)
    assert (audit["outcome"], audit["status"]) == ("cancelled", 499)
    registry = state.metrics.registry
    deadline = time.monotonic() + 30
    while registry.get_sample_value("imageforge_images_total", {"model": SMALL, "outcome": "cancelled"}) != 1:
        assert time.monotonic() < deadline, "the job was never stopped"
        time.sleep(0.01)
    assert engine_of(state).request_steps < 8
    assert registry.get_sample_value("imageforge_usage_requests_total", {"key": "key_a", "user": "-"}) is None


def test_closing_the_events_after_the_final_keeps_the_outcome_ok(
    make_state: Factory, audit_log: Callable[[], list[dict[str, Any]]]
) -> None:
    state = make_state()
    job = make_job(state, quality="high", stream=True, partial_images=1)

    async def run() -> list[Any]:
        started = await state.pipeline.start(job, threading.Event())
        seen = []
        async for event in started.events:
            seen.append(event)
            if isinstance(event, Final):
                break
        await started.events.aclose()
        return seen

    assert isinstance(asyncio.run(run())[-1], Final)
    audit = one_audit(audit_log(), job)
    assert (audit["outcome"], audit["status"]) == ("ok", 200)
    assert usage_requests(state) == 1


def test_an_engine_error_after_admission_is_a_failed_event_that_ends_the_stream(
    make_state: Factory, audit_log: Callable[[], list[dict[str, Any]]]
) -> None:
    state = make_state(options={"fail_on": "explode", "fail_after_steps": 3, "step_delay": 0.01})
    job = make_job(state, prompt="explode it", quality="high", stream=True, partial_images=2)  # previews after 3, 5

    events = [e for e in asyncio.run(run_all(state, job)) if not isinstance(e, KeepAlive)]
    assert [type(e) for e in events] == [Preview, Failed], "the preview before the failure, then the failure"
    assert isinstance(events[-1].error, EngineError)
    audit = one_audit(audit_log(), job)
    assert (audit["outcome"], audit["status"]) == ("server_error", 500)


def test_final_raises_the_error_of_a_failed_run(
    make_state: Factory, audit_log: Callable[[], list[dict[str, Any]]]
) -> None:
    state = make_state(options={"fail_on": "explode"})
    job = make_job(state, prompt="explode it")
    with pytest.raises(EngineError):
        asyncio.run(final(state, job))
    audit = one_audit(audit_log(), job)
    assert (audit["outcome"], audit["status"]) == ("server_error", 500)
    # The job was admitted and charged (the engine failed after admission), but no usage was recorded.
    assert usage_requests(state) is None


def test_a_failed_run_is_not_logged_as_a_cancellation(
    make_state: Factory, caplog: pytest.LogCaptureFixture, audit_log: Callable[[], list[dict[str, Any]]]
) -> None:
    """``final()`` closes the events after the :class:`Failed` event: the run failed, the client did not go away."""
    caplog.set_level(logging.INFO, logger="imageforge.serving.pipeline")
    state = make_state(options={"fail_on": "explode"})
    job = make_job(state, prompt="explode it")
    with pytest.raises(EngineError):
        asyncio.run(final(state, job))
    assert one_audit(audit_log(), job)["outcome"] == "server_error"
    pipeline_lines = [r.getMessage() for r in caplog.records if r.name == "imageforge.serving.pipeline"]
    assert not [line for line in pipeline_lines if "cancelled" in line], pipeline_lines


# -- preview_steps ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "k", "steps"),
    [(20, 3, [5, 10, 15]), (1, 3, []), (4, 3, [1, 2, 3]), (8, 2, [3, 5]), (8, 3, [2, 4, 6]), (2, 3, [1]), (10, 0, [])],
)
def test_preview_steps(total: int, k: int, steps: list[int]) -> None:
    assert preview_steps(total, k) == steps
