"""Embedded model speed on this machine: seconds per image by size and quality, cold start, and file sizes.

    python benchmarks/bench_embedded.py [--repeats 5] [--json out.json]
    python benchmarks/bench_embedded.py --batches 1 2 4 8 16      # seconds per image by batch size only

Numbers go to BENCHMARKS.md by hand, with the machine and the date. Nothing here is asserted by tests.
- "generate": engine.generate for one image (text encoding + denoising + resampling to the size).
- "encode png": imaging.encode at the default level, for the same image.
- "batches": one engine.generate call of B requests (1024x1024, quality low, different prompts and seeds): the
  engine's own batch scaling, which bounds what the scheduler's batching can gain (BENCHMARKS.md, issue 6).
- "cold start": a fresh ``imageforge generate`` process until the image file exists (imports, weight loading,
  one image), wall clock.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from imageforge.engines.embedded.config import WEIGHTS_DIR
from imageforge.engines.embedded.engine import EmbeddedEngine
from imageforge.imaging.encode import encode
from imageforge.params import GenerationParams

SIZES = ((256, 256), (1024, 1024))
QUALITIES = ("low", "medium", "high")


def median_time(fn: object, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def cold_start(size: str, quality: str) -> float:
    exe = Path(sys.executable).with_name("imageforge")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "a.png"
        t = time.perf_counter()
        subprocess.run(
            [str(exe), "generate", "a red apple", "-o", str(out), "--size", size, "--quality", quality],
            check=True,
            capture_output=True,
        )
        elapsed = time.perf_counter() - t
        assert out.exists()
    return elapsed


def batch_scaling(sizes: list[int], repeats: int) -> None:
    engine = EmbeddedEngine(device="cpu")
    engine.load()
    steps = engine.capabilities.quality_steps["low"]

    def call(b: int) -> None:
        batch = [GenerationParams(prompt=f"a red apple {i}", width=1024, height=1024, steps=steps, seed=i)
                 for i in range(b)]  # fmt: skip
        engine.generate(batch)

    call(2)  # warm up
    for b in sizes:
        t = median_time(lambda b=b: call(b), repeats)
        print(f"batch {b}: {t:.3f} s per call, {t / b:.3f} s per image", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--batches", type=int, nargs="+", help="only measure these batch sizes")
    args = ap.parse_args()
    if args.batches:
        batch_scaling(args.batches, args.repeats)
        return

    results: dict[str, object] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        "python": platform.python_version(),
    }
    t = time.perf_counter()
    engine = EmbeddedEngine(device="cpu")
    engine.load()
    results["load_seconds_in_process"] = round(time.perf_counter() - t, 2)
    steps = engine.capabilities.quality_steps
    engine.generate([GenerationParams(prompt="warm up", width=64, height=64, steps=2, seed=0)])

    rows = []
    for w, h in SIZES:
        for q in QUALITIES:
            p = GenerationParams(prompt="a red apple", width=w, height=h, steps=steps[q], seed=1)
            gen = median_time(lambda p=p: engine.generate([p]), args.repeats)
            image = engine.generate([p])[0].images[0]
            enc = median_time(lambda image=image: encode(image, "png"), args.repeats)
            rows.append(
                {"size": f"{w}x{h}", "quality": q, "steps": steps[q], "generate_s": round(gen, 3),
                 "encode_png_s": round(enc, 3), "total_s": round(gen + enc, 3)}
            )  # fmt: skip
            print(rows[-1], flush=True)
    results["per_image"] = rows
    engine.close()

    results["cold_start_s"] = {
        "1024x1024 low": round(statistics.median(cold_start("1024x1024", "low") for _ in range(3)), 2),
        "1024x1024 high": round(statistics.median(cold_start("1024x1024", "high") for _ in range(3)), 2),
    }
    print(results["cold_start_s"], flush=True)
    files = {
        p.relative_to(WEIGHTS_DIR).as_posix(): p.stat().st_size for p in sorted(WEIGHTS_DIR.rglob("*")) if p.is_file()
    }
    results["weights_bytes"] = {k: v for k, v in files.items() if v}
    results["weights_total_mb"] = round(sum(files.values()) / 1e6, 1)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
