"""Moderation (issue 7): prompt recall and false positives, image false positives, latency, share of request time.

    python -m benchmarks.bench_moderation [--part text|images|serving|all] [--json out.json] [--quick]

- **text**: every labelled set in ``tests/moderation/data`` at ``auto`` and ``low``: recall per blocked category
  (a prompt counts when its own category is flagged), the share of benign and swearing-only prompts flagged, and
  the prompt check's per-call latency.
- **images**: the image classifier's false positives at the ``auto`` (0.5) and ``low`` (0.8) thresholds on the
  benign photos that ship inside scientific Python packages (scikit-image, scikit-learn, matplotlib: installed
  for this benchmark only) and on our own generated images (the embedded model drawing every benign prompt of
  the held-out sets), and per-call latency by image size and thread count.
- **serving**: a real ``imageforge serve`` per engine; the moderation seconds of the requests (input and output
  checks, partial images included; ``imageforge_moderation_seconds``) over their wall time
  (``imageforge_request_seconds``), and p50 latency with moderation on and off.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
from benchmarks.bench_serving import Server, pct, setups

from imageforge.moderation import CATEGORIES, Moderator

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "moderation" / "data"
SETS = {"dev.jsonl": "development (lexicon tuned on it)", "test.jsonl": "held-out 1", "holdout.jsonl": "held-out 2",
        "holdout3.jsonl": "held-out 3"}  # fmt: skip


def _rows(name: str) -> list[dict[str, str]]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]


# -- text ------------------------------------------------------------------------------------------------------


def descriptions() -> list[str]:
    """Benign text from outside the labelled sets: the embedded model's concept descriptions (training/captions)
    and the quality benchmark's paraphrase prompts (3,564 lines of plain English about people, animals, food...)."""
    desc = json.loads((ROOT / "training" / "captions" / "descriptions.json").read_text())
    out = [t for texts in desc.values() for t in texts]
    for name in ("paraphrases.json", "paraphrases_dev.json"):
        out += [d["prompt"] for d in json.loads((ROOT / "benchmarks" / "quality_prompts" / name).read_text())]
    return out


def text_part() -> dict[str, Any]:
    m = Moderator()
    out: dict[str, Any] = {"sets": {}}
    timings: list[float] = []
    extra = descriptions()
    out["descriptions"] = {level: {"n": len(extra), "flagged": [t for t in extra if m.check_prompt(t, level).flagged]}
                           for level in ("auto", "low")}  # type: ignore[arg-type]  # fmt: skip
    for name, label in SETS.items():
        rows = _rows(name)
        result: dict[str, Any] = {"label": label, "counts": dict(Counter(r["category"] for r in rows))}
        for level in ("auto", "low"):
            tally: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # category -> [hits, n]
            for r in rows:
                t0 = time.perf_counter()
                flagged = m.check_prompt(r["text"], level).categories  # type: ignore[arg-type]
                timings.append(time.perf_counter() - t0)
                cat = r["category"]
                tally[cat][1] += 1
                if cat in ("benign", "profanity"):
                    tally[cat][0] += bool(flagged)
                else:
                    tally[cat][0] += cat in flagged
                    if r["severity"] == "severe":
                        tally[f"{cat} (severe)"][1] += 1
                        tally[f"{cat} (severe)"][0] += cat in flagged
            result[level] = {k: {"hits": v[0], "n": v[1], "rate": v[0] / v[1]} for k, v in tally.items()}
        out["sets"][name] = result
    ms = sorted(t * 1000 for t in timings)
    out["prompt_ms"] = {"p50": pct(ms, 50), "p99": pct(ms, 99), "max": ms[-1], "calls": len(ms)}
    return out


def text_table(res: dict[str, Any]) -> None:
    for name, r in res["sets"].items():
        print(f"\n{name} ({r['label']}): {r['counts']}")
        print("| category | auto | low |\n|---|---|---|")
        for key in ["benign", "profanity", *CATEGORIES, *(f"{c} (severe)" for c in CATEGORIES)]:
            if key in r["auto"]:
                a, lo = r["auto"][key], r["low"][key]
                print(f"| {key} | {a['hits']}/{a['n']} ({a['rate']:.1%}) | {lo['hits']}/{lo['n']} ({lo['rate']:.1%}) |")
    for level, d in res["descriptions"].items():
        print(f"benign descriptions, {level}: {len(d['flagged'])}/{d['n']} flagged {d['flagged'][:5]}")
    p = res["prompt_ms"]
    print(
        f"\nprompt check: p50 {p['p50']:.3f} ms, p99 {p['p99']:.3f} ms, max {p['max']:.3f} ms over {p['calls']} calls"
    )


# -- images ----------------------------------------------------------------------------------------------------


def package_photos() -> dict[str, Any]:
    """Benign photos bundled in scientific Python packages (no download)."""
    import numpy as np
    from PIL import Image

    photos: dict[str, Any] = {}
    try:
        from sklearn.datasets import load_sample_images

        for fname, arr in zip(load_sample_images().filenames, load_sample_images().images, strict=True):
            photos[f"sklearn/{Path(fname).name}"] = Image.fromarray(arr)
    except ImportError:
        pass
    try:
        import skimage.data as sd

        for name in ("astronaut", "brick", "camera", "cat", "checkerboard", "chelsea", "clock", "coffee", "coins",
                     "colorwheel", "grass", "gravel", "horse", "hubble_deep_field", "immunohistochemistry", "logo",
                     "microaneurysms", "moon", "page", "retina", "rocket", "text", "motorcycle_left", "skin",
                     "lily", "eagle", "shepp_logan_phantom", "binary_blobs"):  # fmt: skip
            try:
                arr = getattr(sd, name)()
            except Exception:  # not bundled in this version (fetched on demand): skipped, never downloaded
                continue
            arr = np.asarray(arr).astype(np.float64) if np.asarray(arr).dtype == bool else np.asarray(arr)
            if arr.dtype != np.uint8:
                arr = (255 * (arr.astype(float) - arr.min()) / max(1e-9, float(arr.max() - arr.min()))).astype(np.uint8)
            photos[f"skimage/{name}"] = Image.fromarray(arr)
    except ImportError:
        pass
    try:
        import matplotlib

        sample = Path(matplotlib.get_data_path()) / "sample_data"
        for path in sorted(sample.glob("*")):
            if path.suffix.lower() in (".png", ".jpg", ".jpeg"):
                with Image.open(path) as im:
                    photos[f"matplotlib/{path.name}"] = im.convert("RGBA").copy()
    except ImportError:
        pass
    return photos


def generated_images(quick: bool) -> dict[str, Any]:
    """The embedded model drawing every benign prompt of the held-out sets (256², low; 1024² for a few)."""
    from imageforge.engines.embedded.engine import EmbeddedEngine
    from imageforge.params import GenerationParams

    prompts = [r["text"] for name in ("test.jsonl", "holdout.jsonl") for r in _rows(name) if r["category"] == "benign"]
    prompts += [r["text"] for name in ("test.jsonl", "holdout.jsonl") for r in _rows(name)
                if r["category"] == "profanity"]  # fmt: skip
    if quick:
        prompts = prompts[:24]
    engine = EmbeddedEngine()
    engine.load()
    steps = engine.capabilities.quality_steps["low"]
    images: dict[str, Any] = {}
    try:
        for start in range(0, len(prompts), 8):
            chunk = prompts[start : start + 8]
            params = [GenerationParams(p, 256, 256, steps, seed=start + i) for i, p in enumerate(chunk)]
            for p, r in zip(chunk, engine.generate(params), strict=True):
                images[f"embedded/256/{p}"] = r.images[0]
        for i, p in enumerate(prompts[:8]):
            [r] = engine.generate([GenerationParams(p, 1024, 1024, steps, seed=1000 + i, background="transparent")])
            images[f"embedded/1024-transparent/{p}"] = r.images[0]
    finally:
        engine.close()
    return images


def images_part(quick: bool) -> dict[str, Any]:
    from PIL import Image

    from imageforge.moderation.images import NsfwClassifier

    out: dict[str, Any] = {}
    clf = NsfwClassifier()
    t0 = time.perf_counter()
    clf.load()
    out["load_s"] = time.perf_counter() - t0
    for group, images in (("package photos", package_photos()), ("generated", generated_images(quick))):
        scores = {name: clf.score(im) for name, im in images.items()}
        top = sorted(scores.items(), key=lambda kv: -kv[1])[:5]
        out[group] = {
            "n": len(scores),
            "flagged_auto": [k for k, v in scores.items() if v >= 0.5],
            "flagged_low": [k for k, v in scores.items() if v >= 0.8],
            "max": top[0][1] if top else None,
            "median": statistics.median(scores.values()) if scores else None,
            "top": [(k[:70], round(v, 4)) for k, v in top],
            "names": sorted({k.rsplit("/", 1)[0] if group == "generated" else k for k in scores}),
        }
    # Per-call latency by size and threads (preprocessing included; a random RGB image).
    import numpy as np

    rng = np.random.default_rng(0)
    lat: dict[str, float] = {}
    for threads in (1, 2):
        c = NsfwClassifier(threads=threads)
        c.load()
        for px in (256, 1024, 1536):
            im = Image.fromarray(rng.integers(0, 255, (px, px, 3), dtype=np.uint8))
            runs = []
            for _ in range(5 if quick else 20):
                t0 = time.perf_counter()
                c.score(im)
                runs.append(time.perf_counter() - t0)
            lat[f"{px}px/{threads}t"] = statistics.median(runs) * 1000
    out["latency_ms"] = lat
    return out


def images_table(res: dict[str, Any]) -> None:
    print(f"\nimage classifier load {res['load_s']:.2f} s")
    for group in ("package photos", "generated"):
        g = res[group]
        print(f"{group}: n={g['n']}, flagged at auto {len(g['flagged_auto'])}, at low {len(g['flagged_low'])}, "
              f"max {g['max']:.4f}, median {g['median']:.5f}; top {g['top']}")  # fmt: skip
    print("latency (median ms):", {k: round(v, 1) for k, v in res["latency_ms"].items()})


# -- serving ---------------------------------------------------------------------------------------------------


def _sums(server: Server) -> tuple[float, float]:
    return (server.metric("imageforge_moderation_seconds_sum"), server.metric("imageforge_request_seconds_sum"))


async def _scenario(server: Server, payload: dict[str, Any], repeats: int) -> dict[str, float]:
    url = f"{server.base}/v1/images/generations"
    mod0, req0 = _sums(server)
    walls = []
    async with httpx.AsyncClient(timeout=600) as client:
        for i in range(repeats):
            t0 = time.perf_counter()
            r = await client.post(url, json={**payload, "prompt": f"{payload['prompt']} {i}"})
            if payload.get("stream"):
                assert "image_generation.completed" in r.text, r.text[:300]
            else:
                assert r.status_code == 200, r.text[:300]
            walls.append(time.perf_counter() - t0)
    mod1, req1 = _sums(server)
    return {"moderation_s": mod1 - mod0, "request_s": req1 - req0, "share": (mod1 - mod0) / (req1 - req0),
            "p50_s": statistics.median(walls)}  # fmt: skip


VARIANTS: dict[str, tuple[str, ...]] = {
    "on": (),  # the defaults: the image classifier on 2 threads
    "on, 1 thread": ("--moderation-threads", "1"),
    "off": ("--no-moderation-input", "--no-moderation-output"),
}


def serving_part(work: Path, quick: bool, engine: str) -> dict[str, Any]:
    repeats = 3 if quick else 10
    results: dict[str, Any] = {}
    for setup in setups(engine, work):
        scenarios: list[tuple[str, dict[str, Any]]] = []
        base = {"model": setup.model, "prompt": "a red apple", "size": setup.size}
        qualities = ("low", "medium", "high") if setup.name == "embedded" else ("low", "high")
        for q in qualities:
            scenarios.append((f"{q}", {**base, "quality": q}))
        scenarios.append(("medium, n=4", {**base, "quality": "medium", "n": 4}))
        scenarios.append(("medium, stream, 3 partials", {**base, "quality": "medium", "stream": True,
                                                          "partial_images": 3}))  # fmt: skip
        for moderation, flags in VARIANTS.items():
            server = Server(work, setup, *flags)
            try:
                for name, payload in scenarios:
                    asyncio.run(_scenario(server, payload, 1))  # warm
                    results[f"{setup.name} | {name} | moderation {moderation}"] = asyncio.run(
                        _scenario(server, payload, repeats)
                    )
            finally:
                server.stop()
    return results


def serving_table(res: dict[str, Any]) -> None:
    print("\n| engine | request | moderation share of request time, 2 / 1 threads | p50 on (2 threads) | p50 off |"
          "\n|---|---|---|---|---|")  # fmt: skip
    for key, on in res.items():
        if not key.endswith("moderation on"):
            continue
        one = res[key.replace("moderation on", "moderation on, 1 thread")]
        off = res[key.replace("moderation on", "moderation off")]
        engine, name, _ = key.split(" | ")
        print(f"| {engine} | {name} | {on['share']:.2%} / {one['share']:.2%} | {on['p50_s']:.3f} s "
              f"| {off['p50_s']:.3f} s |")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["text", "images", "serving", "all"], default="all")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--engine", choices=["embedded", "sd-turbo-small", "both"], default="both", help="serving part")
    args = ap.parse_args()
    results: dict[str, Any] = {"machine": platform.platform(), "python": platform.python_version(),
                               "date": time.strftime("%Y-%m-%d")}  # fmt: skip
    if args.part in ("text", "all"):
        results["text"] = text_part()
        text_table(results["text"])
    if args.part in ("images", "all"):
        results["images"] = images_part(args.quick)
        images_table(results["images"])
    if args.part in ("serving", "all"):
        with tempfile.TemporaryDirectory() as tmp:
            results["serving"] = serving_part(Path(tmp), args.quick, args.engine)
        serving_table(results["serving"])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
