"""Out of memory on a real GPU, handled by the worker (``scheduler/worker.py``): a batch that does not fit is
retried once as two halves; a lone request that does not fit fails with ``OutOfMemoryError`` and the worker goes
on serving.

An H200 holds 139 GiB, far more than any batch of the toy pipeline needs, so the tests cap what the process may
take with ``torch.cuda.set_per_process_memory_fraction``. That cap applies to the memory the caching allocator
*reserves*, so the limits are set from measured peaks (``torch.cuda.max_memory_reserved``), never guessed, and the
fraction is set back to 1.0 in a ``finally``. Measurements run on the worker's own thread (``EngineWorker.call``),
the thread that then runs the batch, so lazily created per-thread state (cuBLAS handles and workspaces) is the
same in both.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from imageforge.engines.base import Engine
from imageforge.engines.diffusers import DiffusersEngine
from imageforge.errors import OutOfMemoryError
from imageforge.metrics import Metrics
from imageforge.params import GenerationParams
from imageforge.scheduler.faults import free_memory, is_out_of_memory
from imageforge.scheduler.worker import EngineWorker
from tests.gpu.common import DEVICE, HALF_DTYPES

pytestmark = pytest.mark.gpu

BATCH = 4  # images of the oversized batch (the engine's max_batch); its halves hold BATCH // 2
SIDE = 1024  # big images, so activations (not the ~0.1 GB of weights) decide what fits
NAME = "gpu"
RESULT_TIMEOUT_S = 300.0


def requests(count: int, n: int = 1) -> list[GenerationParams]:
    return [GenerationParams(f"a red apple {i}", SIDE, SIDE, steps=1, seed=100 + i, n=n) for i in range(count)]


class CudaMemory:
    """What ``set_per_process_memory_fraction`` limits: the bytes the caching allocator reserves on the device."""

    def __init__(self) -> None:
        import torch

        self.torch = torch
        self.device = torch.cuda.current_device()
        self.total = torch.cuda.get_device_properties(self.device).total_memory

    def settle(self) -> None:
        """Give cached blocks back (as the worker does after an out-of-memory) and start a new peak."""
        free_memory()
        self.torch.cuda.reset_peak_memory_stats(self.device)

    def reserved(self) -> int:
        return int(self.torch.cuda.memory_reserved(self.device))

    def allocated(self) -> int:
        return int(self.torch.cuda.memory_allocated(self.device))

    def peak_reserved(self) -> int:
        return int(self.torch.cuda.max_memory_reserved(self.device))

    def peak_allocated(self) -> int:
        return int(self.torch.cuda.max_memory_allocated(self.device))

    def limit(self, nbytes: int) -> None:
        self.torch.cuda.set_per_process_memory_fraction(min(1.0, nbytes / self.total), self.device)

    def unlimit(self) -> None:
        self.torch.cuda.set_per_process_memory_fraction(1.0, self.device)


def gib(nbytes: int) -> str:
    return f"{nbytes / 2**30:.2f} GiB"


@contextmanager
def serving(model: Path, dtype: str, *, batch_wait_s: float) -> Iterator[EngineWorker]:
    # No guidance (SD-Turbo's setting): the UNet runs one row per image, so memory follows the image count.
    engine = DiffusersEngine(str(model), device=DEVICE, dtype=dtype, max_batch=BATCH, guidance_scale=0.0)
    worker = EngineWorker(NAME, engine, metrics=Metrics(), warmup=False, batch_wait_s=batch_wait_s,
                          max_queue_seconds=3600.0)  # fmt: skip
    try:
        yield worker
    finally:
        worker.close(timeout=60)


def peak_of(engine: Engine, memory: CudaMemory, batch: list[GenerationParams]) -> int:
    memory.settle()
    engine.generate(batch)
    peak = memory.peak_reserved()
    memory.settle()
    return peak


def fits(engine: Engine, memory: CudaMemory, batch: list[GenerationParams], limit: int) -> bool:
    """Whether ``batch`` runs within ``limit`` reserved bytes; any failure other than out of memory is raised."""
    memory.settle()
    ok = True
    memory.limit(limit)
    try:
        engine.generate(batch)
    except Exception as exc:
        if not is_out_of_memory(exc):
            # e.g. cuDNN's "unable to find an engine" when no convolution algorithm finds its workspace: the
            # worker would isolate the jobs one by one instead of halving the batch.
            raise AssertionError(
                f"under a memory limit the engine raised {type(exc).__name__}: {exc}, which "
                "scheduler.faults.is_out_of_memory does not take for out of memory"
            ) from exc
        ok = False
    finally:
        memory.unlimit()
    memory.settle()  # after the except block: the traceback (and the tensors its frames hold) is gone
    return ok


@dataclass
class Calibration:
    limit: int | None = None
    log: list[str] = field(default_factory=list)


def calibrate(engine: Engine, memory: CudaMemory) -> Calibration:
    """A limit at which BATCH images run out of memory and BATCH // 2 fit, checked by running both under it.

    It starts halfway between the two measured peaks and bisects if a run disagrees (the allocator's caching
    makes a peak an upper bound of what a run needs, not the exact need)."""
    engine.generate(requests(1))  # first call on this thread: cuBLAS handle and workspace, cuDNN plans
    half, full = peak_of(engine, memory, requests(BATCH // 2)), peak_of(engine, memory, requests(BATCH))
    cal = Calibration(log=[f"peaks: {BATCH // 2} images {gib(half)}, {BATCH} images {gib(full)}"])
    lo, hi = half, full
    for _ in range(6):
        mid = (lo + hi) // 2
        if fits(engine, memory, requests(BATCH), mid):
            cal.log.append(f"{BATCH} images fit in {gib(mid)}")
            hi = mid
        elif not fits(engine, memory, requests(BATCH // 2), mid):
            cal.log.append(f"{BATCH // 2} images do not fit in {gib(mid)}")
            lo = mid
        else:
            cal.log.append(f"limit {gib(mid)}: {BATCH} images run out of memory, {BATCH // 2} fit")
            cal.limit = mid
            return cal
    return cal


@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_an_oversized_batch_runs_out_of_memory_and_is_served_in_halves(sd_turbo_small: Path, dtype: str) -> None:
    memory = CudaMemory()
    # The batch wait is long so that the worker takes the BATCH jobs as one batch (it starts once the batch is full).
    with serving(sd_turbo_small, dtype, batch_wait_s=120.0) as worker:
        engine = worker.engine
        cal = worker.call(lambda: calibrate(engine, memory))
        if cal.limit is None:
            pytest.skip(f"no memory limit found at which {BATCH} images run out of memory and {BATCH // 2} fit: "
                        + "; ".join(cal.log))  # fmt: skip
        try:
            memory.limit(cal.limit)
            jobs = [worker.submit(p, threading.Event()) for p in requests(BATCH)]
            errors = [job.future.exception(timeout=RESULT_TIMEOUT_S) for job in jobs]
        finally:
            memory.unlimit()
        assert errors == [None] * BATCH, f"{errors!r}; calibration: {cal.log}"
        for job in jobs:
            result = job.future.result()
            assert len(result.images) == 1 and result.images[0].size == (SIDE, SIDE)
        metrics = worker.metrics
        assert metrics.oom_retries.labels(NAME)._value.get() == 1, f"no out-of-memory retry; calibration: {cal.log}"
        assert metrics.isolation_retries.labels(NAME)._value.get() == 0
        assert metrics.images.labels(NAME, "ok")._value.get() == BATCH
        assert metrics.images.labels(NAME, "out_of_memory")._value.get() == 0
        # The batch ran once whole (out of memory) and then as two halves.
        assert metrics.batch_images.labels(NAME)._sum.get() == BATCH + BATCH


@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_a_lone_request_too_big_for_the_memory_fails_cleanly_and_the_worker_goes_on(
    sd_turbo_small: Path, dtype: str
) -> None:
    memory = CudaMemory()
    big = GenerationParams("a red apple", SIDE, SIDE, steps=1, seed=1, n=BATCH)
    with serving(sd_turbo_small, dtype, batch_wait_s=0.0) as worker:
        engine = worker.engine

        def measure() -> tuple[int, int]:
            engine.generate([replace(big, n=1)])  # first call on this thread (see calibrate)
            memory.settle()
            base = memory.allocated()
            engine.generate([big])
            need = memory.peak_allocated() - base
            memory.settle()
            return need, memory.reserved()

        need, held = worker.call(measure)
        # A quarter of what the request needs beyond what is held: no choice of kernels makes it fit.
        limit = held + need // 4
        try:
            memory.limit(limit)
            error = worker.submit(big, threading.Event()).future.exception(timeout=RESULT_TIMEOUT_S)
        finally:
            memory.unlimit()
        assert isinstance(error, OutOfMemoryError), f"{error!r} (limit {gib(limit)}, need {gib(need)})"
        assert f"ran out of memory generating {BATCH} image(s) at {SIDE}x{SIDE}" in error.message
        assert worker.state() == "ready" and not worker.died
        small = GenerationParams("a red apple", 512, 512, steps=1, seed=2)
        result = worker.submit(small, threading.Event()).future.result(timeout=RESULT_TIMEOUT_S)
        assert len(result.images) == 1 and result.images[0].size == (512, 512)
        metrics = worker.metrics
        assert metrics.images.labels(NAME, "out_of_memory")._value.get() == BATCH
        assert metrics.oom_retries.labels(NAME)._value.get() == 0, "a lone request has no half to retry"
