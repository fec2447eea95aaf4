"""The one encode path of delivered images, run off the event loop in a pool of its own.

``encode_for_delivery`` encodes an image (``imaging.encode``: format, alpha, compression) and, for ``b64_json``,
base64s it, in one call, so both run in the pool. It returns the CPU seconds it used (its thread's), which
``/metrics`` reports per format and the benchmarks divide by request time (P4).

Threads, 2 by default, by measurement (``benchmarks/bench_encode_pool.py``, BENCHMARKS.md): PNG and WebP
encodes release the GIL, so two threads encode 1.8x as fast as one, and a process pool is slower (moving a 4 MB
image to the worker costs more CPU in the server than a JPEG encode) and stalls the event loop more.
"""

from __future__ import annotations

import asyncio
import base64
import multiprocessing
import time
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, Literal

from imageforge.imaging.encode import DEFAULT_FRAME_MS, OutputFormat, encode
from imageforge.metrics import Metrics

__all__ = ["EncodePool", "encode_for_delivery"]

PoolKind = Literal["thread", "process"]


def encode_for_delivery(
    image: Any,
    fmt: OutputFormat,
    compression: int | None,
    as_b64: bool,
    frame_duration_ms: int = DEFAULT_FRAME_MS,
    svg_detail: str = "medium",
) -> tuple[bytes | str, float]:
    t0 = time.thread_time()
    data = encode(image, fmt, compression, frame_duration_ms=frame_duration_ms, svg_detail=svg_detail)
    out: bytes | str = base64.b64encode(data).decode("ascii") if as_b64 else data
    return out, time.thread_time() - t0


class EncodePool:
    def __init__(self, kind: PoolKind = "thread", workers: int = 2, metrics: Metrics | None = None) -> None:
        self.kind = kind
        self.workers = workers
        self._metrics = metrics
        self._executor: Executor | None = None

    def _pool(self) -> Executor:
        if self._executor is None:  # created on first use, not at import or construction
            if self.kind == "process":
                # spawn, not fork: forking a process that holds torch (and maybe CUDA) state is unsafe.
                self._executor = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
            else:
                self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="encode")
        return self._executor

    async def run(
        self,
        image: Any,
        fmt: OutputFormat,
        compression: int | None,
        *,
        as_b64: bool,
        frame_duration_ms: int = DEFAULT_FRAME_MS,
        svg_detail: str = "medium",
    ) -> tuple[bytes | str, float]:
        """The encoded image (base64 text if ``as_b64``) and the CPU seconds it took; for ``gif``, ``image`` is
        the animation's frames."""
        loop = asyncio.get_running_loop()
        out, cpu = await loop.run_in_executor(
            self._pool(), encode_for_delivery, image, fmt, compression, as_b64, frame_duration_ms, svg_detail
        )
        if self._metrics is not None:
            self._metrics.encode_seconds.labels(fmt).observe(cpu)
        return out, cpu

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
