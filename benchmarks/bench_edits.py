"""Edit latency against generation at the same size and quality (steps), through HTTP with the official SDK, and
how fast hostile uploads are refused.

    python -m benchmarks.bench_edits [--repeats 5] [--quality medium] [--json out.json]

Against ``imageforge serve``'s app (embedded model) run by uvicorn in a thread of this process, interleaved
rounds of: ``images.generate``; ``images.edit`` of that image at ``input_fidelity`` high (45 % of the schedule
re-run) and low (70 %); a masked edit (the left half redrawn over the whole schedule). All at 1024x1024 png.
Then the refusal times of a 30000x30000 PNG bomb, a text file named .png, a wrong-size mask and a 60 MB body,
with the number of engine jobs before and after (it must not change).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import statistics
import struct
import time
import zlib
from collections.abc import Callable
from typing import Any

import httpx
import openai
from benchmarks.inprocess import serve_in_thread
from PIL import Image


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _bomb(w: int, h: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    with contextlib.suppress(openai.APIStatusError, httpx.HTTPError):  # the refusals are expected
        fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quality", default="medium")
    ap.add_argument("--data-dir", default="/tmp/imageforge-bench-edits")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    base, _, server = serve_in_thread(args.data_dir)
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="bench", max_retries=0, timeout=600)
    q = args.quality
    made = client.images.generate(model="gpt-image-1", prompt="a red heart", quality=q, background="transparent")
    heart = base64.b64decode(str(made.data[0].b64_json))
    mask = Image.new("RGBA", (1024, 1024), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 512, 1024))
    mask_png = _png(mask)
    runs: dict[str, Callable[[], Any]] = {
        "generate": lambda: client.images.generate(model="gpt-image-1", prompt="a blue heart", quality=q),
        "edit high": lambda: client.images.edit(model="gpt-image-1", image=heart, prompt="a blue heart", quality=q,
                                                input_fidelity="high"),
        "edit low": lambda: client.images.edit(model="gpt-image-1", image=heart, prompt="a blue heart", quality=q,
                                               input_fidelity="low"),
        "edit masked": lambda: client.images.edit(model="gpt-image-1", image=heart, mask=mask_png,
                                                  prompt="a blue heart", quality=q),
    }  # fmt: skip
    for fn in runs.values():  # warm every path once
        fn()
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeats):  # interleaved rounds: drift hits every kind alike
        for name, fn in runs.items():
            times[name].append(_timed(fn))
    gen = statistics.median(times["generate"])
    rows = {k: {"median_s": statistics.median(v), "vs_generate": statistics.median(v) / gen} for k, v in times.items()}

    def jobs() -> float:
        page = httpx.get(f"{base}/metrics").text
        return sum(float(line.rsplit(" ", 1)[1]) for line in page.splitlines()
                   if line.startswith("imageforge_batch_jobs_sum"))  # fmt: skip

    def body60() -> Any:
        yield b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n\x89PNG'
        for _ in range(60):
            yield b"\0" * (1 << 20)
        yield b"\r\n--b--\r\n"

    small = _png(Image.new("RGBA", (64, 64)))
    refusals: dict[str, Callable[[], Any]] = {
        "30000x30000 PNG bomb": lambda: client.images.edit(model="gpt-image-1", image=_bomb(30000, 30000), prompt="x"),
        "HTML named .png": lambda: client.images.edit(model="gpt-image-1", image=("a.png", b"<html></html>",
                                                      "image/png"), prompt="x"),
        "wrong-size mask": lambda: client.images.edit(model="gpt-image-1", image=heart, mask=small, prompt="x"),
        "60 MB body": lambda: httpx.post(f"{base}/v1/images/edits", content=body60(), timeout=60,
                                         headers={"content-type": "multipart/form-data; boundary=b"}),
    }  # fmt: skip
    before = jobs()
    refused = {name: _timed(fn) for name, fn in refusals.items()}
    after = jobs()
    out = {"quality": q, "repeats": args.repeats, "latency": rows, "refusal_s": refused,
           "jobs_run_by_refusals": after - before}  # fmt: skip
    for name, row in rows.items():
        print(f"{name:12s} median {row['median_s']:.3f} s   x{row['vs_generate']:.2f} of generate")
    for name, seconds in refused.items():
        print(f"refused {name:22s} in {seconds * 1000:.0f} ms")
    print(f"engine jobs run by the refused requests: {after - before:g}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    server.should_exit = True


if __name__ == "__main__":
    main()
