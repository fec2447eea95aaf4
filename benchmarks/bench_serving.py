"""The serving core under load (issue 6): overhead, batching gain and price, encode share, wasted work, overload.

    python -m benchmarks.bench_serving [--engine embedded|sd-turbo-small|both] [--json out.json] [--quick]

Each engine is served by a real ``imageforge serve`` process (started here, own port and data directory); the
client is httpx in this process. Figures (issue 6):

- **P1 overhead**: p50 end-to-end over HTTP at concurrency 1 / p50 of the direct call (engine.generate + encode
  + base64 in this process, same settings) − 1.
- **P2 batching gain**: images/s at concurrency 8 with batching on / with ``--max-batch 1``.
- **P3 latency price**: p50 at concurrency 8 batched / p50 of a lone request.
- **P4 encode share**: the server's encode+base64 CPU time / request wall time, per format (from /metrics).
- **P7 wasted work**: denoising steps run after a client disconnects (``imageforge_cancelled_steps_total``), for
  a lone request and for one request of a full batch.
- **R2 overload** (issue 15): open-loop arrivals at 2× the measured saturation rate for 30 s (three 10 s rounds,
  each after 20 requests sent one at a time), on a server with the default settings (a queue bounded by time: a
  request waits at most a quarter of its unloaded run time): share answered 429 with Retry-After, p99 of admitted
  requests / p99 unloaded (the one-at-a-time requests), requests lost (neither an image nor a 429).
  ``--only-r2`` runs just this. The throughput figures (P2, P3) are measured on servers whose queue may hold
  600 s of work: a closed loop of 8 clients is itself an overload by that rule.

Engines: the embedded model (1024², quality low) and ``sd-turbo-small``, a StableDiffusionPipeline with SD-Turbo's
architecture (SD 2.x UNet layout, linear attention projections, 4-channel latents at /8, Euler with trailing
timesteps, no guidance) at reduced width with random weights, at 512² and 1 step (SD-Turbo's native setting):
it times like a real checkpoint of that shape, which 2 CPU cores could not run at full width in reasonable time.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


@dataclass(frozen=True)
class EngineSetup:
    name: str
    model: str  # the model id requests use
    size: str
    quality: str
    catalogue: str | None  # TOML, or None for the default catalogue


def build_sd_turbo_small(directory: Path) -> Path:
    """Save a reduced-width SD-Turbo-shaped pipeline (random weights) as a diffusers directory."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from tests.engines.tiny_pipelines import make_clip_tokenizer
    from transformers import CLIPTextConfig, CLIPTextModel

    out = directory / "sd-turbo-small"
    if (out / "model_index.json").exists():
        return out
    tokenizer = make_clip_tokenizer(directory / "tok")
    torch.manual_seed(0)
    unet = UNet2DConditionModel(  # SD 2.x layout (SD-Turbo) at 1/5 of its width: (320, 640, 1280, 1280) -> below
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(64, 128, 256, 256), attention_head_dim=(1, 2, 4, 4), cross_attention_dim=256,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        use_linear_projection=True, norm_num_groups=32,
    )  # fmt: skip
    vae = AutoencoderKL(  # SD's VAE layout at 1/4 width: (128, 256, 512, 512) -> below
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, sample_size=512,
        block_out_channels=(32, 64, 128, 128),
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    )  # fmt: skip
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer), hidden_size=256, intermediate_size=1024, num_attention_heads=4,
            num_hidden_layers=6, max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        )
    )  # fmt: skip
    tokenizer.model_max_length = 77
    scheduler = EulerDiscreteScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, timestep_spacing="trailing"
    )
    pipe = StableDiffusionPipeline(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    pipe.save_pretrained(str(out), safe_serialization=True)
    return out


def setups(which: str, work: Path) -> list[EngineSetup]:
    out = []
    if which in ("embedded", "both"):
        out.append(EngineSetup("embedded", "gpt-image-1", "1024x1024", "low", None))
    if which in ("sd-turbo-small", "both"):
        path = build_sd_turbo_small(work)
        toml = f"""
include_defaults = false
[models."sd-turbo-small"]
engine = "diffusers"
profile = "imageforge"
[models."sd-turbo-small".options]
model = "{path}"
guidance_scale = 0.0
max_batch = 8
quality_steps = {{ low = 1, medium = 2, high = 4 }}
"""
        out.append(EngineSetup("sd-turbo-small", "sd-turbo-small", "512x512", "low", toml))
    return out


class Server:
    """``imageforge serve`` in a subprocess until ``stop()``."""

    def __init__(self, work: Path, setup: EngineSetup, *flags: str, env: dict[str, str] | None = None) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        data = Path(tempfile.mkdtemp(dir=work, prefix="data-"))
        args = [sys.executable, "-m", "imageforge", "serve", "--port", str(self.port), "--data-dir", str(data)]
        if setup.catalogue is not None:
            (data / "models.toml").write_text(setup.catalogue)
            args += ["--config", str(data / "models.toml")]
        env = {**os.environ, "IMAGEFORGE_THREADS": "2", "IMAGEFORGE_LOG_LEVEL": "warning", "HF_HUB_OFFLINE": "1",
               **(env or {})}  # fmt: skip
        self.log = open(data / "server.log", "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen([*args, *flags], stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {(data / 'server.log').read_text()[-3000:]}")
            try:
                r = httpx.get(f"{self.base}/ready", timeout=2)
                if r.status_code == 200:
                    return
                if any(state.startswith("failed") for state in r.json()["engines"].values()):
                    self.stop()
                    raise RuntimeError(f"engine failed: {r.json()}")
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server not ready")

    def metric(self, name: str, **labels: str) -> float:
        total = 0.0
        for line in httpx.get(f"{self.base}/metrics", timeout=30).text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                head, value = line.rsplit(" ", 1)
                if all(f'{k}="{v}"' in head for k, v in labels.items()):
                    total += float(value)
        return total

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def body(setup: EngineSetup, i: int, **extra: Any) -> dict[str, Any]:
    return {"model": setup.model, "prompt": f"a red apple {i}", "size": setup.size, "quality": setup.quality,
            **extra}  # fmt: skip


async def one(client: httpx.AsyncClient, url: str, payload: dict[str, Any]) -> tuple[int, float, dict[str, str]]:
    t0 = time.perf_counter()
    r = await client.post(url, json=payload)
    headers = dict(r.headers)
    headers["x-bench-sent"] = f"{t0:.4f}"
    return r.status_code, time.perf_counter() - t0, headers


async def closed_loop(base: str, setup: EngineSetup, concurrency: int, per_worker: int) -> tuple[float, list[float]]:
    """``concurrency`` clients each sending ``per_worker`` requests back to back: (images/s, latencies)."""
    url = f"{base}/v1/images/generations"
    latencies: list[float] = []
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=concurrency + 4)) as client:

        async def worker(w: int) -> None:
            for k in range(per_worker):
                status, dt, _ = await one(client, url, body(setup, w * 1000 + k))
                assert status == 200, status
                latencies.append(dt)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        wall = time.perf_counter() - t0
    return concurrency * per_worker / wall, latencies


def direct_p50(setup: EngineSetup, work: Path, repeats: int) -> float:
    """engine.generate + encode + base64 in this process, with the catalogue's engine and the request's steps."""
    from imageforge.config import Settings, load_catalogue
    from imageforge.engines.registry import create_engine
    from imageforge.imaging.encode import encode
    from imageforge.params import GenerationParams

    settings = Settings(data_dir=work / "direct")
    if setup.catalogue is not None:
        (work / "direct.toml").write_text(setup.catalogue)
        settings = Settings(data_dir=work / "direct", config=work / "direct.toml")
    entry = load_catalogue(settings).entry(setup.model)
    engine = create_engine(entry.engine, entry.options, settings.engine_defaults())
    engine.load()
    w, h = (int(v) for v in setup.size.split("x"))
    steps = engine.capabilities.quality_steps[setup.quality]
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        p = GenerationParams(prompt=f"a red apple {i}", width=w, height=h, steps=steps, seed=i)
        image = engine.generate([p])[0].images[0]
        base64.b64encode(encode(image, "png"))
        if i:  # the first call warms up
            times.append(time.perf_counter() - t0)
    engine.close()
    return statistics.median(times)


async def p4_encode_share(server: Server, setup: EngineSetup, repeats: int) -> dict[str, float]:
    out = {}
    url = f"{server.base}/v1/images/generations"
    async with httpx.AsyncClient(timeout=600) as client:
        for fmt in ("png", "jpeg", "webp"):
            enc0 = server.metric("imageforge_encode_seconds_sum", format=fmt)
            req0 = server.metric("imageforge_request_seconds_sum")
            for i in range(repeats):
                status, _, _ = await one(client, url, body(setup, i, output_format=fmt))
                assert status == 200
            enc = server.metric("imageforge_encode_seconds_sum", format=fmt) - enc0
            req = server.metric("imageforge_request_seconds_sum") - req0
            out[fmt] = enc / req
    return out


async def _wait_running(server: Server, jobs: float) -> None:
    while server.metric("imageforge_running_jobs") < jobs:
        await asyncio.sleep(0.01)


async def p7_wasted(server: Server, setup: EngineSetup, batch: int) -> float:
    """Steps run for a request after its client disconnected, alone (batch 1) or as one of ``batch``."""
    url = f"{server.base}/v1/images/generations"
    before = server.metric("imageforge_cancelled_steps_total")
    slow = {**body(setup, 0), "quality": "high"}
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=batch + 4)) as client:
        others = [asyncio.ensure_future(one(client, url, {**slow, "prompt": f"other {i}"})) for i in range(batch - 1)]
        victim = asyncio.ensure_future(client.post(url, json=slow))
        await _wait_running(server, batch)
        await asyncio.sleep(0.3)  # a few steps into the batch
        victim.cancel()  # the client goes away: httpx closes the connection
        await asyncio.gather(victim, return_exceptions=True)
        await asyncio.gather(*others)
    while server.metric("imageforge_running_jobs") > 0:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    return server.metric("imageforge_cancelled_steps_total") - before


async def open_loop(base: str, setup: EngineSetup, rate: float, seconds: float) -> dict[str, Any]:
    """Requests arriving at ``rate`` per second for ``seconds``, whatever the server does (open loop)."""
    url = f"{base}/v1/images/generations"
    results: list[tuple[int, float, dict[str, str]] | BaseException] = []
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=1000)) as client:
        tasks = []
        t0 = time.perf_counter()
        k = 0
        while (now := time.perf_counter() - t0) < seconds:
            due = k / rate
            if due > now:
                await asyncio.sleep(due - now)
            tasks.append(asyncio.ensure_future(one(client, url, body(setup, k))))
            k += 1
        results = list(await asyncio.gather(*tasks, return_exceptions=True))
    ok = [r[1] for r in results if not isinstance(r, BaseException) and r[0] == 200]
    busy = [r for r in results if not isinstance(r, BaseException) and r[0] == 429]
    with_retry = [r for r in busy if "retry-after" in r[2]]
    lost = len(results) - len(ok) - len(busy)
    timeline = [(round(float(r[2]["x-bench-sent"]) - t0, 3), r[0], round(r[1], 3)) for r in results
                if not isinstance(r, BaseException)]  # fmt: skip
    return {"offered": len(results), "ok": len(ok), "429": len(busy), "429_with_retry_after": len(with_retry),
            "lost": lost, "p50_s": pct(ok, 50), "p99_s": pct(ok, 99), "timeline": timeline,
            "seconds": seconds}  # fmt: skip


DEEP_QUEUE = ("--queue-limit", "16", "--max-queue-seconds", "600")  # for closed-loop throughput runs


def _merge(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Open-loop runs pooled into one: counts added, percentiles over every admitted request."""
    ok = [dt for r in runs for _, status, dt in r["timeline"] if status == 200]
    out: dict[str, Any] = {k: sum(r[k] for r in runs) for k in ("offered", "ok", "429", "429_with_retry_after", "lost")}
    out.update(p50_s=pct(ok, 50), p99_s=pct(ok, 99), timeline=[t for r in runs for t in r["timeline"]],
               seconds=sum(r["seconds"] for r in runs))  # fmt: skip
    return out


def overload(work: Path, setup: EngineSetup, ips: float | None, quick: bool) -> dict[str, Any]:
    """R2 on a server with the default settings, against the saturation rate ``ips`` (measured here at
    concurrency 8 if not given). This shared 2-core machine drifts by ±20 % over minutes, so the unloaded and
    overloaded phases are interleaved: rounds of requests one at a time (the unloaded latency) and 10 s of
    open-loop arrivals at 2x ``ips``, three rounds for the 30 s at 2x; the ratio pools each phase's rounds. One
    10 s run at 1x is recorded too."""
    if ips is None:
        probe = Server(work, setup, *DEEP_QUEUE)
        try:
            asyncio.run(closed_loop(probe.base, setup, 1, 1))
            ips, _ = asyncio.run(closed_loop(probe.base, setup, 8, 2 if quick else 3))
        finally:
            probe.stop()
    server = Server(work, setup)
    lone: list[float] = []
    rounds: list[dict[str, Any]] = []
    try:
        asyncio.run(closed_loop(server.base, setup, 1, 3))  # warm, and the engine's costs measured
        for _ in range(2 if quick else 3):
            lone += asyncio.run(closed_loop(server.base, setup, 1, 20))[1]
            rounds.append(asyncio.run(open_loop(server.base, setup, 2 * ips, 10.0)))
        r1 = asyncio.run(open_loop(server.base, setup, ips, 10.0))
    finally:
        server.stop()
    r2 = _merge(rounds)
    unloaded = pct(lone, 99)
    return {"R2_saturation_images_per_s": ips, "R2_unloaded_p50_s": pct(lone, 50), "R2_unloaded_p99_s": unloaded,
            "R2_at_1x": r1, "R2_at_2x": r2, "R2_rounds_p99_s": [r["p99_s"] for r in rounds],
            "R2_share_429": r2["429"] / r2["offered"], "R2_p99_ratio": r2["p99_s"] / unloaded,
            "R2_p99_ratio_1x": r1["p99_s"] / unloaded, "R2_lost": r2["lost"] + r1["lost"]}  # fmt: skip


def bench(setup: EngineSetup, work: Path, quick: bool) -> dict[str, Any]:
    reps = 3 if quick else 5
    per_worker = 2 if quick else 4
    res: dict[str, Any] = {"engine": setup.name, "size": setup.size, "quality": setup.quality}
    direct = direct_p50(setup, work, reps)
    batched = Server(work, setup, *DEEP_QUEUE)
    try:
        asyncio.run(closed_loop(batched.base, setup, 1, 1))  # warm the server's path
        _, lone = asyncio.run(closed_loop(batched.base, setup, 1, reps))
        res["P1_direct_p50_s"], res["P1_http_p50_s"] = direct, statistics.median(lone)
        res["P1_overhead"] = res["P1_http_p50_s"] / direct - 1
        ips_on, lat8 = asyncio.run(closed_loop(batched.base, setup, 8, per_worker))
        res["P2_images_per_s_batched"], res["P3_p50_c8_s"] = ips_on, statistics.median(lat8)
        res["P3_ratio"] = res["P3_p50_c8_s"] / res["P1_http_p50_s"]
        res["batch_images_mean"] = batched.metric("imageforge_batch_images_sum") / max(
            1.0, batched.metric("imageforge_batch_images_count")
        )
        res["P4_encode_share"] = asyncio.run(p4_encode_share(batched, setup, reps))
        res["P7_steps_after_disconnect_lone"] = asyncio.run(p7_wasted(batched, setup, 1))
        res["P7_steps_after_disconnect_in_batch_of_4"] = asyncio.run(p7_wasted(batched, setup, 4))
    finally:
        batched.stop()
    res.update(overload(work, setup, ips_on, quick))
    unbatched = Server(work, setup, *DEEP_QUEUE, "--max-batch", "1")
    try:
        asyncio.run(closed_loop(unbatched.base, setup, 1, 1))
        ips_off, _ = asyncio.run(closed_loop(unbatched.base, setup, 8, per_worker))
        res["P2_images_per_s_unbatched"] = ips_off
        res["P2_gain"] = ips_on / ips_off
    finally:
        unbatched.stop()
    return res


def table(results: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="ImageForge serving benchmarks (issue 6)")
    t.add_column("figure")
    for r in results:
        t.add_column(f"{r['engine']} {r['size']} {r['quality']}")

    def row(label: str, fn: Any) -> None:
        t.add_row(label, *(fn(r) for r in results))

    row("P1 direct p50 / http p50 (s)", lambda r: f"{r['P1_direct_p50_s']:.3f} / {r['P1_http_p50_s']:.3f}")
    row("P1 overhead", lambda r: f"{r['P1_overhead'] * 100:+.1f} %")
    row("P2 img/s c=8 batched / unbatched",
        lambda r: f"{r['P2_images_per_s_batched']:.2f} / {r['P2_images_per_s_unbatched']:.2f}")  # fmt: skip
    row("P2 batching gain", lambda r: f"{r['P2_gain']:.2f}x (mean batch {r['batch_images_mean']:.1f})")
    row("P3 p50 c=8 batched / lone", lambda r: f"{r['P3_ratio']:.2f}x ({r['P3_p50_c8_s']:.2f} s)")
    row("P4 encode share png/jpeg/webp",
        lambda r: " / ".join(f"{v * 100:.1f} %" for v in r["P4_encode_share"].values()))  # fmt: skip
    row("P7 steps after disconnect: lone / in batch of 4",
        lambda r: f"{r['P7_steps_after_disconnect_lone']:.0f} / "
        f"{r['P7_steps_after_disconnect_in_batch_of_4']:.0f}")  # fmt: skip
    row("R2 at 2x: 429 share (with Retry-After)",
        lambda r: f"{r['R2_share_429'] * 100:.0f} % "
        f"({r['R2_at_2x']['429_with_retry_after']}/{r['R2_at_2x']['429']})")  # fmt: skip
    row("R2 p99 admitted at 2x / unloaded", lambda r: f"{r['R2_p99_ratio']:.2f} ({r['R2_at_2x']['p99_s']:.2f} s / "
        f"{r['R2_unloaded_p99_s']:.2f} s)")  # fmt: skip
    row("R2 requests lost", lambda r: str(r["R2_lost"]))
    Console().print(t)


def r2_table(results: list[dict[str, Any]]) -> None:
    for r in results:
        a, b = r["R2_at_1x"], r["R2_at_2x"]
        print(
            f"{r['engine']}: saturation {r['R2_saturation_images_per_s']:.2f} img/s; unloaded p50/p99 "
            f"{r['R2_unloaded_p50_s']:.2f}/{r['R2_unloaded_p99_s']:.2f} s; 1x: {a['ok']} ok, {a['429']} 429, "
            f"p99 {a['p99_s']:.2f} s ({r['R2_p99_ratio_1x']:.2f}x); 2x: {b['ok']} ok, {b['429']}/{b['offered']} "
            f"answered 429 ({b['429_with_retry_after']} with Retry-After), p99 {b['p99_s']:.2f} s "
            f"({r['R2_p99_ratio']:.2f}x unloaded; rounds {', '.join(f'{x:.2f}' for x in r['R2_rounds_p99_s'])} s), "
            f"admitted {b['ok'] / b['seconds']:.2f} img/s, lost {r['R2_lost']}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", default="both", choices=["embedded", "sd-turbo-small", "both"])
    ap.add_argument("--json", type=Path)
    ap.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    ap.add_argument("--only-r2", action="store_true", help="only the overload run (R2)")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "imageforge-bench-serving")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    results = []
    for setup in setups(args.engine, args.work):
        if args.only_r2:
            results.append({"engine": setup.name, **overload(args.work, setup, None, args.quick)})
        else:
            results.append(bench(setup, args.work, args.quick))
        if args.json:  # after each engine, so a later failure keeps what was measured
            meta = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "python": platform.python_version(),
                    "date": time.strftime("%Y-%m-%d"), "results": results}  # fmt: skip
            args.json.write_text(json.dumps(meta, indent=2))
    (r2_table if args.only_r2 else table)(results)


if __name__ == "__main__":
    main()
