"""The ladder's rows, in the order they run, and what each measures (``ladder.py`` has the command line).

Every shape gets, in **phase A** (nothing compiled, so every shape has its baseline before any compile time is
spent): ``stock`` (the plain diffusers loop), ``engine`` (ImageForge's engine in-process, batch 1 and batch 8,
with the PNG + base64 encode the server does), ``http`` (a real server in this process, the ``openai`` SDK as the
client, concurrency 1 and 8), and the ladder's first steps: ``dtype=float16`` vs ``dtype=bfloat16`` (the faster
is kept), ``+channels_last``, ``+fuse_qkv``. Then, in **phase B**: ``+compile=denoiser``,
``+compile=denoiser+vae``, ``previews=latent`` (a generate that asks for a streamed preview at three evenly
spaced steps), ``+batch 8``, ``previews=vae`` and ``+encode overlapped (HTTP c=8)``: a server with every option
so far, where encoding one batch's images overlaps the next batch's denoising.

Ladder steps are cumulative: each adds its option to the ones before it, unless its row failed (then the option
is dropped and the error recorded). Each row reports its gain over the row it builds on (``previous``) and over
the stock loop. The preview rows and ``+batch 8`` build on the last speed-option row; ``previews=vae`` compares
with ``previews=latent``.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.gpu.measure import Row, count_flops, free_memory, peak_memory_gib, reset_peak_memory, time_row
from benchmarks.gpu.server import RunningServer, catalogue_toml, serve_catalogue
from benchmarks.gpu.shapes import Shape, get_shape

__all__ = ["ARMS", "BATCH", "Config", "Runner", "preview_steps"]

ARMS = ("stock", "engine", "http", "ladder")
BATCH = 8  # requests per batched call, and clients of the concurrent HTTP rows
PROMPT = "a lighthouse on a rocky cliff at sunset, oil painting"
SEED = 1234
H100_BF16_DENSE_TFLOPS = 989.0  # H100/H200 SXM, dense bf16 (NVIDIA's figure is 1979 with 2:4 sparsity)


@dataclass(frozen=True)
class Config:
    shapes: tuple[str, ...]
    arms: tuple[str, ...]
    toy: bool = False
    device: str = "auto"
    repeats: int = 3  # timed images per batch-1 row; batched rows time at least one full batch
    warmup_steps: int = 2  # denoising steps of warm-up calls (same batch and size: the same kernels, graphs)
    time_budget_s: float | None = None
    peak_tflops: float | None = None  # None: 989 on CUDA, no roofline on the CPU
    flux_depth: int = 19
    compile_on_cpu: bool = False
    json_path: Path | None = None


def preview_steps(steps: int) -> set[int]:
    """Three evenly spaced steps (1-based) at which the preview rows ask for a preview: 30 -> {10, 20, 30}."""
    return {max(1, round(steps * (k + 1) / 3)) for k in range(3)}


@dataclass
class _ShapeState:
    shape: Shape
    flops: float | None = None
    flops_error: str | None = None
    stock: Row | None = None
    engine_b1: Row | None = None
    engine_batched: Row | None = None
    last: Row | None = None  # the ladder's latest speed-option row that worked
    options: dict[str, Any] = field(default_factory=dict)  # the ladder's cumulative engine options
    single_images: dict[int, Any] = field(default_factory=dict)  # the engine arm's batch-1 images, by seed


class _Engines:
    """The one engine alive at a time (the GPU holds one full-size model comfortably, not a ladder of them);
    rows with the same options reuse it, so e.g. ``+batch 8`` runs on the graphs ``+compile`` already built."""

    def __init__(self) -> None:
        self.key: str | None = None
        self.engine: Any = None
        self.compiled = False

    def get(self, label: str, kwargs: dict[str, Any], key: dict[str, Any]) -> tuple[Any, float | None]:
        """(engine, seconds it took to build and load, or None if reused)."""
        from imageforge.engines.diffusers import DiffusersEngine

        text = json.dumps(key, sort_keys=True, default=str)
        if text == self.key:
            return self.engine, None
        self.clear()
        t0 = time.perf_counter()
        self.compiled = kwargs.get("compile", "off") != "off"
        engine = DiffusersEngine(label, **kwargs)
        engine.load()
        self.key, self.engine = text, engine
        return engine, time.perf_counter() - t0

    def clear(self) -> None:
        if self.engine is not None:
            self.engine.close()
        self.engine, self.key = None, None
        free_memory(compiled=self.compiled)
        self.compiled = False


class Runner:
    def __init__(self, cfg: Config) -> None:
        import diffusers
        import torch

        # diffusers 0.42 logs a warning at every dtype cast of a model (SDXL's fp16 pipeline casts its VAE to fp32
        # and back in every call), which would bury the rows; errors still show.
        diffusers.utils.logging.set_verbosity_error()
        self.cfg = cfg
        self.device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        self.cuda = self.device.startswith("cuda")
        if self.cuda:
            self.auto_dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        else:
            self.auto_dtype = "float32"
        self.peak_tflops = cfg.peak_tflops if cfg.peak_tflops is not None else (
            H100_BF16_DENSE_TFLOPS if self.cuda else None)  # fmt: skip
        self.rows: list[Row] = []
        self.engines = _Engines()
        self.states = [_ShapeState(get_shape(n, toy=cfg.toy, flux_depth=cfg.flux_depth)) for n in cfg.shapes]
        self.work = Path(tempfile.mkdtemp(prefix="imageforge-ladder-"))
        self.t0 = time.perf_counter()
        self.started = datetime.now(UTC).isoformat(timespec="seconds")

    # -- the plan ----------------------------------------------------------------------------------------------

    def run(self) -> list[Row]:
        self._print_header()
        try:
            for st in self.states:
                self._phase_a(st)
            if "ladder" in self.cfg.arms:
                for st in self.states:
                    self._phase_b(st)
        finally:
            self.engines.clear()
            shutil.rmtree(self.work, ignore_errors=True)
            self._write()
        return self.rows

    def _phase_a(self, st: _ShapeState) -> None:
        arms = self.cfg.arms
        self._stock(st, timed="stock" in arms)
        if "engine" in arms:
            self._engine_arm(st)
        if "http" in arms:
            self._http(
                st, "http", {"dtype": "auto"}, [(1, "c=1", st.engine_b1), (BATCH, f"c={BATCH}", st.engine_batched)]
            )
        if "ladder" in arms:
            self._ladder_dtype(st)
            for step, extra in (("+channels_last", {"channels_last": True}), ("+fuse_qkv", {"fuse_qkv": True})):
                self._speed_step(st, step, extra)
        self.engines.clear()

    def _phase_b(self, st: _ShapeState) -> None:
        for mode in ("denoiser", "denoiser+vae"):
            skip = None
            if not self.cuda and not self.cfg.compile_on_cpu:
                skip = ("torch.compile is not run on the CPU: minutes of inductor compiling on a few cores, for "
                        "a GPU speed-up (--compile-on-cpu runs it)")  # fmt: skip
            self._speed_step(st, f"+compile={mode}", {"compile": mode}, warmups=2, skip=skip)
        base = st.last
        warmups = 2 if st.options.get("compile", "off") != "off" else 1
        latent = self._engine_row(st, "ladder", "previews=latent", dict(st.options), previous=base,
                                  previews=True, warmups=warmups)  # fmt: skip
        batched = self._engine_row(st, "ladder", f"+batch {BATCH}", dict(st.options), batch=BATCH, previous=base,
                                   warmups=warmups)  # fmt: skip
        self._engine_row(st, "ladder", "previews=vae", {**st.options, "preview_decoder": "vae"}, previous=latent,
                         previews=True, warmups=warmups)  # fmt: skip
        previous = batched if batched.status == "ok" else base
        self._http(st, "ladder", dict(st.options), [(BATCH, f"+encode overlapped (HTTP c={BATCH})", previous)],
                   warmups=warmups)  # fmt: skip
        self.engines.clear()

    # -- arms --------------------------------------------------------------------------------------------------

    def _stock(self, st: _ShapeState, *, timed: bool) -> None:
        """The loop a user writes: the pipeline called per image (the model card's dtype, diffusers' default
        SDPA attention). Its pipeline also gives the shape's FLOPs per image."""
        import torch

        shape = st.shape
        dtype = shape.stock_dtype if self.cuda else "float32"
        call = {"prompt": PROMPT, "guidance_scale": shape.guidance_scale, "height": shape.size,
                "width": shape.size, **shape.call_options}  # fmt: skip

        def body(row: Row) -> None:
            t0 = time.perf_counter()
            pipe = shape.build(dtype=getattr(torch, dtype), device=self.device)
            row.load_s = time.perf_counter() - t0
            try:
                self._count_flops(st, pipe, call)
                if not timed:
                    return

                def run(warm: bool) -> list[float]:
                    t = time.perf_counter()
                    images = pipe(**call, num_inference_steps=self._warm_steps(shape) if warm else shape.steps).images
                    if len(images) != 1:
                        raise RuntimeError(f"the pipeline drew {len(images)} images, not 1")
                    return [time.perf_counter() - t]

                time_row(row, run, warmups=1, calls=self.cfg.repeats)
            finally:
                pipe = None  # dropped before free_memory, so its GPU memory can be returned
                free_memory()

        if not timed:  # the FLOP count still needs the pipeline
            if not self._over_budget():
                try:
                    body(Row(shape.name, "stock", "flops", 1, 1))
                except Exception as exc:
                    st.flops_error = _describe(exc)
            return
        st.stock = self._execute(st, Row(shape.name, "stock", "pipe() loop", 1, 1, dtype=dtype), body)

    def _count_flops(self, st: _ShapeState, pipe: Any, call: dict[str, Any]) -> None:
        if st.flops is not None or st.flops_error is not None:
            return
        try:
            st.flops = count_flops(pipe, call, st.shape.steps)
        except Exception as exc:  # a FLOP count that fails leaves the roofline out, not the row
            st.flops_error = _describe(exc)

    def _engine_arm(self, st: _ShapeState) -> None:
        options = {"dtype": "auto"}
        st.engine_b1 = self._engine_row(st, "engine", "batch 1", options, previous=st.stock, keep=st.single_images)
        st.engine_batched = self._engine_row(st, "engine", f"batch {BATCH}", options, batch=BATCH,
                                             previous=st.engine_b1, compare_with=st.single_images)  # fmt: skip

    def _ladder_dtype(self, st: _ShapeState) -> None:
        """fp16 against bf16, everything else off; the faster one is kept for the rest of the ladder."""
        rows = []
        previous = st.engine_b1
        for dtype in ("float16", "bfloat16"):
            row = self._engine_row(st, "ladder", f"dtype={dtype}", {"dtype": dtype, "preview_decoder": "latent"},
                                   previous=previous)  # fmt: skip
            rows.append(row)
            previous = row
        ok = [r for r in rows if r.status == "ok" and r.img_s is not None]
        best = max(ok, key=lambda r: r.img_s or 0.0) if ok else None
        st.options = dict(best.options) if best is not None else {"dtype": "auto", "preview_decoder": "latent"}
        st.last = best if best is not None else st.engine_b1
        if best is not None:
            best.note = _join(best.note, "kept (the faster dtype)")

    def _speed_step(self, st: _ShapeState, step: str, extra: dict[str, Any], *, warmups: int = 1,
                    skip: str | None = None) -> Row:  # fmt: skip
        row = self._engine_row(st, "ladder", step, {**st.options, **extra}, previous=st.last, warmups=warmups,
                               skip=skip)  # fmt: skip
        if row.status == "ok":
            st.options |= extra
            st.last = row
        elif row.status == "error":
            row.note = _join(row.note, "dropped from the later steps")
        return row

    def _engine_kwargs(self, shape: Shape, options: dict[str, Any]) -> dict[str, Any]:
        warm = self._warm_steps(shape)
        return {
            "factory": shape.factory, "device": self.device, "guidance_scale": shape.guidance_scale,
            "max_batch": BATCH, "native_size": shape.size, "call_options": dict(shape.call_options),
            # "low" is the warm-up's step count, so HTTP warm-up requests are short (same shapes as timed ones).
            "quality_steps": {"low": warm, "medium": shape.steps, "high": shape.steps},
            **options,
        }  # fmt: skip

    def _resolved(self, options: dict[str, Any]) -> str:
        dtype = options.get("dtype", "auto")
        return self.auto_dtype if dtype == "auto" else str(dtype)

    def _engine_row(
        self,
        st: _ShapeState,
        arm: str,
        step: str,
        options: dict[str, Any],
        *,
        batch: int = 1,
        previous: Row | None,
        previews: bool = False,
        warmups: int = 1,
        keep: dict[int, Any] | None = None,
        compare_with: dict[int, Any] | None = None,
        skip: str | None = None,
    ) -> Row:
        """``DiffusersEngine.generate`` of ``batch`` requests (different seeds) per call, then the server's encode
        (PNG, base64) of every image; a request's latency ends when its own image is encoded."""
        from imageforge.params import GenerationParams, StepPreview
        from imageforge.serving.encoding import encode_for_delivery

        shape = st.shape
        row = Row(shape.name, arm, step, batch, 1, options=dict(options), dtype=self._resolved(options),
                  previous=previous.label if previous is not None else None)  # fmt: skip
        kwargs = self._engine_kwargs(shape, options)
        key = {**kwargs, "dtype": self._resolved(options)}
        images: dict[int, Any] = {}

        def call(engine: Any, steps: int, seed: int, record: dict[int, Any] | None) -> list[float]:
            wanted = preview_steps(steps) if previews else set()

            def on_step(progress: StepPreview) -> None:
                if progress.step in wanted:
                    for im in progress.preview(0):
                        encode_for_delivery(im, "png", None, True)  # as a streamed partial image is

            params = [GenerationParams(prompt=PROMPT, width=shape.size, height=shape.size, steps=steps, seed=seed + i)
                      for i in range(batch)]  # fmt: skip
            t0 = time.perf_counter()
            results = engine.generate(params, on_step=on_step if previews else None)
            latencies = []
            for p, result in zip(params, results, strict=True):
                for im in result.images:
                    encode_for_delivery(im, "png", None, True)
                latencies.append(time.perf_counter() - t0)
                if record is not None:
                    record[p.seed] = result.images[0]
            return latencies

        def body(row: Row) -> None:
            engine, row.load_s = self.engines.get(shape.name, kwargs, key)
            seeds = itertools.count(SEED)  # batch 1: a new seed per call; batched calls all start at SEED
            record = keep if keep is not None else (images if compare_with is not None else None)

            def run(warm: bool) -> list[float]:
                if warm:
                    return call(engine, self._warm_steps(shape), SEED + 10**7, None)
                return call(engine, shape.steps, SEED if batch > 1 else next(seeds), record)

            time_row(row, run, warmups=warmups, calls=self._calls(batch))
            if previews:
                row.extra["previews_per_image"] = len(preview_steps(shape.steps))
            if compare_with is not None:
                row.extra["batch_vs_single"] = _compare(compare_with, images)

        return self._execute(st, row, body, skip=skip)

    def _http(
        self,
        st: _ShapeState,
        arm: str,
        options: dict[str, Any],
        rows: list[tuple[int, str, Row | None]],
        *,
        warmups: int = 1,
    ) -> None:
        """A real server (one per option set) with the SDK as the client: ``concurrency`` threads, each its own
        client, each sending its requests one after another (a closed loop). Responses are b64_json (the only
        format the ``imageforge`` profile has: it refuses ``response_format``) with ``output_format="png"``.
        The server runs with moderation of outputs off: random weights draw noise, which the image classifier
        might refuse, and the ladder would then time refusals."""
        shape = st.shape
        model_options = {"model": shape.name, **self._engine_kwargs(shape, options)}
        started: dict[str, Any] = {}

        @contextmanager
        def serving(row: Row) -> Iterator[RunningServer]:
            if "error" in started:
                raise RuntimeError(f"the server did not start: {started['error']}")
            if "server" not in started:
                self.engines.clear()
                t0 = time.perf_counter()
                try:
                    started["server"] = serve_catalogue(
                        catalogue_toml(shape.name, model_options), self.work / f"{shape.name}-{arm}",
                        moderation_output=False, max_queue_seconds=600.0, queue_limit=64,
                    )  # fmt: skip
                except Exception as exc:
                    started["error"] = _describe(exc)
                    raise
                row.load_s = time.perf_counter() - t0
            yield started["server"]

        try:
            for c, label, previous in rows:
                row = Row(shape.name, arm, label, 1, c, options=dict(options), dtype=self._resolved(options),
                          previous=previous.label if previous is not None else None)  # fmt: skip

                def body(row: Row, c: int = c) -> None:
                    with serving(row) as server:
                        per_client = max(1, math.ceil(self.cfg.repeats / c))
                        clients = [_client(server) for _ in range(c)]
                        batches: list[tuple[float, float]] = []
                        try:
                            time_row(row, lambda warm: _http_round(clients, shape, "low" if warm else "high",
                                                                   1 if warm else per_client),
                                     warmups=warmups, calls=1, before=lambda: batches.append(_batch_metrics(server)),
                                     after=lambda: batches.append(_batch_metrics(server)))  # fmt: skip
                            calls, images = (b - a for a, b in zip(*batches, strict=True))
                            # How the server batched the timed requests (compiled graphs are per batch size).
                            row.extra["engine_calls"] = int(calls)
                            row.extra["images_per_engine_call"] = round(images / calls, 2) if calls else None
                        finally:
                            for client in clients:
                                client.close()

                self._execute(st, row, body)
        finally:
            if "server" in started:
                started["server"].stop()
            free_memory(compiled=options.get("compile", "off") != "off")

    # -- rows --------------------------------------------------------------------------------------------------

    def _execute(self, st: _ShapeState, row: Row, body: Callable[[Row], None], *, skip: str | None = None) -> Row:
        row.seq = len(self.rows) + 1
        if skip is not None:
            row.status, row.note = "skipped", skip
        elif self._over_budget():
            row.status, row.note = "skipped", f"time budget of {self.cfg.time_budget_s:.0f} s spent"
        else:
            reset_peak_memory()
            try:
                body(row)
            except Exception as exc:
                row.status, row.error = "error", _describe(exc)
                traceback.print_exc(file=sys.stderr)
            row.peak_gpu_mem_gib = peak_memory_gib()
        self._derive(st, row)
        self.rows.append(row)
        self._print_row(row)
        self._write()
        return row

    def _derive(self, st: _ShapeState, row: Row) -> None:
        row.flops_per_image = st.flops
        if row.status != "ok" or row.img_s is None:
            return
        if st.flops is not None:
            row.achieved_tflops = st.flops * row.img_s / 1e12
            if self.peak_tflops is not None:
                row.roofline = row.achieved_tflops / self.peak_tflops
        prev = next((r for r in reversed(self.rows) if r.shape == row.shape and r.label == row.previous), None)
        if prev is not None and prev.status == "ok" and prev.img_s:
            row.vs_previous = row.img_s / prev.img_s
        if st.stock is not None and st.stock.status == "ok" and st.stock.img_s:
            row.vs_stock = row.img_s / st.stock.img_s

    def _over_budget(self) -> bool:
        budget = self.cfg.time_budget_s
        return budget is not None and time.perf_counter() - self.t0 > budget

    def _warm_steps(self, shape: Shape) -> int:
        return max(1, min(self.cfg.warmup_steps, shape.steps))

    def _calls(self, batch: int) -> int:
        return max(1, math.ceil(self.cfg.repeats / batch))

    # -- output ------------------------------------------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        import diffusers
        import torch

        device_name = torch.cuda.get_device_name() if self.cuda else "cpu"
        return {
            "started": self.started, "elapsed_s": round(time.perf_counter() - self.t0, 1), "device": self.device,
            "device_name": device_name, "torch": torch.__version__, "diffusers": diffusers.__version__,
            "toy": self.cfg.toy, "peak_tflops": self.peak_tflops, "repeats": self.cfg.repeats,
            "warmup_steps": self.cfg.warmup_steps, "time_budget_s": self.cfg.time_budget_s,
            "shapes": {
                st.shape.name: {"factory": st.shape.factory, "size": st.shape.size, "steps": st.shape.steps,
                                "guidance_scale": st.shape.guidance_scale, "call_options": st.shape.call_options,
                                "note": st.shape.note, "flops_per_image": st.flops, "flops_error": st.flops_error,
                                "final_options": st.options}
                for st in self.states
            },
        }  # fmt: skip

    def _write(self) -> None:
        if self.cfg.json_path is None:
            return
        path = self.cfg.json_path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"meta": self.meta(), "rows": [r.to_json() for r in self.rows]}, indent=1))
        os.replace(tmp, path)  # a run cut short still leaves every finished row

    def _print_header(self) -> None:
        mode = "toy shapes" if self.cfg.toy else "true-size shapes"
        print(f"ImageForge GPU ladder on {self.device} ({mode}); peak {self.peak_tflops} TFLOP/s", flush=True)
        for st in self.states:
            s = st.shape
            print(f"  {s.name}: {s.size}x{s.size}, {s.steps} steps, guidance {s.guidance_scale}; {s.note}", flush=True)

    def _print_row(self, row: Row) -> None:
        head = f"{row.seq:>3} {row.shape:<12} {row.label:<32} b{row.batch} c{row.concurrency} {row.dtype or '':<8}"
        if row.status != "ok":
            print(f"{head} {row.status.upper()}: {row.error or row.note}", flush=True)
            return
        parts = [f"{row.img_s:8.3f} img/s", f"p50 {row.latency_p50_s:.3f}s", f"p99 {row.latency_p99_s:.3f}s",
                 f"n={row.images}", f"warmup {row.warmup_s:.1f}s"]  # fmt: skip
        if row.load_s is not None:
            parts.append(f"load {row.load_s:.1f}s")
        if row.peak_gpu_mem_gib is not None:
            parts.append(f"mem {row.peak_gpu_mem_gib:.1f}GiB")
        if row.achieved_tflops is not None:
            parts.append(f"{row.achieved_tflops:.3g} TFLOP/s")
        if row.roofline is not None:
            parts.append(f"roofline {100 * row.roofline:.1f}%")
        if row.vs_previous is not None:
            parts.append(f"x{row.vs_previous:.2f} vs {row.previous}")
        if row.vs_stock is not None:
            parts.append(f"x{row.vs_stock:.2f} vs stock")
        if row.extra.get("engine_calls"):
            parts.append(f"{row.extra['images_per_engine_call']} img/engine call")
        if "batch_vs_single" in row.extra:
            parts.append(f"batch-vs-single {row.extra['batch_vs_single']}")
        if row.note:
            parts.append(f"({row.note})")
        print(f"{head} " + "  ".join(parts), flush=True)


def _client(server: RunningServer) -> Any:
    import openai

    return openai.OpenAI(base_url=server.v1, api_key="ladder", max_retries=0, timeout=600)


def _batch_metrics(server: RunningServer) -> tuple[float, float]:
    """(engine calls, images) the server has run so far, from its /metrics."""
    import httpx

    text = httpx.get(f"{server.base}/metrics", headers={"authorization": "Bearer ladder"}, timeout=30).text
    totals = {"count": 0.0, "sum": 0.0}
    for line in text.splitlines():
        for kind in totals:
            if line.startswith(f"imageforge_batch_images_{kind}"):
                totals[kind] += float(line.rsplit(" ", 1)[1])
    return totals["count"], totals["sum"]


def _http_round(clients: list[Any], shape: Shape, quality: str, per_client: int) -> list[float]:
    """Every client sends ``per_client`` requests back to back, all clients at once; each request's latency."""

    def one_client(client: Any) -> list[float]:
        out = []
        for _ in range(per_client):
            t0 = time.perf_counter()
            r = client.images.generate(model=shape.name, prompt=PROMPT, size=f"{shape.size}x{shape.size}",
                                       quality=quality, output_format="png")  # fmt: skip
            if not r.data or not r.data[0].b64_json:
                raise RuntimeError("a response without an image")
            out.append(time.perf_counter() - t0)
        return out

    with ThreadPoolExecutor(len(clients), thread_name_prefix="ladder-client") as pool:
        futures = [pool.submit(one_client, c) for c in clients]
        return [t for f in futures for t in f.result()]


def _compare(single: dict[int, Any], batched: dict[int, Any]) -> dict[str, Any]:
    """Pixels of the images drawn in one batch against the same seeds drawn one at a time."""
    import numpy as np

    seeds = sorted(set(single) & set(batched))
    if not seeds:
        return {"seeds": 0, "max_abs_diff": None, "mean_abs_diff": None}
    diffs = [np.abs(np.asarray(single[s], dtype=np.int16) - np.asarray(batched[s], dtype=np.int16)) for s in seeds]
    return {"seeds": len(seeds), "max_abs_diff": int(max(d.max() for d in diffs)),
            "mean_abs_diff": round(float(np.mean([d.mean() for d in diffs])), 4)}  # fmt: skip


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:800]


def _join(note: str | None, more: str) -> str:
    return more if not note else f"{note}; {more}"
