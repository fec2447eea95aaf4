"""One engine, one owning thread that batches compatible jobs across requests (DESIGN.md §1).

The thread loads the engine, warms it up with one tiny generation, then loops: take the oldest waiting job and
the compatible jobs behind it (``batching.take_batch``), waiting up to ``batch_wait_s`` for more while the batch
is not full, and run them as one ``engine.generate`` call. Every image has its own seed, so a batched image
equals the same image made alone.

- **Admission** by time (``admission.py``): a job is admitted only if the work queued ahead of it, estimated from
  the engine's measured costs (``cost.py``), lets it finish within its run time on an idle engine plus its wait
  budget (``max_queue_seconds``; by default a quarter of that run time), without making any earlier job miss its own
  promise. Otherwise it gets :class:`QueueFullError` at once (429, ``Retry-After`` = when enough work will have
  drained). At most ``queue_limit`` jobs wait in any case.
- **Cancellation**: a job whose ``cancel`` event is set (client gone, timeout) leaves its batch at the next step
  boundary: its future is settled at once and it gets no more previews; the others go on. Engines that declare
  ``drops_requests`` (the embedded and fake engines) are told through ``request_cancelled`` and stop computing
  its rows there; with other engines (diffusers pipelines, whose loop cannot shrink a batch) its rows are
  computed until the batch ends or every job of it is cancelled. Steps run for cancelled jobs are counted
  (``imageforge_cancelled_steps``). A waiting job that is cancelled never starts.
- **Faults**: one job's input can never fail another (issue 15). Each job is checked against the engine's
  capabilities on its own before it may join a batch; if an engine call still raises, the batch's jobs are
  run again one by one, so only the job that fails alone fails. Out of memory frees memory and retries the
  batch once as two halves; a lone request that still does not fit fails with :class:`OutOfMemoryError`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any, TypeVar

from imageforge.engines.base import Engine, check_batch
from imageforge.errors import (
    EngineError,
    EngineUnavailableError,
    GenerationCancelled,
    GenerationTimeout,
    ImageForgeError,
    LimitState,
    OutOfMemoryError,
    QueueFullError,
    ShuttingDownError,
    reset_duration,
)
from imageforge.metrics import Metrics
from imageforge.params import (
    BatchKey,
    EngineCapabilities,
    GenerationParams,
    GenerationResult,
    StepCallback,
    StepPreview,
)
from imageforge.scheduler.admission import Queued, refusal
from imageforge.scheduler.batching import batch_images, take_batch
from imageforge.scheduler.cost import CostModel
from imageforge.scheduler.faults import free_memory, is_out_of_memory
from imageforge.scheduler.traffic import Traffic

__all__ = ["EngineWorker", "Job"]

log = logging.getLogger(__name__)
T = TypeVar("T")
# Engines load one at a time, process-wide: diffusers/accelerate build models under init_empty_weights, which
# patches torch's module construction globally, so an engine built on another thread meanwhile gets meta tensors.
_LOAD_LOCK = threading.Lock()
WATCH_INTERVAL_S = 0.1  # how often a waiting request checks its cancel flag and deadline
MIN_RETRY_S = 0.01  # the shortest Retry-After a time refusal gives (the batch it would join is about to start)
# Without max_queue_seconds, a request may wait a quarter of its run time on an idle engine. Not half: on a machine
# whose cores the server's own encoding, moderation and HTTP work share with the engine, a loaded engine runs
# 10-15 % slower than an idle one, and a quarter is what keeps the admitted p99 within 1.5x of the unloaded p99
# (issue 15's promise; measured in BENCHMARKS.md, "Overload").
AUTO_WAIT_FACTOR = 0.25


@dataclass(eq=False)
class Job:
    """One request's work, from admission to its result; settled exactly once, by the worker thread."""

    params: GenerationParams
    cancel: threading.Event
    on_step: StepCallback | None = None
    model: str = ""
    future: Future[GenerationResult] = field(default_factory=Future)
    enqueued: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None
    reason: str = "cancelled"  # why ``cancel`` was set: "cancelled" (client gone) or "timeout"
    steps_after_cancel: int = 0
    settled: bool = False
    deadline: float | None = None  # monotonic time admission promised it would finish by (None: no estimate yet)

    @property
    def key(self) -> BatchKey:
        return self.params.batch_key()

    @property
    def queue_seconds(self) -> float:
        return (self.started or time.monotonic()) - self.enqueued

    @property
    def run_seconds(self) -> float:
        return (self.finished or time.monotonic()) - self.started if self.started is not None else 0.0


class EngineWorker:
    def __init__(
        self,
        name: str,
        engine: Engine,
        *,
        queue_limit: int = 64,
        max_queue_seconds: float | None = None,
        batch_wait_s: float = 0.005,
        max_batch: int | None = None,
        request_timeout_s: float | None = None,
        warmup: bool = True,
        metrics: Metrics | None = None,
        traffic: Traffic | None = None,
    ) -> None:
        self.name = name
        self.traffic = traffic
        self.engine = engine
        self.queue_limit = queue_limit
        self.max_queue_seconds = max_queue_seconds
        self.batch_wait_s = batch_wait_s
        caps = engine.capabilities
        self.max_images = max(1, min(max_batch or caps.max_batch, caps.max_batch))
        self.request_timeout_s = request_timeout_s
        self.warmup = warmup
        self.metrics = metrics or Metrics()
        self._cond = threading.Condition()
        self._waiting: list[Job] = []
        self._running: list[Job] = []
        # Jobs of a failed batch still waiting for their turn to run again (alone, or as a half after OOM): not in
        # the queue, not running, but admission must count them and abort must end them.
        self._pending: list[Job] = []
        self._settle_lock = threading.Lock()  # the engine thread and abort() may settle the same job
        self._calls: list[tuple[Callable[[], object], Future[object]]] = []
        self._closing = False
        self._started = False
        self._state = "loading"
        self._load_error: BaseException | None = None
        self._step = 0  # the last step the running batch finished
        self._total_steps = 0  # ... of how many
        self._running_since = 0.0
        self._batch_seconds = 1.0  # recent engine time of a batch (EMA): Retry-After when the count bound refuses
        self.cost = CostModel()
        self._running_until = 0.0  # monotonic time the running batch should end (its estimate)
        self._thread = threading.Thread(target=self._loop, name=f"engine-{name}", daemon=True)

    @property
    def capabilities(self) -> EngineCapabilities:
        return self.engine.capabilities

    # -- lifecycle --------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the owning thread: it loads (and warms) the engine first, so requests wait for that."""
        with self._cond:
            if not self._started and not self._closing:
                self._started = True
                self._thread.start()

    def state(self) -> str:
        """``loading``, ``warming``, ``ready``, ``failed: <reason>`` or ``closed``."""
        return self._state

    @property
    def ready(self) -> bool:
        return self._state == "ready"

    @property
    def died(self) -> bool:
        """The owning thread ended without being closed (a bug or a fatal device error): nothing will run."""
        return self._started and not self._closing and not self._thread.is_alive()

    def close(self, timeout: float = 5.0) -> None:
        """Refuse new jobs, fail waiting ones, cancel running ones, and free the engine."""
        with self._cond:
            self._closing = True
            for job in self._waiting:
                self._settle(job, exc=ShuttingDownError("The server is shutting down."))
            self._waiting.clear()
            self.metrics.queue_depth.labels(self.name).set(0)
            for job in self._running:
                job.cancel.set()
            self._cond.notify_all()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self._close_engine()

    def abort(self, message: str) -> None:
        """Fail every waiting and running job now with :class:`ShuttingDownError` (the drain's time is up); the
        engine stops at its next step, since all its jobs are cancelled. New jobs are still accepted."""
        with self._cond:
            for job in (*self._waiting, *self._running, *self._pending):
                job.cancel.set()
                self._settle(job, exc=ShuttingDownError(message))
            self._waiting.clear()
            self.metrics.queue_depth.labels(self.name).set(0)
            self._cond.notify_all()

    def _close_engine(self) -> None:
        if self._state != "closed":
            self._state = "closed"
            try:
                self.engine.close()
            except Exception:  # closing must not raise out of shutdown
                log.exception("closing engine %s failed", self.name)

    # -- admission --------------------------------------------------------------------------------------------

    def retry_after(self) -> int:
        """Seconds until a queue slot is likely free: about one batch's engine time (1-60 s)."""
        return int(min(60, max(1, math.ceil(self._batch_seconds))))

    def admit(self, params: GenerationParams | None = None) -> None:
        """Raise if a job with ``params`` (or, without them, any job) would not be accepted now: one the engine
        cannot run, or one the queue has no time for; ``submit`` checks again, atomically."""
        if params is not None:
            check_batch([params], self.engine.capabilities)
        with self._cond:
            self._admission(params)

    def _admission(self, params: GenerationParams | None) -> float | None:
        """Raise the refusal of a job with ``params`` now, or return the deadline it is promised (``None`` while
        the engine's costs are unknown: then only the count bound applies). Called under ``_cond``."""
        if self._closing:
            raise ShuttingDownError("The server is shutting down; retry on another instance.")
        if self._load_error is not None:
            raise self._unavailable()
        waiting = len(self._waiting)
        if waiting >= self.queue_limit:
            retry = self.retry_after()
            self.metrics.rate_limited.labels("queue_full").inc()
            raise QueueFullError(
                f"The server is busy: {waiting} requests are queued for this model (limit {self.queue_limit}). "
                f"Retry after {retry} s.",
                retry_after=retry,
                limits=(LimitState("requests", self.queue_limit, 0, retry),),
            )
        if params is None:
            return None
        key = params.batch_key()
        own, unloaded = self.cost.estimate(key, params.n), self.cost.reference(key, params.n)
        if own is None or unloaded is None:
            return None
        now = time.monotonic()
        # The promise is made against the job's time on an idle engine; on an idle engine it is always kept.
        budget = self.max_queue_seconds if self.max_queue_seconds is not None else AUTO_WAIT_FACTOR * unloaded
        promise = max(own, unloaded + budget)
        queued = [Queued(j.key, j.params.n, None if j.deadline is None else j.deadline - now) for j in self._waiting]
        left = self._running_left(now)
        refused = refusal(queued, Queued(key, params.n, promise), running_left=left, max_images=self.max_images,
                          estimate=self.cost.estimate)  # fmt: skip
        if refused is not None:
            self.metrics.rate_limited.labels("queue_time").inc()
            wait = max(MIN_RETRY_S, refused.retry_after)
            reset = reset_duration(wait)
            why = (f"would keep this request waiting longer than its budget of {budget:.2f} s (it takes about "
                   f"{unloaded:.2f} s itself)" if refused.own else
                   "has no room for this request without delaying requests admitted before it")  # fmt: skip
            raise QueueFullError(
                f"The server is busy: the work queued for this model {why}. Retry after {reset}.",
                retry_after=wait,
                limits=(LimitState("requests", None, 0, wait),),
            )
        return now + promise

    def _running_left(self, now: float) -> float:
        """Seconds the running batch still needs — from its progress once a step is done (its real speed now),
        else from its estimate (0 for a shape never run) — plus those of a failed batch's jobs waiting to run
        again."""
        left = 0.0
        if self._running:
            step, total = self._step, self._total_steps
            if step > 0 and total > step:
                left = (now - self._running_since) / step * (total - step)
            else:
                left = max(0.0, self._running_until - now)
        for job in self._pending:
            left += self.cost.estimate(job.key, job.params.n) or 0.0
        return left

    def _start_running(self, batch: list[Job]) -> None:
        """Record the batch about to run (under ``_cond``): what admission's clock reads."""
        self._running = batch
        self._running_since = time.monotonic()
        key, images = batch[0].key, sum(j.params.n for j in batch)
        self._running_until = self._running_since + (self.cost.estimate(key, images) or 0.0)
        self._step = self._total_steps = 0

    def _stop_running(self) -> None:
        with self._cond:
            self._running = []

    def submit(
        self, params: GenerationParams, cancel: threading.Event, on_step: StepCallback | None = None, model: str = ""
    ) -> Job:
        """Queue a job (thread-safe); :class:`QueueFullError` at once when the queue is full. A job the engine
        could not run is refused here, alone (its error names the parameter), never inside a batch."""
        check_batch([params], self.engine.capabilities)
        job = Job(params, cancel, on_step, model)
        with self._cond:
            self._drop_cancelled_waiting()  # abandoned requests do not hold slots
            job.deadline = self._admission(params)
            self._waiting.append(job)
            self.metrics.queue_depth.labels(self.name).set(len(self._waiting))
            self._cond.notify_all()
        self.start()
        return job

    async def generate(
        self,
        params: GenerationParams,
        cancel: threading.Event,
        on_step: StepCallback | None = None,
        *,
        model: str = "",
        timings: dict[str, float] | None = None,
    ) -> GenerationResult:
        """Queue ``params`` and wait for its images. A cancelled await (client gone) or the request timeout sets
        ``cancel``: the job leaves its batch at the next step boundary. ``timings`` (if given) receives the
        job's ``queue_s`` and ``run_s``."""
        return await self.wait(self.submit(params, cancel, on_step, model), timings)

    async def wait(self, job: Job, timings: dict[str, float] | None = None) -> GenerationResult:
        """Wait for a job queued with :meth:`submit` (see :meth:`generate`)."""
        cancel = job.cancel
        waited = asyncio.wrap_future(job.future)
        deadline = None if self.request_timeout_s is None else time.monotonic() + self.request_timeout_s
        try:
            while True:
                # Wake up now and then: a job cancelled while it waits (client gone) gives its queue slot back at
                # once instead of when the running batch ends.
                done, _ = await asyncio.wait({waited}, timeout=WATCH_INTERVAL_S)
                if done:
                    return waited.result()
                if cancel.is_set():
                    self.withdraw(job)
                if deadline is not None and time.monotonic() >= deadline:
                    job.reason = "timeout"
                    cancel.set()
                    self.withdraw(job)
                    waited.cancel()
                    raise GenerationTimeout(
                        f"The request did not finish within the server's limit of {self.request_timeout_s:g} s "
                        f"(request_timeout_seconds); it was stopped."
                    )
        except asyncio.CancelledError:
            cancel.set()  # the engine drops the job within one step; a job still queued gives its slot back
            self.withdraw(job)
            # Nobody awaits the job any more: its cancellation error, when it comes, is retrieved here rather than
            # logged by asyncio as "never retrieved".
            waited.add_done_callback(lambda f: f.cancelled() or f.exception())
            raise
        finally:
            if timings is not None:
                timings["queue_s"] = job.queue_seconds
                timings["run_s"] = job.run_seconds

    def withdraw(self, job: Job) -> None:
        """Take a cancelled job out of the queue if it has not started (thread-safe; a no-op otherwise)."""
        with self._cond:
            if job in self._waiting:
                self._waiting.remove(job)
                self.metrics.queue_depth.labels(self.name).set(len(self._waiting))
                self._settle(job, exc=self._cancel_error(job, 0))

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the engine's own thread between batches and wait for it (benchmarks and maintenance;
        not for requests). Blocking: never call it on the event loop."""
        done: Future[object] = Future()
        with self._cond:
            self._calls.append((fn, done))
            self._cond.notify_all()
        self.start()
        return done.result()  # type: ignore[return-value]

    # -- the owning thread ------------------------------------------------------------------------------------

    def _loop(self) -> None:
        if not self._load():
            self._fail_forever()
            return
        while True:
            batch = self._next_batch()
            if batch is None:
                break
            if batch:
                try:
                    self._run(batch)
                except Exception as exc:  # a bug after the engine call must not kill the thread (requests hang)
                    log.exception("engine %s: a batch failed after the engine call", self.name)
                    self._fail(batch, exc)
        self._close_engine()

    def _load(self) -> bool:
        try:
            log.info("loading engine %s", self.name)
            with _LOAD_LOCK:
                self.engine.load()
            if self.warmup:
                self._state = "warming"
                self._warm_up()
            self._state = "ready"
            log.info("engine %s ready", self.name)
            return True
        except Exception as exc:
            log.exception("engine %s failed to load", self.name)
            self._load_error = exc
            self._state = f"failed: {exc}"
            return False

    def _warm_up(self) -> None:
        """One tiny generation, so the first request does not pay for lazy initialisation (kernels, caches)."""
        caps = self.engine.capabilities
        width, height = caps.native_resolutions[0]
        p = GenerationParams(prompt="warm-up", width=width, height=height, steps=caps.min_steps, seed=0)
        self.engine.generate([p])

    def _fail_forever(self) -> None:
        """A model that could not be loaded answers every job with the reason, as a 503 (until the server
        stops)."""
        err = self._unavailable()
        while True:
            with self._cond:
                while not self._waiting and not self._calls and not self._closing:
                    self._cond.wait()
                for job in self._waiting:
                    self._settle(job, exc=err)
                self._waiting.clear()
                self.metrics.queue_depth.labels(self.name).set(0)
                calls, self._calls = self._calls, []
                if self._closing:
                    break
            for fn, done in calls:
                self._call(fn, done)

    def _unavailable(self) -> EngineUnavailableError:
        # 503, not 500: the server is up but cannot serve this model (a configuration to fix, not a request's fault).
        exc = self._load_error
        reason = exc.message if isinstance(exc, ImageForgeError) else f"{type(exc).__name__}: {exc}"
        return EngineUnavailableError(f"The model served by engine {self.name} could not be loaded: {reason}")

    def _next_batch(self) -> list[Job] | None:
        """Block until there is work; ``None`` when closing. Maintenance calls run first (and yield ``[]``)."""
        with self._cond:
            while True:
                self._drop_cancelled_waiting()
                if self._calls or self._waiting or self._closing:
                    break
                self._cond.wait()
            if self._calls:
                calls, self._calls = self._calls, []
            elif self._closing:
                return None
            else:
                calls = []
                # Wait a little for compatible jobs to join, measured from the head job's arrival: a job that
                # already waited for a busy engine does not wait again, and the wait ends once every request in
                # the server is queued here (a lone client's request would otherwise idle 5 ms for nobody).
                deadline = self._waiting[0].enqueued + self.batch_wait_s
                while not self._closing:
                    params = [j.params for j in self._waiting]
                    left = deadline - time.monotonic()
                    full = batch_images(params, self.max_images) >= self.max_images
                    if left <= 0 or full or self._nobody_else():
                        break
                    self._cond.wait(left)
                    self._drop_cancelled_waiting()
                    if not self._waiting:
                        return []
                chosen = take_batch([j.params for j in self._waiting], self.max_images)
                batch = [self._waiting[i] for i in chosen]
                for i in reversed(chosen):
                    del self._waiting[i]
                self._start_running(batch)
                self.metrics.queue_depth.labels(self.name).set(len(self._waiting))
                return batch
        for fn, done in calls:
            self._call(fn, done)
        return []

    def _nobody_else(self) -> bool:
        """True if no request outside this engine's queue could still join the batch (held under ``_cond``)."""
        if self.traffic is None:
            return False
        return self.traffic.in_flight <= len(self._waiting) + len(self._running) + len(self._pending)

    def _drop_cancelled_waiting(self) -> None:
        kept = []
        for job in self._waiting:
            if job.cancel.is_set() or job.future.cancelled():
                self._settle(job, exc=self._cancel_error(job, 0))
            else:
                kept.append(job)
        if len(kept) != len(self._waiting):
            self._waiting[:] = kept
            self.metrics.queue_depth.labels(self.name).set(len(kept))

    @staticmethod
    def _call(fn: Callable[[], object], done: Future[object]) -> None:
        try:
            done.set_result(fn())
        except BaseException as exc:  # handed to the caller, who re-raises it
            done.set_exception(exc)

    def _run(self, batch: list[Job], retried: bool = False, alone: bool = False) -> None:
        """Run one batch. ``retried``: it is a half of a batch that ran out of memory (no second split);
        ``alone``: a job of a failed batch run by itself (nothing left to isolate)."""
        key, images = batch[0].key, sum(j.params.n for j in batch)
        with self._cond:
            self._start_running(batch)
        now = time.monotonic()
        for job in batch:
            if job.started is None:
                job.started = now
                self.metrics.queue_seconds.labels(self.name).observe(job.queue_seconds)
        self.metrics.batch_images.labels(self.name).observe(images)
        self.metrics.batch_jobs.labels(self.name).observe(len(batch))
        self.metrics.running.labels(self.name).set(len(batch))
        t0 = time.monotonic()
        oom = isolate = False
        # Engines that can drop a request from a running batch are told which ones left (rows stop at once).
        extra: dict[str, Any] = {}
        if self.engine.capabilities.drops_requests:
            extra["request_cancelled"] = lambda i: batch[i].cancel.is_set()
        try:
            results = self.engine.generate(
                [j.params for j in batch],
                on_step=lambda st: self._on_step(batch, st),
                cancelled=lambda: all(j.cancel.is_set() for j in batch),
                **extra,
            )
        except GenerationCancelled:
            self._stop_running()
            for job in batch:
                self._settle(job, exc=self._cancel_error(job, self._step))
        except Exception as exc:
            if is_out_of_memory(exc):
                oom = True  # retried below, outside this block: the traceback pins the failed call's tensors
            elif len(batch) > 1 and not alone:
                log.warning("engine %s failed on a batch of %d jobs (%s: %s); running them one by one", self.name,
                            len(batch), type(exc).__name__, exc)  # fmt: skip
                isolate = True
            else:
                self._fail(batch, exc)
        else:
            if not any(j.cancel.is_set() for j in batch):  # a whole call: what such a batch costs
                self.cost.observe(key, images, time.monotonic() - t0)
            # Done running before any result is handed over: a request its client sends the moment it has the
            # previous answer must find an idle engine, not this batch's stale estimate of its time left.
            self._stop_running()
            for job, result in zip(batch, results, strict=True):
                if job.cancel.is_set() and not result.images:  # dropped by the engine before a step saw it
                    self._settle(job, exc=self._cancel_error(job, self._step))
                else:
                    self._settle(job, result=result)
        finally:
            elapsed = time.monotonic() - t0
            self.metrics.run_seconds.labels(self.name).observe(elapsed)
            self.metrics.running.labels(self.name).set(0)
            self._batch_seconds = 0.7 * self._batch_seconds + 0.3 * elapsed
            self._stop_running()
        if oom:
            self._out_of_memory(batch, retried)
        elif isolate:
            self.metrics.isolation_retries.labels(self.name).inc()
            self._run_in_parts([[job] for job in batch], retried=True, alone=True)

    def _run_in_parts(self, parts: list[list[Job]], *, retried: bool, alone: bool) -> None:
        """Run a failed batch again as ``parts``, one after another; the parts still to come are pending (counted
        by admission, ended by abort), and a job cancelled or settled meanwhile is not run."""
        mine = [j for part in parts for j in part]
        with self._cond:
            self._pending += mine  # a half that fails again nests its own parts in here
        try:
            for part in parts:
                with self._cond:
                    self._pending = [j for j in self._pending if j not in part]
                for job in part:
                    if job.cancel.is_set():
                        self._settle(job, exc=self._cancel_error(job, 0))
                live = [j for j in part if not j.settled]
                if live:
                    self._run(live, retried=retried, alone=alone)
        finally:
            with self._cond:
                self._pending = [j for j in self._pending if j not in mine]

    def _on_step(self, batch: list[Job], st: StepPreview) -> None:
        """After every denoising step: settle jobs cancelled meanwhile, and pass previews to the others."""
        self._step, self._total_steps = st.step, st.total_steps
        self.metrics.request_steps.labels(self.name).inc(sum(1 for j in batch if not j.settled))
        for index, job in enumerate(batch):
            if job.cancel.is_set():
                # The step that was running when the job was cancelled is wasted work; after it, an engine that
                # drops requests computes nothing more for the job, and any other engine computes its rows until
                # the batch ends.
                if not (job.settled and self.engine.capabilities.drops_requests):
                    job.steps_after_cancel += 1
                    self.metrics.cancelled_steps.labels(self.name).inc()
                self._settle(job, exc=self._cancel_error(job, st.step))
                continue
            if job.on_step is not None:
                view = StepPreview(st.step, st.total_steps, functools.partial(_preview_of, st, index))
                try:
                    job.on_step(view)
                except Exception:  # the request's own callback failed (e.g. its event loop closed): drop it
                    log.exception("step callback of a job failed; cancelling that job")
                    job.cancel.set()

    def _out_of_memory(self, batch: list[Job], retried: bool) -> None:
        free_memory()
        if len(batch) > 1 and not retried:
            log.warning("engine %s ran out of memory on %d jobs; retrying as two halves", self.name, len(batch))
            self.metrics.oom_retries.labels(self.name).inc()
            half = len(batch) // 2
            self._run_in_parts([batch[:half], batch[half:]], retried=True, alone=False)
            return
        images = sum(j.params.n for j in batch)
        log.error("engine %s ran out of memory on %d image(s)", self.name, images)
        for job in batch:
            self._settle(
                job,
                exc=OutOfMemoryError(
                    f"The model ran out of memory generating {job.params.n} image(s) at "
                    f"{job.params.width}x{job.params.height}; try fewer images or a smaller size."
                ),
            )

    def _fail(self, batch: list[Job], exc: Exception) -> None:
        if isinstance(exc, ImageForgeError):
            err: ImageForgeError = exc
        else:
            log.error("engine %s failed on a batch of %d job(s)", self.name, len(batch), exc_info=exc)
            err = EngineError(f"The model failed while generating: {type(exc).__name__}: {exc}")
        for job in batch:
            self._settle(job, exc=err)

    def _cancel_error(self, job: Job, step: int) -> ImageForgeError:
        if job.reason == "timeout":
            return GenerationTimeout(f"The request was stopped by the server's time limit after {step} step(s).")
        return GenerationCancelled(f"The request was cancelled after {step} step(s).")

    def _settle(self, job: Job, result: GenerationResult | None = None, exc: ImageForgeError | None = None) -> None:
        with self._settle_lock:
            if job.settled:
                return
            job.settled = True
        job.finished = time.monotonic()
        if exc is None:
            outcome = "ok"
        elif isinstance(exc, GenerationCancelled):
            outcome = "cancelled"
        elif isinstance(exc, GenerationTimeout):
            outcome = "timeout"
        elif isinstance(exc, OutOfMemoryError):
            outcome = "out_of_memory"
        elif isinstance(exc, ShuttingDownError):
            outcome = "shutdown"
        else:
            outcome = "error"
        self.metrics.images.labels(job.model or self.name, outcome).inc(job.params.n)
        if result is not None and result.drafts:
            self.metrics.plan_drafts.labels(job.model or self.name).inc(result.drafts)
        try:
            if exc is None:
                job.future.set_result(result)  # type: ignore[arg-type]
            else:
                job.future.set_exception(exc)
        except InvalidStateError:  # the awaiting side cancelled the future meanwhile
            pass


def _preview_of(st: StepPreview, index: int, _request_index: int) -> list[Any]:
    """A job's view of the batch's previews: the job's own request is ``index`` of the batch."""
    return st.preview(index)
