"""Scaling on Ray Serve: images/s of the embedded model with 1 and 2 engine replicas (one CPU thread each) through
``imageforge serve --backend ray``, against the single-process server on the same work.

    python -m benchmarks.bench_ray [--requests 16] [--concurrency 4] [--size 1024x1024] [--model gpt-image-1]
                                   [--json out.json]

Every server is a real ``imageforge serve`` process (the Ray ones start their own local cluster) with
``--threads 1`` and ``--max-batch 1``, so each engine replica is one CPU thread doing one image at a time and the
figures compare replicas, not batching. The client is the official openai SDK in threads, b64_json PNG. Per server:
the latency p50 of lone requests (concurrency 1; Ray's added latency = its p50 − the single process's) and images/s
in a closed loop at ``--concurrency``. Scaling efficiency = images/s with 2 replicas / (2 × images/s with 1).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai

CATALOGUE = """
[models."imageforge-emoji"]
engine = "embedded"
profile = "imageforge"
[models."imageforge-emoji".replicas]
num_replicas = {replicas}
num_cpus = 0.5  # a scheduling count (the local cluster has 2): each replica still runs one torch thread
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(root: Path, replicas: int | None) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    cmd = [sys.executable, "-m", "imageforge", "serve", "--port", str(port), "--data-dir", str(root / "data"),
           "--threads", "1", "--max-batch", "1", "--log-level", "warning"]  # fmt: skip
    # A closed loop keeps `concurrency` requests queued on purpose: no refusal by queue time.
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "IMAGEFORGE_RAY_INGRESS_CPUS": "0.25",
           "IMAGEFORGE_MAX_QUEUE_SECONDS": "600"}  # fmt: skip
    if replicas is not None:
        (root / "catalogue.toml").write_text(CATALOGUE.format(replicas=replicas))
        cmd += ["--backend", "ray", "--config", str(root / "catalogue.toml")]
    proc = subprocess.Popen(cmd, stdout=(root / "log").open("wb"), stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((root / "log").read_text(errors="replace"))
        try:
            if httpx.get(f"{base}/ready", timeout=5).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("not ready:\n" + (root / "log").read_text(errors="replace"))


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)


def _measure(base: str, args: argparse.Namespace) -> dict[str, Any]:
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="bench", max_retries=0, timeout=600)

    def one(i: int) -> float:
        t = time.perf_counter()
        extra: dict[str, Any] = (
            {"response_format": "b64_json"} if args.model.startswith("dall-e") else {"quality": "low"}
        )
        r = client.images.generate(model=args.model, prompt=f"a red apple {i}", size=args.size, **extra)
        assert r.data[0].b64_json
        return time.perf_counter() - t

    one(-1)  # warm: the first request pays for lazily built state
    lone = [one(i) for i in range(args.lone)]
    with ThreadPoolExecutor(args.concurrency) as pool:
        t = time.perf_counter()
        loaded = list(pool.map(one, range(args.requests)))
        wall = time.perf_counter() - t
    client.close()
    return {
        "lone_p50_s": round(statistics.median(lone), 3),
        "images_per_s": round(args.requests / wall, 3),
        "loaded_p50_s": round(statistics.median(loaded), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--lone", type=int, default=5, help="lone requests for the latency p50")
    ap.add_argument("--size", default="1024x1024")
    ap.add_argument("--model", default="gpt-image-1", help="dall-e-2 for 256x256 (b64_json asked for)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    rows: dict[str, dict[str, Any]] = {}
    for name, replicas in (("single process", None), ("ray, 1 replica", 1), ("ray, 2 replicas", 2)):
        with tempfile.TemporaryDirectory() as d:
            proc, base = _start(Path(d), replicas)
            try:
                rows[name] = _measure(base, args)
            finally:
                _stop(proc)
        print(name, rows[name], flush=True)
    one, two, single = rows["ray, 1 replica"], rows["ray, 2 replicas"], rows["single process"]
    summary = {
        "scaling_efficiency": round(two["images_per_s"] / (2 * one["images_per_s"]), 3),
        "ray_added_latency_ms": round((one["lone_p50_s"] - single["lone_p50_s"]) * 1000, 1),
        "ray_1_replica_vs_single_process": round(one["images_per_s"] / single["images_per_s"], 3),
    }
    print(json.dumps(summary))
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
