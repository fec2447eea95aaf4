"""The server's own cost, before and after a change, in one interleaved run: two builds of ImageForge served side
by side (this checkout, and another source tree given with ``--before``), the official openai SDK as the client.

For every request the server's ``/metrics`` give the engine time (``imageforge_run_seconds``) and the encode CPU
(``imageforge_encode_seconds``) it spent, so each figure below is per request, and generate's own ±15-25 %
noise on this machine drops out of the overhead:

- ``outside_ms``: client wall time minus the engine's time (encode, moderation, HTTP, JSON, the SDK);
- ``overhead_ms``: ``outside_ms`` minus the encode CPU: what serving adds on top of making and encoding the image;
- ``encode_share``: encode CPU over the request's wall time;
- ``preview_ratio``: a streamed request with ``partial_images=3`` over a plain one, wall time, paired.

Each repeat runs every (build, kind) arm once in a fresh random order. Medians with [min-max] are printed and
written as JSON.

    git worktree add /tmp/before <rev>
    python -m benchmarks.bench_overhead --before /tmp/before/src --repeats 10
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import openai
from benchmarks.bench_serving import EngineSetup, Server, build_sd_turbo_small

ENGINES = {
    "embedded": lambda work: EngineSetup("embedded", "gpt-image-1", "1024x1024", "low", None),
    "sd-turbo-small": lambda work: EngineSetup(
        "sd-turbo-small", "sd-turbo-small", "512x512", "high",
        f"""
include_defaults = false
[models."sd-turbo-small"]
engine = "diffusers"
profile = "imageforge"
[models."sd-turbo-small".options]
model = "{build_sd_turbo_small(work)}"
guidance_scale = 0.0
quality_steps = {{ low = 1, medium = 2, high = 4 }}
""",
    ),
}  # fmt: skip


def _sample(server: Server) -> tuple[float, float]:
    return server.metric("imageforge_run_seconds_sum"), server.metric("imageforge_encode_seconds_sum")


def _request(server: Server, setup: EngineSetup, i: int, stream: bool) -> dict[str, float]:
    client = openai.OpenAI(base_url=f"{server.base}/v1", api_key="bench", max_retries=0, timeout=600)
    run0, enc0 = _sample(server)
    kwargs: dict[str, Any] = dict(model=setup.model, prompt=f"a red apple {i}", size=setup.size,
                                  quality=setup.quality, output_format="png")  # fmt: skip
    t0 = time.perf_counter()
    if stream:
        for event in client.images.generate(stream=True, partial_images=3, **kwargs):
            if event.type == "image_generation.completed":
                assert event.b64_json
    else:
        r = client.images.generate(**kwargs)
        assert r.data and r.data[0].b64_json
    wall = time.perf_counter() - t0
    run1, enc1 = _sample(server)
    engine, encode = run1 - run0, enc1 - enc0
    return {"wall": wall, "engine": engine, "encode": encode}


def _stats(values: list[float], digits: int = 2) -> dict[str, float]:
    return {"p50": round(statistics.median(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True, help="the other build's source directory (its src/)")
    ap.add_argument("--engines", nargs="+", default=list(ENGINES), choices=list(ENGINES))
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--json", default=None)
    ap.add_argument("--server-flags", default="", help="extra `imageforge serve` flags for both builds")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    rng = random.Random(0)
    report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "repeats": args.repeats,
                              "server_flags": args.server_flags, "rows": []}  # fmt: skip
    for name in args.engines:
        setup = ENGINES[name](work)
        flags = args.server_flags.split()
        servers = {"before": Server(work, setup, *flags, env={"PYTHONPATH": args.before}),
                   "after": Server(work, setup, *flags)}  # fmt: skip
        try:
            for s in servers.values():  # warm each path once
                _request(s, setup, 0, False)
                _request(s, setup, 0, True)
            got: dict[tuple[str, str], list[dict[str, float]]] = {}
            arms = [(b, k) for b in servers for k in ("plain", "stream")]
            for i in range(args.repeats):
                rng.shuffle(arms)
                for build, kind in arms:
                    got.setdefault((build, kind), []).append(_request(servers[build], setup, i + 1, kind == "stream"))
        finally:
            for s in servers.values():
                s.stop()
        for build in servers:
            plain, stream = got[(build, "plain")], got[(build, "stream")]
            row = {
                "engine": name, "build": build,
                "wall_s": _stats([r["wall"] for r in plain], 3),
                "outside_ms": _stats([(r["wall"] - r["engine"]) * 1000 for r in plain]),
                "overhead_ms": _stats([(r["wall"] - r["engine"] - r["encode"]) * 1000 for r in plain]),
                "overhead_pct": _stats([(r["wall"] - r["engine"] - r["encode"]) / r["wall"] * 100 for r in plain]),
                "encode_ms": _stats([r["encode"] * 1000 for r in plain]),
                "encode_share_pct": _stats([r["encode"] / r["wall"] * 100 for r in plain]),
                "stream_wall_s": _stats([r["wall"] for r in stream], 3),
                "preview_ratio": _stats([s["wall"] / p["wall"] for s, p in zip(stream, plain, strict=True)], 3),
            }  # fmt: skip
            report["rows"].append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
