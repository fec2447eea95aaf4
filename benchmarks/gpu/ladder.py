"""The GPU benchmark ladder: how fast ImageForge draws with real model shapes, and what each speed option buys.

    python -m benchmarks.gpu.ladder [--shapes sd-turbo,sdxl,flux-schnell] [--arms stock,engine,http,ladder]
        [--repeats 3] [--time-budget-s 420] [--flux-depth 4] [--json out.json] [--toy]

Shapes (``shapes.py``): SD-Turbo (512², 1 step, no guidance), SDXL base (1024², 30 steps, guidance 5) and
FLUX.1-schnell (1024², 4 steps, T5 at 256 tokens), each its real diffusers architecture at true size with random
weights, built on the GPU in its dtype (no download). FLUX runs at reduced depth by default (``--flux-depth``,
said in every printout and in the JSON) so that the whole ladder fits a few minutes of GPU time; ``--flux-depth
19`` is the real model. ``--toy``: the same classes at toy width, 64² images, for the CPU (``tests/benchmarks``).

Arms and rows: ``runner.py``'s docstring. Every row prints a line; ``--json`` also writes every row (rewritten
after each, so a run cut short keeps what it finished): img/s, latency p50/p99, warm-up seconds (kept out of the
timing: torch.compile compiles there), load seconds, peak GPU memory, FLOPs per image (counted with
``torch.utils.flop_counter`` on the stock pipeline), achieved TFLOP/s and its share of ``--peak-tflops``
(default 989, H100/H200 SXM dense bf16; no roofline on the CPU unless given), and gains over the previous row
and over the stock loop. A failing row records its error and the ladder goes on; rows after ``--time-budget-s``
are recorded as skipped (a row already running finishes, so leave headroom under any hard limit).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from benchmarks.gpu.runner import ARMS
    from benchmarks.gpu.shapes import FLUX_FULL_DEPTH, SHAPES

    def listed(choices: tuple[str, ...]) -> Callable[[str], tuple[str, ...]]:
        def parse(text: str) -> tuple[str, ...]:
            items = tuple(t.strip() for t in text.split(",") if t.strip())
            unknown = [t for t in items if t not in choices]
            if unknown or not items:
                raise argparse.ArgumentTypeError(f"choose from {', '.join(choices)} (comma-separated)")
            return items

        return parse

    ap = argparse.ArgumentParser(prog="python -m benchmarks.gpu.ladder", description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", type=listed(SHAPES), default=SHAPES, help=f"comma-separated: {', '.join(SHAPES)}")
    ap.add_argument("--arms", type=listed(ARMS), default=ARMS, help=f"comma-separated: {', '.join(ARMS)}")
    ap.add_argument("--toy", action="store_true", help="toy-width shapes at 64x64 (for the CPU)")
    ap.add_argument("--device", default="auto", help="auto, cuda, cuda:N or cpu")
    ap.add_argument("--repeats", type=int, default=3, help="timed images per batch-1 row (batched: >= 1 batch)")
    ap.add_argument("--warmup-steps", type=int, default=2, help="denoising steps of each untimed warm-up call")
    ap.add_argument("--time-budget-s", type=float, default=420.0, help="skip the rows that would start later")
    ap.add_argument("--no-time-budget", action="store_true", help="run every row however long it takes")
    ap.add_argument("--peak-tflops", type=float, default=None, help="device peak (default: 989 on CUDA)")
    ap.add_argument("--flux-depth", type=int, default=4,
                    help=f"FLUX double-stream blocks (single-stream: twice as many); {FLUX_FULL_DEPTH} = the real "
                    "model")  # fmt: skip
    ap.add_argument("--compile-on-cpu", action="store_true", help="run the torch.compile rows on the CPU too")
    ap.add_argument("--json", type=Path, default=None, help="write every row here (default: print only)")
    args = ap.parse_args(argv)
    if args.repeats < 1 or args.warmup_steps < 1 or not 1 <= args.flux_depth <= FLUX_FULL_DEPTH:
        ap.error(f"--repeats and --warmup-steps must be >= 1, --flux-depth from 1 to {FLUX_FULL_DEPTH}")
    return args


def main(argv: list[str] | None = None) -> int:
    # Nothing may reach a model hub (the GPU machine has no network): fail fast instead of waiting on one.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if str(_ROOT) not in sys.path:  # run as a file: the engine imports the shapes as benchmarks.gpu.shapes
        sys.path.insert(0, str(_ROOT))
    args = parse_args(argv)
    from benchmarks.gpu.runner import Config, Runner

    cfg = Config(
        shapes=args.shapes, arms=args.arms, toy=args.toy, device=args.device, repeats=args.repeats,
        warmup_steps=args.warmup_steps, time_budget_s=None if args.no_time_budget else args.time_budget_s,
        peak_tflops=args.peak_tflops, flux_depth=args.flux_depth, compile_on_cpu=args.compile_on_cpu,
        json_path=args.json,
    )  # fmt: skip
    rows = Runner(cfg).run()
    errors = [r for r in rows if r.status == "error"]
    print(f"{len(rows)} rows: {len(rows) - len(errors)} ran or skipped, {len(errors)} failed"
          + (f"; JSON in {args.json}" if args.json else ""), flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
