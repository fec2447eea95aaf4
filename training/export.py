"""Export a training checkpoint's EMA weights into the package (fp16 safetensors + ``model.json``), and optionally
a slim resumable checkpoint for the repository.

    python training/export.py --run training/runs/v1                      # ship the EMA weights
    python training/export.py --run training/runs/v1 --resume-out training/checkpoints/v1.pt

``model.json`` records the configuration and the provenance (dataset hash, steps, compute time, final loss) that
BENCHMARKS.md quotes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from imageforge.engines.embedded.config import WEIGHTS_DIR, EmbeddedModelConfig


def final_loss(run: Path, window: int = 10) -> float | None:
    log = run / "log.jsonl"
    if not log.exists():
        return None
    recs = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    tail = recs[-window:]
    return round(sum(r["loss"] for r in tail) / len(tail), 5) if tail else None


def _phases(run: Path) -> list[dict[str, object]]:
    """Each (re)start of the run: the step it started from and the arguments that changed from the first."""
    path = run / "history.jsonl"
    if not path.exists():
        return []
    starts = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    first = starts[0]["args"]
    keep = (
        "total_steps",
        "data",
        "colour_weight",
        "colour_swap",
        "lr",
        "batch",
        "init_from",
        "references",
        "recolour",
        "ref_recolour",
    )
    return [
        {
            "from_step": st["from_step"],
            **{k: st["args"].get(k) for k in keep if k == "total_steps" or st["args"].get(k) != first.get(k)},
        }
        for st in starts
    ]


def write_references(data: Path, dest: Path) -> None:
    """The retrieval index (engines/embedded/references.py): every caption's pooled vector from the shipped text
    encoder, and the 32 px images of every concept."""
    import numpy as np

    from imageforge.engines.embedded.references import write_index
    from imageforge.engines.embedded.text import TextEncoder

    d = np.load(data)
    meta = json.loads(bytes(d["meta_json"]))
    offsets = d["caption_offsets"]
    caption_concept = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    encoder = TextEncoder(WEIGHTS_DIR, 32)
    captions = meta["captions"]
    vectors = torch.cat([encoder.encode(captions[i : i + 256]).pooled for i in range(0, len(captions), 256)])
    write_index(dest, vectors, caption_concept, d["images_32"], d["concept"], list(meta["labels"]))


def export(run: Path, dest: Path = WEIGHTS_DIR, resume_out: Path | None = None, data: Path | None = None) -> dict:
    state = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    if dest.resolve() != WEIGHTS_DIR.resolve():
        # A complete weights directory elsewhere (for checks): the text encoder is the package's.
        for part in ("text_encoder", "tokenizer", "upscaler"):  # trained separately; kept as they are
            if (WEIGHTS_DIR / part).is_dir():
                shutil.copytree(WEIGHTS_DIR / part, dest / part, dirs_exist_ok=True)
    cfg = EmbeddedModelConfig.from_dict(state["config"])
    (dest / "unet").mkdir(parents=True, exist_ok=True)
    weights = {k: v.half().contiguous() for k, v in state["ema"].items()}
    path = dest / "unet" / "diffusion_pytorch_model.safetensors"
    save_file(weights, str(path), metadata={"format": "pt"})
    if cfg.reference_images:
        run_args = json.loads((run / "config.json").read_text()).get("args", {})
        write_references(data or Path(run_args.get("data", "data/emoji.npz")), dest)
    previous = json.loads((WEIGHTS_DIR / "model.json").read_text())
    meta = {
        "name": "imageforge-emoji",
        "config": json.loads(cfg.to_json()),
        "training": {
            "script": "training/train.py",
            "steps": state["step"],
            "trained_minutes": round(state["trained_seconds"] / 60, 1),
            "final_loss": final_loss(run),
            "dataset_sha256": state.get("dataset_sha256"),
            "run_args": json.loads((run / "config.json").read_text()).get("args", {}),
            "phases": _phases(run),
        },
        "files_sha256": {
            p.relative_to(dest).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(dest.glob("*/*"))
            if p.is_file()
        },
    }
    init_from = meta["training"]["run_args"].get("init_from")  # type: ignore[index]
    if init_from not in (None, "None"):
        # Continued from shipped weights: keep where those came from (their own run, steps and phases).
        earlier = previous["training"]
        if earlier.get("run_args", {}).get("run") == meta["training"]["run_args"].get("run"):  # type: ignore[index]
            earlier = earlier.get("continued_from")  # re-exporting the same run: keep what it continued
        meta["training"]["continued_from"] = earlier  # type: ignore[index]
    upscaler = previous.get("upscaler")
    if upscaler is not None:  # the upscaler's own provenance (training/train_upscaler.py)
        meta["upscaler"] = upscaler
    (dest / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    if resume_out is not None:
        # Optimiser moments in bf16 halve the file; resuming from them is indistinguishable in practice.
        slim = dict(state)
        slim["opt"] = {
            "state": {
                k: {n: (t.bfloat16() if t.is_floating_point() and t.dim() > 0 else t) for n, t in v.items()}
                for k, v in state["opt"]["state"].items()
            },
            "param_groups": state["opt"]["param_groups"],
        }
        resume_out.parent.mkdir(parents=True, exist_ok=True)
        torch.save(slim, resume_out)
    return meta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--dest", type=Path, default=WEIGHTS_DIR)
    ap.add_argument("--resume-out", type=Path, default=None)
    ap.add_argument("--data", type=Path, default=None, help="data set for the retrieval index (default: the run's)")
    args = ap.parse_args()
    print(json.dumps(export(args.run, args.dest, args.resume_out, args.data)["training"], indent=2))


if __name__ == "__main__":
    main()
