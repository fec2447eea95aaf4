"""What one ladder row measures and reports: timing with warm-up kept apart, percentiles, peak GPU memory, and the
FLOPs an image costs (for achieved FLOP/s against the device's peak)."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Row", "count_flops", "free_memory", "pct", "peak_memory_gib", "reset_peak_memory", "time_row"]


@dataclass
class Row:
    shape: str
    arm: str  # stock | engine | http | ladder
    step: str  # what this row adds, e.g. "batch 8" or "+channels_last"
    batch: int  # requests per engine call (1 for HTTP rows: the server batches across requests itself)
    concurrency: int  # clients sending at once (HTTP rows), else 1
    options: dict[str, Any] = field(default_factory=dict)  # engine options beyond the shape's own
    dtype: str | None = None
    status: str = "ok"  # ok | error | skipped
    images: int = 0  # timed images
    img_s: float | None = None
    latency_p50_s: float | None = None
    latency_p99_s: float | None = None
    warmup_s: float | None = None  # untimed warm-up calls (torch.compile compiles here)
    load_s: float | None = None  # building the pipeline and loading the engine (or starting the server)
    peak_gpu_mem_gib: float | None = None  # torch.cuda.max_memory_allocated over the row; None on the CPU
    flops_per_image: float | None = None
    achieved_tflops: float | None = None
    roofline: float | None = None  # achieved FLOP/s / the device's peak dense FLOP/s; None without a peak
    previous: str | None = None  # the row this one's gain is over
    vs_previous: float | None = None  # img/s over that row's
    vs_stock: float | None = None  # img/s over the stock loop's
    error: str | None = None
    note: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    seq: int = 0  # run order

    @property
    def label(self) -> str:
        return f"{self.arm}:{self.step}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (as benchmarks/bench_serving.py): with a handful of samples p99 is the slowest."""
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def time_row(
    row: Row,
    run: Callable[[bool], list[float]],
    *,
    warmups: int,
    calls: int,
    before: Callable[[], None] | None = None,
    after: Callable[[], None] | None = None,
) -> None:
    """``run(warm)`` makes one call and returns each request's latency; ``warm=True`` calls are the untimed
    warm-up (shorter where the arm can make them so: fewer steps at the same shapes). ``before`` and ``after``
    run just outside the timed calls."""
    _sync()
    t0 = time.perf_counter()
    for _ in range(warmups):
        run(True)
    _sync()
    row.warmup_s = time.perf_counter() - t0
    if before is not None:
        before()
    latencies: list[float] = []
    t0 = time.perf_counter()
    for _ in range(calls):
        latencies += run(False)
    _sync()
    wall = time.perf_counter() - t0
    if after is not None:
        after()
    row.images = len(latencies)
    row.img_s = len(latencies) / wall
    row.latency_p50_s = pct(latencies, 50)
    row.latency_p99_s = pct(latencies, 99)


def count_flops(pipe: Any, call: dict[str, Any], steps: int) -> float:
    """FLOPs of one image at ``steps`` steps: the pipeline counted at 1 and at 2 steps, so one denoising step is
    the difference (the denoiser over the CFG batch) and the rest is the text encoders and the VAE decode, once.
    FlopCounterMode counts matmuls, convolutions and the fused attention kernels of CUDA's SDPA (the CPU's SDPA
    kernel has no FLOP formula there, so CPU counts leave attention out)."""
    from torch.utils.flop_counter import FlopCounterMode

    def total(n: int) -> int:
        with FlopCounterMode(display=False) as counter:
            pipe(**call, num_inference_steps=n)
        return int(counter.get_total_flops())

    one = total(1)
    per_step = total(2) - one
    return float(one + (steps - 1) * per_step)


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _sync() -> None:
    if _cuda():
        import torch

        torch.cuda.synchronize()


def reset_peak_memory() -> None:
    if _cuda():
        import torch

        torch.cuda.reset_peak_memory_stats()


def peak_memory_gib() -> float | None:
    if not _cuda():
        return None
    import torch

    return float(torch.cuda.max_memory_allocated()) / 2**30


def free_memory(compiled: bool = False) -> None:
    """After an engine or pipeline is dropped: collect it and return its GPU memory. Compiled code keeps
    references to the modules it was traced from until dynamo's caches are reset."""
    import torch

    if compiled:
        import torch._dynamo

        torch._dynamo.reset()
    gc.collect()
    if _cuda():
        torch.cuda.empty_cache()
