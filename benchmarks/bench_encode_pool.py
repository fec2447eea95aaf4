"""Thread pool vs process pool for the encode + base64 step: throughput and event-loop stall.

    python benchmarks/bench_encode_pool.py [--repeats 3] [--jobs 16] [--workers 1 2 4] [--json out.json]

Question: should the server run ``imaging.encode`` + ``base64.b64encode`` (what ``serving/images.py`` does per
image) in threads or in worker processes, and with how many workers? Pillow's in-memory encoders may hold the
GIL, in which case threads neither run in parallel nor leave the asyncio event loop free.

Inputs: real embedded-model output, 1024x1024, opaque (RGB) and transparent (RGBA), read from ``--images``
(PNG files); generated once with the embedded engine when missing. For each (image, format) pair, with the
format's default compression (png, jpeg, webp; jpeg only opaque):

1. serial: median ms of encode + base64 of one image on the main thread, and the ms to pickle + unpickle the
   image (the extra work a process pool adds per job; the base64 string comes back the same way).
2. throughput: ``--jobs`` jobs submitted with ``loop.run_in_executor`` to a ThreadPoolExecutor(k) or a
   ProcessPoolExecutor(k), k in ``--workers``; images/s and main-process CPU ms per image. The process pool gets
   the PIL image itself (pickled, as the server would hand it over) and returns the base64 str. Every pool is
   created once and warmed up before any timing, as a long-running server's would be. Every job gets its own
   image object (as separate requests do); every output is checked against the main thread's after timing.
3. event-loop stall: the same batch again, while an asyncio task sleeps 1 ms in a loop and records how late it
   wakes up; max and p99 lateness in ms. An idle loop (no jobs) is measured too, as the floor.

Each measurement runs ``--repeats`` times; configurations are interleaved (shuffled within each repeat) so that
other load on a shared machine spreads over all of them; the table shows medians over the repeats.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import hashlib
import json
import multiprocessing
import os
import pickle
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import PIL
from PIL import Image

from imageforge.imaging.encode import OutputFormat, encode

Background = Literal["opaque", "transparent"]
BACKGROUNDS: tuple[Background, ...] = ("opaque", "transparent")
FORMATS: tuple[OutputFormat, ...] = ("png", "jpeg", "webp")
PROBE_INTERVAL_S = 0.001


def encode_b64(image: Image.Image, fmt: OutputFormat, compression: int | None) -> str:
    """The job: what ``ImagesService._deliver`` does per image for ``response_format=b64_json``."""
    return base64.b64encode(encode(image, fmt, compression)).decode("ascii")


def _noop() -> int:
    return os.getpid()


def _pickle_roundtrip(image: Image.Image) -> Image.Image:
    """What a process pool adds per job on the way in (the str result comes back through pickle too)."""
    loaded: Image.Image = pickle.loads(pickle.dumps(image, protocol=pickle.HIGHEST_PROTOCOL))
    return loaded


# --- inputs ---------------------------------------------------------------------------------------------------


def load_images(directory: Path) -> dict[str, Image.Image]:
    """The two test images, from ``directory`` (``opaque_1024.png``, ``transparent_1024.png``); generated with the
    embedded engine and saved there when missing. Loaded fully, detached from the file."""
    paths = {bg: directory / f"{bg}_1024.png" for bg in BACKGROUNDS}
    missing = [bg for bg, p in paths.items() if not p.exists()]
    if missing:
        # Imported here only: worker processes (spawn) re-import this module and must not pull in torch.
        from imageforge.engines.embedded.engine import EmbeddedEngine
        from imageforge.params import GenerationParams

        directory.mkdir(parents=True, exist_ok=True)
        engine = EmbeddedEngine()
        engine.load()
        for bg in missing:
            p = GenerationParams(prompt="a red apple", width=1024, height=1024, steps=10, seed=1, background=bg)
            engine.generate([p])[0].images[0].save(paths[bg])
            print(f"generated {paths[bg]}", flush=True)
    images: dict[str, Image.Image] = {}
    for bg, path in paths.items():
        with Image.open(path) as im:
            im.load()
            images[bg] = im.copy()
        images[bg].info.clear()  # the engine's images carry no PNG metadata either
    return images


def cases(images: dict[str, Image.Image]) -> list[tuple[str, OutputFormat]]:
    return [(bg, fmt) for bg in images for fmt in FORMATS if not (fmt == "jpeg" and images[bg].mode != "RGB")]


# --- measurements ---------------------------------------------------------------------------------------------


@dataclass
class Pool:
    kind: str  # "thread" | "process"
    workers: int
    executor: Executor

    @property
    def name(self) -> str:
        return f"{self.kind}x{self.workers}"


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _probe(stop: asyncio.Event, lateness: list[float]) -> None:
    """Sleep 1 ms at a time; record how much later than asked each wake-up comes (seconds)."""
    while not stop.is_set():
        t = time.perf_counter()
        await asyncio.sleep(PROBE_INTERVAL_S)
        lateness.append(time.perf_counter() - t - PROBE_INTERVAL_S)


async def _batch(
    pool: Pool | None, copies: list[Image.Image], fmt: OutputFormat, probe: bool, expected: str
) -> dict[str, float]:
    """Encode each of ``copies`` through ``pool`` (None: no jobs, 0.5 s of idle loop) on this event loop."""
    loop = asyncio.get_running_loop()
    jobs = len(copies)
    stop = asyncio.Event()
    lateness: list[float] = []
    probe_task = asyncio.create_task(_probe(stop, lateness)) if probe else None
    await asyncio.sleep(0.01)  # let the probe settle
    cpu0, t0 = time.process_time(), time.perf_counter()
    outputs: list[str] = []
    if pool is None:
        await asyncio.sleep(0.5)
    else:
        futures = [loop.run_in_executor(pool.executor, encode_b64, image, fmt, None) for image in copies]
        outputs = await asyncio.gather(*futures)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    stop.set()
    if probe_task is not None:
        await probe_task
    out = {
        "images_per_s": jobs / wall if pool is not None else 0.0,
        "main_cpu_ms_per_image": cpu * 1000 / jobs if jobs else 0.0,
        "wrong_outputs": float(sum(_digest(o) != expected for o in outputs)),  # checked after the clock stops
    }
    if probe:
        out |= {
            "stall_max_ms": max(lateness, default=0.0) * 1000,
            "stall_p99_ms": _percentile(lateness, 0.99) * 1000,
            "probe_wakeups": float(len(lateness)),
        }
    return out


def make_pools(workers: list[int], start_method: str) -> list[Pool]:
    ctx = multiprocessing.get_context(start_method)
    pools = []
    for k in workers:
        pools.append(Pool("thread", k, ThreadPoolExecutor(max_workers=k, thread_name_prefix=f"encode{k}")))
        pools.append(Pool("process", k, ProcessPoolExecutor(max_workers=k, mp_context=ctx)))
    return pools


def _digest(b64: str) -> str:
    return hashlib.sha256(b64.encode()).hexdigest()


def warm_up(
    pools: list[Pool], images: dict[str, Image.Image], todo: list[tuple[str, OutputFormat]]
) -> dict[tuple[str, str], str]:
    """Start every worker, run every format through every pool at full size once, and check that threads and
    processes return the same bytes as the main thread. Returns those bytes' digests."""
    small = {bg: im.resize((64, 64)) for bg, im in images.items()}
    expected: dict[tuple[str, str], str] = {(bg, fmt): _digest(encode_b64(images[bg], fmt, None)) for bg, fmt in todo}
    for pool in pools:
        pids = {f.result() for f in [pool.executor.submit(_noop) for _ in range(pool.workers * 4)]}
        for bg, fmt in todo:
            for f in [pool.executor.submit(encode_b64, small[bg].copy(), fmt, None) for _ in range(pool.workers * 2)]:
                f.result()
            got = [pool.executor.submit(encode_b64, images[bg].copy(), fmt, None) for _ in range(pool.workers)]
            for f in got:
                if _digest(f.result()) != expected[(bg, fmt)]:
                    raise RuntimeError(f"{pool.name} {bg} {fmt}: output differs from the main thread's")
        print(f"warmed {pool.name} ({len(pids)} distinct pid(s) seen)", flush=True)
    return expected


def _median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def run(args: argparse.Namespace) -> dict[str, Any]:
    images = load_images(Path(args.images))
    todo = cases(images)
    pools = make_pools(args.workers, args.start_method)
    load_before = os.getloadavg()
    t_start = time.perf_counter()
    try:
        expected = warm_up(pools, images, todo)
        # One image object per job, as separate requests have. Never hand one PIL image to concurrent saves:
        # Image.save keeps its params on the image (encoderinfo), so concurrent saves of one object race and can
        # leave stale params behind that override a later save's (e.g. webp's quality=0 leaking into jpeg).
        copies = {bg: [im.copy() for _ in range(args.jobs)] for bg, im in images.items()}
        copies["idle"] = []
        serial: dict[str, dict[str, float]] = {}
        for bg, fmt in todo:
            img = images[bg]
            n = max(args.repeats, 5)
            ms = _median_ms(functools.partial(encode_b64, img, fmt, None), n)
            pickle_ms = _median_ms(functools.partial(_pickle_roundtrip, img), n)
            b64_chars = len(encode_b64(img, fmt, None))
            serial[f"{bg}/{fmt}"] = {"encode_b64_ms": ms, "pickle_roundtrip_ms": pickle_ms, "b64_kib": b64_chars / 1024}
            print(f"serial {bg:11s} {fmt:4s} {ms:7.1f} ms  (pickle round trip {pickle_ms:5.1f} ms)", flush=True)

        # Every (case, pool, measurement) once per repeat, shuffled; plus the idle-loop floor.
        raw: dict[str, list[dict[str, float]]] = {}
        repeat_log: list[dict[str, float]] = []
        rng = random.Random(args.seed)
        loop = asyncio.new_event_loop()
        try:
            for rep in range(args.repeats):
                plan: list[tuple[str, OutputFormat, Pool | None, bool]] = [("idle", "png", None, True)]
                plan += [(bg, fmt, pool, probe) for bg, fmt in todo for pool in pools for probe in (False, True)]
                rng.shuffle(plan)
                t_rep = time.perf_counter()
                for bg, fmt, pool, probe in plan:
                    want = expected.get((bg, fmt), "")
                    res = loop.run_until_complete(_batch(pool, copies[bg], fmt, probe, want))
                    key = "idle" if pool is None else f"{bg}/{fmt}/{pool.name}/{'stall' if probe else 'tput'}"
                    raw.setdefault(key, []).append(res)
                took, load1 = time.perf_counter() - t_rep, os.getloadavg()[0]
                repeat_log.append({"seconds": took, "loadavg_1min": load1})
                print(f"repeat {rep + 1}/{args.repeats}: {took:.0f} s, load avg {load1:.2f}", flush=True)
        finally:
            loop.close()
    finally:
        for pool in pools:
            pool.executor.shutdown(wait=True)

    results = []
    for bg, fmt in todo:
        for pool in pools:
            tput = raw[f"{bg}/{fmt}/{pool.name}/tput"]
            stall = raw[f"{bg}/{fmt}/{pool.name}/stall"]
            results.append(
                {
                    "image": bg,
                    "format": fmt,
                    "pool": pool.kind,
                    "workers": pool.workers,
                    "images_per_s": _median(tput, "images_per_s"),
                    "main_cpu_ms_per_image": _median(tput, "main_cpu_ms_per_image"),
                    "images_per_s_with_probe": _median(stall, "images_per_s"),
                    "stall_max_ms": _median(stall, "stall_max_ms"),
                    "stall_p99_ms": _median(stall, "stall_p99_ms"),
                    "wrong_outputs": sum(r["wrong_outputs"] for r in tput + stall),
                    "raw_tput": tput,
                    "raw_stall": stall,
                }
            )
    idle = raw["idle"]
    return {
        "machine": {
            "nproc": os.cpu_count(),
            "sched_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "python": sys.version.split()[0],
            "pillow": PIL.__version__,
            "platform": platform.platform(),
            "processor": platform.processor(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
        "settings": {
            "jobs": args.jobs,
            "repeats": args.repeats,
            "workers": args.workers,
            "start_method": args.start_method,
            "probe_interval_ms": PROBE_INTERVAL_S * 1000,
            "total_s": time.perf_counter() - t_start,
            "repeats_log": repeat_log,
        },
        "idle_loop": {"stall_max_ms": _median(idle, "stall_max_ms"), "stall_p99_ms": _median(idle, "stall_p99_ms")},
        "serial": serial,
        "results": results,
    }


def print_table(report: dict[str, Any]) -> None:
    m, s = report["machine"], report["settings"]
    print()
    print(
        f"nproc {m['nproc']}, Python {m['python']}, Pillow {m['pillow']}, {s['jobs']} jobs, {s['repeats']} repeats, "
        f"start method {s['start_method']}, load avg {m['loadavg_before'][0]:.2f} -> {m['loadavg_after'][0]:.2f}"
    )
    idle = report["idle_loop"]
    print(f"idle loop lateness: max {idle['stall_max_ms']:.2f} ms, p99 {idle['stall_p99_ms']:.2f} ms")
    print()
    print(f"{'image':11s} {'fmt':4s} {'serial ms':>9s} {'pickle ms':>9s} {'b64 KiB':>8s}  serial img/s")
    for key, row in report["serial"].items():
        bg, fmt = key.split("/")
        print(
            f"{bg:11s} {fmt:4s} {row['encode_b64_ms']:9.1f} {row['pickle_roundtrip_ms']:9.1f} {row['b64_kib']:8.0f}"
            f"  {1000 / row['encode_b64_ms']:8.1f}"
        )
    print()
    header = f"{'image':11s} {'fmt':4s} {'pool':10s} {'img/s':>7s} {'main CPU ms/img':>15s} "
    header += f"{'img/s (probe)':>13s} {'stall max ms':>12s} {'stall p99 ms':>12s}"
    print(header)
    print("-" * len(header))
    last = None
    for r in report["results"]:
        if last is not None and (r["image"], r["format"]) != last:
            print()
        last = (r["image"], r["format"])
        print(
            f"{r['image']:11s} {r['format']:4s} {r['pool'] + ' x' + str(r['workers']):10s} {r['images_per_s']:7.1f} "
            f"{r['main_cpu_ms_per_image']:15.1f} {r['images_per_s_with_probe']:13.1f} {r['stall_max_ms']:12.1f} "
            f"{r['stall_p99_ms']:12.1f}"
        )
    wrong = [f"{r['image']}/{r['format']}/{r['pool']}x{r['workers']}" for r in report["results"] if r["wrong_outputs"]]
    print("\nall outputs identical to the main thread's" if not wrong else f"\nWRONG OUTPUTS in: {', '.join(wrong)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--repeats", type=int, default=3, help="repeats per measurement (medians reported)")
    ap.add_argument("--jobs", type=int, default=16, help="encode jobs per throughput / stall batch")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4], help="pool sizes to compare")
    ap.add_argument("--images", default="/tmp/imageforge_bench", help="directory of the two 1024x1024 test PNGs")
    ap.add_argument(
        "--start-method",
        default="spawn",
        choices=multiprocessing.get_all_start_methods(),
        help="process pool start method (spawn: what a server with torch/CUDA loaded must use)",
    )
    ap.add_argument("--seed", type=int, default=0, help="shuffle seed for the interleaved order")
    ap.add_argument("--json", default=None, help="write the full report (medians and raw runs) here")
    args = ap.parse_args()
    report = run(args)
    print_table(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
