"""The engine worker with the fake engine: batching across requests, per-image seeds, cancellation at step
boundaries, faults that fail only their batch, OOM retry at half batch, timeouts and shutdown.

Ordering and counts are asserted, never durations.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import numpy as np
import pytest

from imageforge.engines.fake import FakeEngine
from imageforge.errors import (
    EngineError,
    EngineUnavailableError,
    GenerationCancelled,
    GenerationTimeout,
    InvalidRequestError,
    OutOfMemoryError,
    QueueFullError,
    ShuttingDownError,
)
from imageforge.metrics import Metrics
from imageforge.params import GenerationParams, StepPreview
from imageforge.scheduler.worker import EngineWorker


def params(prompt: str, n: int = 1, seed: int = 7, steps: int = 6) -> GenerationParams:
    return GenerationParams(prompt=prompt, width=64, height=64, steps=steps, seed=seed, n=n)


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """Holds the engine's first call until the test releases it, so later jobs pile up in the queue."""
    ev = threading.Event()
    yield ev
    ev.set()


def make_worker(engine: FakeEngine, **kw: object) -> EngineWorker:
    kw.setdefault("batch_wait_s", 0.0)
    kw.setdefault("warmup", False)
    return EngineWorker("fake", engine, metrics=Metrics(), **kw)  # type: ignore[arg-type]


def block_first_call(worker: EngineWorker, gate: threading.Event) -> threading.Thread:
    """Occupy the engine thread until ``gate`` is set (a maintenance call runs on the owning thread)."""
    started = threading.Event()

    def hold() -> None:
        started.set()
        gate.wait(30)

    t = threading.Thread(target=worker.call, args=(hold,), daemon=True)
    t.start()
    assert started.wait(30)
    return t


def pixels(images: tuple[object, ...]) -> list[np.ndarray]:
    return [np.asarray(im) for im in images]


async def run_queued(worker: EngineWorker, gate: threading.Event, jobs: list[GenerationParams]) -> list[object]:
    """Submit every job while the engine is held, release it once all of them wait, and return their results
    (exceptions included), so the worker sees the whole queue at once."""
    task = asyncio.gather(*(worker.generate(p, threading.Event()) for p in jobs), return_exceptions=True)
    while len(worker._waiting) < len(jobs):
        await asyncio.sleep(0.01)
    gate.set()
    return await task


def test_waiting_compatible_jobs_share_one_engine_call_and_equal_their_lone_images(gate: threading.Event) -> None:
    engine = FakeEngine(max_batch=8)
    worker = make_worker(engine)
    holder = block_first_call(worker, gate)
    jobs = [params("a cat", n=2, seed=1), params("a dog", seed=5), params("a fox", n=3, seed=9)]

    results = asyncio.run(run_queued(worker, gate, jobs))
    holder.join()
    assert [len(c) for c in engine.calls] == [3], "one engine call for the three requests"
    alone = FakeEngine()
    for p, batched in zip(jobs, results, strict=True):
        lone = alone.generate([p])[0]
        assert batched.seeds == lone.seeds  # type: ignore[attr-defined]
        for a, b in zip(pixels(batched.images), pixels(lone.images), strict=True):  # type: ignore[attr-defined]
            assert np.array_equal(a, b)
    worker.close()


def test_incompatible_jobs_run_in_separate_calls_and_max_batch_bounds_a_call(gate: threading.Event) -> None:
    engine = FakeEngine(max_batch=8)
    worker = make_worker(engine, max_batch=2)
    holder = block_first_call(worker, gate)
    jobs = [params("a"), params("b"), params("c", steps=3), params("d")]

    results = asyncio.run(run_queued(worker, gate, jobs))
    holder.join()
    assert not any(isinstance(r, Exception) for r in results)
    assert [[p.prompt for p in call] for call in engine.calls] == [["a", "b"], ["c"], ["d"]]
    worker.close()


@pytest.mark.parametrize("drops", [True, False], ids=["engine-drops-rows", "engine-keeps-rows"])
def test_a_cancelled_job_leaves_its_batch_at_the_next_step_and_the_others_finish(
    gate: threading.Event, drops: bool
) -> None:
    engine = FakeEngine(step_delay=0.02, drops_requests=drops)
    worker = make_worker(engine)
    holder = block_first_call(worker, gate)
    cancel_a, cancel_b = threading.Event(), threading.Event()
    steps_seen: list[int] = []

    def on_step_a(st: StepPreview) -> None:
        steps_seen.append(st.step)
        if st.step == 2:
            cancel_a.set()  # the client goes away during step 3

    async def run() -> tuple[object, object]:
        a = asyncio.ensure_future(worker.generate(params("a", steps=10), cancel_a, on_step_a))
        b = asyncio.ensure_future(worker.generate(params("b", steps=10), cancel_b))
        while len(worker._waiting) < 2:
            await asyncio.sleep(0.01)
        gate.set()
        return tuple(await asyncio.gather(a, b, return_exceptions=True))  # type: ignore[return-value]

    res_a, res_b = asyncio.run(run())
    holder.join()
    assert isinstance(res_a, GenerationCancelled) and "after 3 step(s)" in res_a.message
    assert steps_seen == [1, 2], "a cancelled job gets no more previews"
    assert not isinstance(res_b, Exception) and len(res_b.images) == 1  # type: ignore[attr-defined]
    assert len(engine.calls) == 1 and len(engine.calls[0]) == 2
    wasted = worker.metrics.cancelled_steps.labels("fake")._value.get()
    if drops:  # the engine stopped computing it at the step boundary: rows of 2 requests, then of 1
        assert engine.active_per_step[0] == [2, 2] + [1] * 8
        assert wasted == 1  # the step at which the worker saw the cancel
    else:  # its rows were computed until the batch ended, and counted as wasted (steps 3 to 10)
        assert engine.active_per_step[0] == [2] * 10
        assert wasted == 8
    worker.close()


def test_a_lone_cancelled_job_stops_the_engine_within_one_step() -> None:
    engine = FakeEngine(step_delay=0.01)
    worker = make_worker(engine)
    cancel = threading.Event()
    seen: list[int] = []

    def on_step(st: StepPreview) -> None:
        seen.append(st.step)
        if st.step == 3:
            cancel.set()

    with pytest.raises(GenerationCancelled, match="after 3 step"):
        asyncio.run(worker.generate(params("a", steps=50), cancel, on_step))
    assert seen == [1, 2, 3], "the engine stopped at the step boundary, not after 50 steps"
    assert len(asyncio.run(worker.generate(params("next", steps=2), threading.Event())).images) == 1
    worker.close()


def test_a_cancelled_waiting_job_never_reaches_the_engine(gate: threading.Event) -> None:
    engine = FakeEngine()
    worker = make_worker(engine)
    holder = block_first_call(worker, gate)
    cancel = threading.Event()

    async def run() -> object:
        task = asyncio.ensure_future(worker.generate(params("gone"), cancel))
        while not worker._waiting:
            await asyncio.sleep(0.01)
        cancel.set()
        gate.set()
        return (await asyncio.gather(task, return_exceptions=True))[0]

    assert isinstance(asyncio.run(run()), GenerationCancelled)
    holder.join()
    assert engine.calls == []
    worker.close()


def test_an_engine_error_fails_only_the_job_that_causes_it_and_the_worker_keeps_serving(gate: threading.Event) -> None:
    engine = FakeEngine(fail_on="boom")
    worker = make_worker(engine, max_batch=3)
    holder = block_first_call(worker, gate)
    jobs = [params("fine 1"), params("boom"), params("fine 2")]

    results = asyncio.run(run_queued(worker, gate, jobs))
    holder.join()
    assert isinstance(results[1], EngineError)  # the job whose input fails the engine, alone
    assert not isinstance(results[0], Exception) and not isinstance(results[2], Exception)
    # The batch failed once, then its jobs ran one by one: only "boom" failed.
    assert [[p.prompt for p in call] for call in engine.calls] == [
        ["fine 1", "boom", "fine 2"], ["fine 1"], ["boom"], ["fine 2"],
    ]  # fmt: skip
    lone = asyncio.run(worker.generate(params("fine 1"), threading.Event()))
    assert all(np.array_equal(a, b) for a, b in zip(pixels(results[0].images), pixels(lone.images), strict=True))  # type: ignore[union-attr]
    after = asyncio.run(worker.generate(params("fine again"), threading.Event()))
    assert len(after.images) == 1
    worker.close()


def test_a_job_the_engine_cannot_run_is_refused_alone_before_it_joins_a_batch() -> None:
    engine = FakeEngine()
    worker = make_worker(engine)
    with pytest.raises(InvalidRequestError) as e:
        worker.submit(params("too many steps", steps=5000), threading.Event())
    assert e.value.param == "steps" and engine.calls == []
    worker.close()


def test_out_of_memory_is_retried_once_at_half_batch(gate: threading.Event) -> None:
    engine = FakeEngine(oom_above=2)
    worker = make_worker(engine)
    holder = block_first_call(worker, gate)
    jobs = [params(f"p{i}") for i in range(4)]

    results = asyncio.run(run_queued(worker, gate, jobs))
    holder.join()
    assert not any(isinstance(r, Exception) for r in results), results
    assert [len(c) for c in engine.calls] == [4, 2, 2]
    assert worker.metrics.oom_retries.labels("fake")._value.get() == 1
    # A lone request that does not fit fails with a clear 500, and the worker goes on.
    with pytest.raises(OutOfMemoryError, match="ran out of memory generating 3 image"):
        asyncio.run(worker.generate(params("big", n=3), threading.Event()))
    assert len(asyncio.run(worker.generate(params("small"), threading.Event())).images) == 1
    worker.close()


def test_a_failure_after_an_out_of_memory_split_still_fails_only_its_own_job(gate: threading.Event) -> None:
    engine = FakeEngine(oom_above=2, fail_on="boom")
    worker = make_worker(engine)
    holder = block_first_call(worker, gate)
    results = asyncio.run(run_queued(worker, gate, [params("fine 1"), params("boom"), params("fine 2"),
                                                    params("fine 3")]))  # fmt: skip
    holder.join()
    assert isinstance(results[1], EngineError)
    assert not any(isinstance(r, Exception) for r in (results[0], results[2], results[3])), results
    # 4 -> out of memory; halves [fine 1, boom] (fails) and [fine 2, fine 3]; the failed half one by one.
    assert [[p.prompt for p in c] for c in engine.calls] == [
        ["fine 1", "boom", "fine 2", "fine 3"], ["fine 1", "boom"], ["fine 1"], ["boom"], ["fine 2", "fine 3"],
    ]  # fmt: skip
    worker.close()


def test_abort_ends_the_jobs_of_a_failed_batch_still_waiting_to_run_again(gate: threading.Event) -> None:
    engine = FakeEngine(fail_on="boom", fail_after_steps=10, step_delay=0.05)  # "boom" alone: 0.5 s to fail
    worker = make_worker(engine)
    holder = block_first_call(worker, gate)

    async def scenario() -> list[object]:
        task = asyncio.gather(*(worker.generate(params(p, steps=20), threading.Event())
                                for p in ("boom", "fine 1", "fine 2")), return_exceptions=True)  # fmt: skip
        while len(worker._waiting) < 3:
            await asyncio.sleep(0.01)
        gate.set()
        while len(engine.calls) < 2:  # the batch failed; "boom" now runs alone, the others are pending
            await asyncio.sleep(0.01)
        worker.abort("the drain timeout passed")
        return list(await task)

    results = asyncio.run(scenario())
    holder.join()
    assert all(isinstance(r, ShuttingDownError) for r in results[1:]), results
    assert [[p.prompt for p in c] for c in engine.calls] == [["boom", "fine 1", "fine 2"], ["boom"]]
    worker.close()


def test_a_model_that_could_not_load_is_refused_at_admission() -> None:
    class Broken(FakeEngine):
        def load(self) -> None:
            raise OSError("no such checkpoint")

    worker = make_worker(Broken())
    worker.start()
    while not worker.state().startswith("failed"):
        threading.Event().wait(0.01)
    with pytest.raises(EngineUnavailableError, match="no such checkpoint"):
        worker.admit(params("x"))
    worker.close()


def test_the_request_timeout_stops_a_job_with_a_clear_error() -> None:
    engine = FakeEngine(step_delay=0.05)
    worker = make_worker(engine, request_timeout_s=0.3)
    cancel = threading.Event()
    with pytest.raises(GenerationTimeout, match="request_timeout_seconds"):
        asyncio.run(worker.generate(params("slow", steps=200), cancel))
    assert cancel.is_set()
    # The engine let go of it: the next job runs.
    worker.request_timeout_s = None
    assert len(asyncio.run(worker.generate(params("next", steps=2), threading.Event())).images) == 1
    worker.close()


def test_a_full_queue_refuses_at_once_and_close_fails_waiting_jobs(gate: threading.Event) -> None:
    worker = make_worker(FakeEngine(), queue_limit=2)
    holder = block_first_call(worker, gate)

    async def run() -> list[object]:
        tasks = [asyncio.ensure_future(worker.generate(params(f"w{i}"), threading.Event())) for i in range(2)]
        while len(worker._waiting) < 2:
            await asyncio.sleep(0.01)
        with pytest.raises(QueueFullError) as info:
            await worker.generate(params("third"), threading.Event())
        assert info.value.limits[0].limit == 2 and info.value.retry_after >= 1
        await asyncio.to_thread(worker.close, 0.1)
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(run())
    assert all(isinstance(r, ShuttingDownError) for r in results), results
    gate.set()
    holder.join()


def test_warmup_runs_before_ready() -> None:
    engine = FakeEngine()
    worker = EngineWorker("fake", engine, warmup=True, metrics=Metrics())
    assert worker.state() == "loading"
    worker.call(lambda: None)  # runs after load and warm-up, on the owning thread
    assert worker.ready and len(engine.calls) == 1 and engine.calls[0][0].prompt == "warm-up"
    worker.close()


def test_engines_load_one_at_a_time() -> None:
    """diffusers/accelerate patch torch's module construction process-wide while loading (init_empty_weights):
    an embedded engine built meanwhile on another thread got meta tensors. Loads are serialized."""
    active, overlaps = [0], [0]
    lock = threading.Lock()

    class SlowLoad(FakeEngine):
        def load(self) -> None:
            with lock:
                active[0] += 1
                overlaps[0] = max(overlaps[0], active[0])
            threading.Event().wait(0.05)
            with lock:
                active[0] -= 1
            super().load()

    workers = [EngineWorker(f"w{i}", SlowLoad(), warmup=False, metrics=Metrics()) for i in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.call(lambda: None)
        assert w.ready
        w.close()
    assert overlaps[0] == 1


def test_a_request_cancelled_while_waiting_gives_its_slot_back_at_once(gate: threading.Event) -> None:
    worker = make_worker(FakeEngine(), queue_limit=1)
    holder = block_first_call(worker, gate)  # the engine is busy for as long as the test wants
    cancel = threading.Event()

    async def run() -> object:
        task = asyncio.ensure_future(worker.generate(params("abandoned"), cancel))
        while not worker._waiting:
            await asyncio.sleep(0.01)
        with pytest.raises(QueueFullError):
            worker.admit()
        cancel.set()  # the client went away (seen by the route's disconnect watcher)
        result = (await asyncio.gather(task, return_exceptions=True))[0]
        worker.admit()  # the slot is free while the engine is still busy
        return result

    assert isinstance(asyncio.run(run()), GenerationCancelled)
    gate.set()
    holder.join()
    worker.close()


def test_admission_is_bounded_by_the_time_the_queued_work_takes(gate: threading.Event) -> None:
    """Measured cost c per job, wait budget 2.5c: a job may finish within 3.5c, so three jobs queue (ending at c,
    2c, 3c) and the fourth (4c) is refused at once, told to retry when enough work has drained (~0.5c)."""
    engine = FakeEngine(step_delay=0.01)
    worker = make_worker(engine, max_batch=1)
    asyncio.run(worker.generate(params("learn"), threading.Event()))  # the engine's cost of such a job
    cost = worker.cost.estimate(params("x").batch_key(), 1)
    assert cost is not None and cost > 0
    worker.max_queue_seconds = 2.5 * cost
    holder = block_first_call(worker, gate)  # nothing runs, so nothing is measured, while the queue fills
    jobs = [worker.submit(params(f"queued {i}"), threading.Event()) for i in range(3)]
    with pytest.raises(QueueFullError) as refused:
        worker.submit(params("one too many"), threading.Event())
    assert 0 < refused.value.retry_after <= cost and "budget" in refused.value.message
    with pytest.raises(QueueFullError):
        worker.admit(params("asked first"))  # the route's early check says the same
    gate.set()
    holder.join()
    for job in jobs:
        assert len(job.future.result(30).images) == 1
    worker.admit(params("room again"))  # the queue drained
    worker.close()


def test_without_a_budget_a_request_may_wait_a_quarter_of_its_own_run_time(gate: threading.Event) -> None:
    engine = FakeEngine(step_delay=0.01)
    worker = make_worker(engine, max_batch=1)
    asyncio.run(worker.generate(params("learn"), threading.Event()))
    holder = block_first_call(worker, gate)
    first = worker.submit(params("first"), threading.Event())  # ends at c: within 1.25c
    with pytest.raises(QueueFullError):
        worker.submit(params("second"), threading.Event())  # would end at 2c
    gate.set()
    holder.join()
    assert first.future.result(30).images
    worker.close()


def test_a_lone_request_does_not_wait_for_partners_that_cannot_come() -> None:
    """With the server's request count, a job that is the only request in the server starts at once, even with
    a batch wait far longer than the test allows; the count is the only thing that can cut that wait."""
    from imageforge.scheduler.traffic import Traffic

    traffic = Traffic()
    traffic.in_flight = 1  # this request
    engine = FakeEngine(max_batch=8)
    worker = make_worker(engine, batch_wait_s=600.0, traffic=traffic)
    worker.start()

    async def go() -> object:
        return await asyncio.wait_for(worker.generate(params("a cat"), threading.Event()), 60)

    result = asyncio.run(go())
    assert len(result.images) == 1  # type: ignore[attr-defined]
    assert [len(c) for c in engine.calls] == [1]
    worker.close()


def test_a_request_waits_for_one_still_on_its_way_in() -> None:
    """Two requests in the server, one queued so far: the worker waits, and the second joins its batch."""
    from imageforge.scheduler.traffic import Traffic

    traffic = Traffic()
    traffic.in_flight = 2
    engine = FakeEngine(max_batch=8)
    worker = make_worker(engine, batch_wait_s=600.0, traffic=traffic)
    worker.start()

    async def go() -> list[object]:
        first = asyncio.ensure_future(worker.generate(params("a cat", seed=1), threading.Event()))
        while len(worker._waiting) < 1:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # the worker is waiting for the second (nothing else ends a 600 s wait early)
        assert not engine.calls
        second = worker.generate(params("a dog", seed=2), threading.Event())
        return list(await asyncio.wait_for(asyncio.gather(first, second), 60))

    assert len(asyncio.run(go())) == 2
    assert [len(c) for c in engine.calls] == [2], "one engine call for both"
    worker.close()
