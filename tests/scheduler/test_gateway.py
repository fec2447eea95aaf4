"""The engine gateway on a real :class:`EnginePool` with the fake engine: previews at the steps asked for, then
one ``RunDone``; ``Idle`` while a step runs long; cancelling a queued run; admission refusals.

Ordering and counts are asserted, never durations.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from imageforge.config import Catalogue, ModelEntry, Settings
from imageforge.engines.fake import FakeEngine
from imageforge.errors import EngineError, GenerationCancelled, InvalidRequestError, ModelNotFoundError, QueueFullError
from imageforge.metrics import Metrics
from imageforge.params import GenerationParams
from imageforge.scheduler.gateway import Idle, InProcessGateway, RunDone, StepImage
from imageforge.scheduler.pool import EnginePool
from tests.scheduler.holding import engine_held

MODEL = "fake-model"


def params(prompt: str = "a cat", *, n: int = 1, steps: int = 6, seed: int = 3) -> GenerationParams:
    return GenerationParams(prompt=prompt, width=64, height=64, steps=steps, seed=seed, n=n)


@pytest.fixture
def make_gateway(tmp_path: Path) -> Iterator[Callable[..., InProcessGateway]]:
    pools: list[EnginePool] = []

    def make(queue_limit: int = 64, **options: Any) -> InProcessGateway:
        catalogue = Catalogue({MODEL: ModelEntry(engine="fake", profile="imageforge", options=options)})
        # A wait budget far above these jobs' run times: admission by time never refuses a job of these tests.
        settings = Settings(data_dir=tmp_path, warmup=False, batch_wait_ms=0, queue_limit=queue_limit,
                            max_queue_seconds=60)  # fmt: skip
        pool = EnginePool(catalogue, settings, Metrics())
        pools.append(pool)
        return InProcessGateway(pool)

    yield make
    for pool in pools:
        pool.close()


def engine_of(gateway: InProcessGateway) -> FakeEngine:
    engine = gateway.pool.worker(MODEL).engine
    assert isinstance(engine, FakeEngine)
    return engine


async def collect(gen: Any) -> list[Any]:
    return [event async for event in gen]


def test_previews_come_at_exactly_the_steps_asked_for_then_one_run_done(make_gateway: Callable[..., Any]) -> None:
    gateway = make_gateway(step_delay=0.01)

    async def run() -> tuple[list[Any], tuple[float, float]]:
        r = await gateway.submit(MODEL, params(n=2, steps=6), threading.Event(), [2, 4, 6])
        return await collect(r.events()), r.timings

    events, timings = asyncio.run(run())
    steps = [e.step for e in events if isinstance(e, StepImage)]
    assert steps == [2, 4, 6]
    assert all(isinstance(e, StepImage | RunDone) for e in events), "no Idle without an idle interval"
    assert isinstance(events[-1], RunDone) and sum(isinstance(e, RunDone) for e in events) == 1
    for e in events[:-1]:
        assert e.image.size == (64, 64)  # the request's first image
    done = events[-1]
    assert len(done.result.images) == 2
    assert done.result.images[0].size == (64, 64)
    assert done.queue_s >= 0 and done.run_s > 0
    assert timings == (done.queue_s, done.run_s)
    assert [len(call) for call in engine_of(gateway).calls] == [1]


def test_no_previews_when_none_are_asked_for(make_gateway: Callable[..., Any]) -> None:
    gateway = make_gateway()

    async def run() -> list[Any]:
        return await collect((await gateway.submit(MODEL, params(), threading.Event())).events())

    events = asyncio.run(run())
    assert [type(e) for e in events] == [RunDone]


def test_preview_steps_past_the_run_are_never_sent(make_gateway: Callable[..., Any]) -> None:
    gateway = make_gateway()

    async def run() -> list[Any]:
        return await collect((await gateway.submit(MODEL, params(steps=3), threading.Event(), [0, 2, 9])).events())

    events = asyncio.run(run())
    assert [e.step for e in events if isinstance(e, StepImage)] == [2]
    assert isinstance(events[-1], RunDone)


def test_previews_keep_their_order_when_several_arrive_at_once(make_gateway: Callable[..., Any]) -> None:
    """The reader is waiting for a preview and the event loop is busy while the engine takes several steps: all
    their previews arrive in one loop iteration. They must still come out in step order (the pipeline numbers
    partial images by arrival)."""
    gateway = make_gateway()
    metrics = gateway.pool.metrics

    def engine_finished() -> bool:
        labels = {"model": MODEL, "outcome": "ok"}
        done: float | None = metrics.registry.get_sample_value("imageforge_images_total", labels)
        return done == 1

    async def run() -> list[Any]:
        reader = asyncio.ensure_future(collect((await gateway.submit(MODEL, params(steps=6), threading.Event(),
                                                              range(1, 7))).events()))  # fmt: skip
        await asyncio.sleep(0)  # the reader now waits for its first preview
        deadline = time.monotonic() + 30
        while not engine_finished():  # block the loop (a busy server) until the engine is done
            assert time.monotonic() < deadline
            time.sleep(0.001)
        return await reader

    events = asyncio.run(run())
    assert [e.step for e in events if isinstance(e, StepImage)] == [1, 2, 3, 4, 5, 6]
    assert isinstance(events[-1], RunDone)


def test_idle_events_while_a_slow_step_runs(make_gateway: Callable[..., Any]) -> None:
    gateway = make_gateway(step_delay=0.1)

    async def run() -> list[Any]:
        return await collect((await gateway.submit(MODEL, params(steps=3), threading.Event(), [2])).events(idle_s=0.01))

    events = asyncio.run(run())
    assert any(isinstance(e, Idle) for e in events)
    assert isinstance(events[-1], RunDone)
    assert [e.step for e in events if isinstance(e, StepImage)] == [2]
    assert sum(isinstance(e, RunDone) for e in events) == 1


def test_an_engine_error_is_raised_from_the_events(make_gateway: Callable[..., Any]) -> None:
    gateway = make_gateway(fail_on="explode", fail_after_steps=2, step_delay=0.01)

    async def run() -> list[Any]:
        seen: list[Any] = []
        with pytest.raises(EngineError):
            async for event in (await gateway.submit(MODEL, params("explode"), threading.Event(), [1, 2, 4])).events():
                seen.append(event)
        return seen

    seen = asyncio.run(run())
    assert [e.step for e in seen] == [1, 2]  # the previews before the failure, then the error


def test_cancel_before_the_run_starts_withdraws_it(make_gateway: Callable[..., Any]) -> None:
    gateway = make_gateway()
    worker = gateway.pool.worker(MODEL)
    cancel = threading.Event()

    async def run() -> None:
        r = await gateway.submit(MODEL, params("withdrawn"), cancel, [2])
        assert len(worker._waiting) == 1
        r.cancel()
        assert cancel.is_set()
        assert worker._waiting == []
        with pytest.raises(GenerationCancelled):
            await collect(r.events())

    with engine_held(worker):
        asyncio.run(run())

    async def after() -> list[Any]:
        return await collect((await gateway.submit(MODEL, params("kept"), threading.Event())).events())

    assert isinstance(asyncio.run(after())[-1], RunDone)
    assert [[p.prompt for p in call] for call in engine_of(gateway).calls] == [["kept"]], "the withdrawn job never ran"


def test_closing_the_events_early_stops_the_job(make_gateway: Callable[..., Any]) -> None:
    gateway = make_gateway(step_delay=0.05)
    cancel = threading.Event()
    metrics = gateway.pool.metrics

    async def run() -> StepImage:
        events = (await gateway.submit(MODEL, params(steps=40), cancel, [1, 20])).events()
        first = await anext(events)
        await events.aclose()
        assert isinstance(first, StepImage)
        return first

    assert asyncio.run(run()).step == 1
    assert cancel.is_set(), "the reader went away: the engine is told to stop"
    deadline = time.monotonic() + 30
    while metrics.registry.get_sample_value("imageforge_images_total", {"model": MODEL, "outcome": "cancelled"}) != 1:
        assert time.monotonic() < deadline, "the job was never settled as cancelled"
        time.sleep(0.01)
    assert engine_of(gateway).request_steps < 40


def test_admit_refuses_when_the_queue_is_full(make_gateway: Callable[..., Any]) -> None:
    gateway = make_gateway(queue_limit=1)
    worker = gateway.pool.worker(MODEL)

    async def run(release: Callable[[], None]) -> list[Any]:
        gateway.admit(MODEL, params())  # an empty queue admits
        gateway.admit(MODEL, None)
        queued = await gateway.submit(MODEL, params("queued"), threading.Event())
        with pytest.raises(QueueFullError) as info:
            gateway.admit(MODEL, params())
        assert info.value.status == 429 and info.value.code == "rate_limit_exceeded" and info.value.retry_after > 0
        with pytest.raises(QueueFullError):
            gateway.admit(MODEL, None)
        with pytest.raises(QueueFullError):  # submit is admitted atomically: the same refusal
            (await gateway.submit(MODEL, params("refused"), threading.Event()))
        assert len(worker._waiting) == 1
        release()
        return await collect(queued.events())

    with engine_held(worker) as release:
        events = asyncio.run(run(release))
    assert isinstance(events[-1], RunDone)
    assert [[p.prompt for p in call] for call in engine_of(gateway).calls] == [["queued"]]
    refusals = gateway.pool.metrics.registry.get_sample_value("imageforge_rate_limited_total", {"reason": "queue_full"})
    assert refusals == 3


def test_admit_refuses_a_job_the_engine_cannot_run(make_gateway: Callable[..., Any]) -> None:
    gateway = make_gateway()
    with pytest.raises(InvalidRequestError) as info:
        gateway.admit(MODEL, params(steps=5000))
    assert info.value.param == "steps"


def test_an_unknown_model_is_refused(make_gateway: Callable[..., Any]) -> None:
    gateway = make_gateway()
    with pytest.raises(ModelNotFoundError):
        gateway.admit("no-such-model", None)
    assert gateway.capabilities(MODEL) == engine_of(gateway).capabilities


def test_a_default_complexity_above_low_needs_an_engine_that_plans(tmp_path: Path) -> None:
    from imageforge.errors import ConfigurationError

    settings = Settings(data_dir=tmp_path, warmup=False)
    for planning, fails in ((False, True), (True, False)):
        entry = ModelEntry(engine="fake", profile="imageforge", options={"planning": planning}, complexity="high")
        pool = EnginePool(Catalogue({MODEL: entry}), settings, Metrics())
        try:
            if fails:
                with pytest.raises(ConfigurationError, match="complexity"):
                    pool.worker(MODEL)
            else:
                assert pool.capabilities(MODEL).planning
        finally:
            pool.close()
