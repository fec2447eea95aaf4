"""What the newest SDK's options cost on the embedded model: quality ``xhigh``/``max`` against ``high``, a gif per
frame, svg tracing per detail, and ``complexity`` (planning) against ``low``.

    python -m benchmarks.bench_formats [--repeats 3] [--size 1024] [--json out.json]

In-process, on the engine and the one encode path the server uses (``imaging.encode``), medians of ``--repeats``:

- quality: ``engine.generate`` with the steps ``validation.resolve`` gives each quality (gpt-image-2.5-flare);
- gif: ``frame_count`` frames drawn as one animation (the noise walk) + the gif encode, per frame and in all;
- svg: tracing one drawn image at each detail (low / medium / high), and the png encode of the same image;
- complexity: ``engine.generate`` of one image at quality medium with each complexity's candidates (``--only
  complexity`` runs this part alone).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imageforge.config import default_catalogue
from imageforge.engines.embedded.engine import EmbeddedEngine
from imageforge.imaging.encode import encode
from imageforge.params import GenerationParams
from imageforge.validation import resolve


def _median(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--json", default=None)
    ap.add_argument("--only", choices=["complexity"], default=None)
    args = ap.parse_args()
    engine = EmbeddedEngine()
    engine.load()
    catalogue, size = default_catalogue(), f"{args.size}x{args.size}"
    out: dict[str, Any] = {"quality": {}, "gif": {}, "svg": {}, "complexity": {}}

    def sweep(name: str, values: tuple[str, ...], fixed: dict[str, str]) -> None:
        """Time one image per value of ``name`` (gpt-image-2.5-flare, as ``resolve`` makes it); each row's ratio
        to the first value's seconds as ``x_<first>``."""
        for value in values:
            fields = {"prompt": "a red apple", "model": "gpt-image-2.5-flare", "size": size, **fixed, name: value}
            r = resolve(fields, catalogue, engine.capabilities, seed=7)
            s = _median(lambda p=r.params: engine.generate([p]), args.repeats)
            row = {"steps": r.params.steps, "candidates": r.params.plan_candidates, "seconds": round(s, 3)}
            out[name][value] = row
            print(name, value, row, flush=True)
        for value in values[1:]:
            out[name][value][f"x_{values[0]}"] = round(out[name][value]["seconds"] / out[name][values[0]]["seconds"], 2)

    sweep("complexity", ("low", "medium", "high"), {"quality": "medium"})
    if args.only == "complexity":
        print(json.dumps(out))
        return
    sweep("quality", ("high", "xhigh", "max"), {})

    for frames in (2, 4, 9):
        p = GenerationParams(prompt="a red apple", width=args.size, height=args.size, steps=10, seed=7, n=frames,
                             frames=frames)  # fmt: skip
        gen = _median(lambda p=p: engine.generate([p]), args.repeats)
        drawn = list(engine.generate([p])[0].images)
        enc = _median(lambda d=drawn: encode(d, "gif", frame_duration_ms=200), args.repeats)
        out["gif"][frames] = {"draw_s": round(gen, 3), "encode_s": round(enc, 3),
                              "per_frame_s": round((gen + enc) / frames, 3)}  # fmt: skip
        print("gif", frames, out["gif"][frames], flush=True)

    still = engine.generate([GenerationParams(prompt="a red apple", width=args.size, height=args.size, steps=10,
                                              seed=7)])[0].images[0]  # fmt: skip
    out["svg"]["png_encode_s"] = round(_median(lambda: encode(still, "png"), args.repeats), 3)
    for detail in ("low", "medium", "high"):
        data = encode(still, "svg", svg_detail=detail)
        s = _median(lambda d=detail: encode(still, "svg", svg_detail=d), args.repeats)
        out["svg"][detail] = {"seconds": round(s, 3), "kB": round(len(data) / 1024)}
        print("svg", detail, out["svg"][detail], flush=True)
    print(json.dumps(out))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
