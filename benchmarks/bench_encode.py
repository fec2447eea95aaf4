"""Encode cost per format and setting, on real embedded-model output (1024x1024, opaque and transparent).

    python benchmarks/bench_encode.py [--repeats 5] [--json out.json]

For each setting: median seconds per encode and the encoded size. Chooses nothing by itself; BENCHMARKS.md
records the numbers and the defaults picked from them (imaging/encode.py).
"""

from __future__ import annotations

import argparse
import io
import json

from PIL import Image

from bench_embedded import median_time  # benchmarks/ is the script's directory
from imageforge.engines.embedded.engine import EmbeddedEngine
from imageforge.params import GenerationParams


def _settings() -> list[tuple[str, dict[str, object]]]:
    out: list[tuple[str, dict[str, object]]] = []
    out += [(f"png level {lv}", {"format": "PNG", "compress_level": lv}) for lv in (0, 1, 3, 6, 9)]
    out += [(f"jpeg q{q}", {"format": "JPEG", "quality": q}) for q in (100, 90, 75, 50)]
    out += [(f"webp q{q} m4", {"format": "WEBP", "quality": q, "method": 4}) for q in (90, 75, 50)]
    out += [("webp lossless m4", {"format": "WEBP", "lossless": True, "quality": 100, "method": 4})]
    out += [("webp lossless m0", {"format": "WEBP", "lossless": True, "quality": 0, "method": 0})]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    engine = EmbeddedEngine()
    engine.load()
    images = {}
    for bg in ("opaque", "transparent"):
        p = GenerationParams(prompt="a red apple", width=1024, height=1024, steps=10, seed=1, background=bg)
        images[bg] = engine.generate([p])[0].images[0]
    results = []
    for bg, img in images.items():
        for name, kw in _settings():
            if kw["format"] == "JPEG" and bg == "transparent":
                continue
            src: Image.Image = img.convert("RGB") if kw["format"] == "JPEG" else img
            buf = io.BytesIO()

            def run(src: Image.Image = src, kw: dict[str, object] = kw, buf: io.BytesIO = buf) -> None:
                buf.seek(0)
                buf.truncate()
                src.save(buf, **kw)  # type: ignore[arg-type]

            secs = median_time(run, args.repeats)
            results.append(
                {"image": bg, "setting": name, "ms": round(secs * 1000, 1), "kb": len(buf.getvalue()) // 1024}
            )
            print(f"{bg:12s} {name:18s} {secs * 1000:8.1f} ms {len(buf.getvalue()) // 1024:7d} KiB", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
