"""The server's overhead: one request through HTTP (openai SDK -> uvicorn -> FastAPI -> worker -> encode -> JSON)
against the same work done by calling the engine directly, in the same process, on the same engine instance.

    python -m benchmarks.bench_http [--repeats 5] [--quality low] [--json out.json]

"direct" = engine.generate + imaging.encode + base64, exactly the work a b64_json response needs, run on the
engine's worker thread (as the server runs it); "http" = the
official SDK's ``images.generate`` against ``imageforge serve``'s app run by uvicorn in a thread of this process.
Both at 1024x1024 for png, jpeg and webp. Ratio = http / direct.
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import time

import openai
from benchmarks.inprocess import serve_in_thread

from imageforge.imaging.encode import encode
from imageforge.params import GenerationParams


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quality", default="low")
    ap.add_argument("--data-dir", default="/tmp/imageforge-bench")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    base, app, server = serve_in_thread(args.data_dir)
    state = app.state.imageforge
    worker = state.engines.worker("gpt-image-1")
    engine = worker.engine
    steps = engine.capabilities.quality_steps[args.quality]
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="bench", max_retries=0)

    results = []
    for fmt in ("png", "jpeg", "webp"):
        p = GenerationParams(prompt="a red apple", width=1024, height=1024, steps=steps, seed=7)

        def direct(p: GenerationParams = p, fmt: str = fmt) -> None:
            # On the engine's own thread, as the server runs it: torch's CPU thread pool is per calling thread,
            # and two pools on two cores would slow both paths.
            def work() -> None:
                img = engine.generate([p])[0].images[0]
                base64.b64encode(encode(img, fmt))  # type: ignore[arg-type]

            worker.call(work)

        def http(fmt: str = fmt) -> None:
            r = client.images.generate(
                model="gpt-image-1",
                prompt="a red apple",
                size="1024x1024",
                quality=args.quality,
                output_format=fmt,  # type: ignore[arg-type]
            )
            assert r.data and r.data[0].b64_json

        direct()
        http()  # warm both paths
        d, h = [], []
        for _ in range(args.repeats):  # interleaved, so drift in machine load hits both alike
            t = time.perf_counter()
            direct()
            d.append(time.perf_counter() - t)
            t = time.perf_counter()
            http()
            h.append(time.perf_counter() - t)
        md, mh = statistics.median(d), statistics.median(h)
        row = {"format": fmt, "quality": args.quality, "direct_s": round(md, 3), "http_s": round(mh, 3),
               "overhead_ms": round((mh - md) * 1000, 1), "ratio": round(mh / md, 3)}  # fmt: skip
        results.append(row)
        print(row, flush=True)
    server.should_exit = True
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
