"""Train the embedded model's 4x upscaler (``engines/embedded/upscaler.py``), resumably, and export it.

Data: the emoji renders at 32 and 128 px from the same vector sources
(``python training/build_dataset.py --out data/emoji_sr.npz --sizes 32 128``), premultiplied RGBA.
Inputs are degraded the way the denoiser's output differs from a clean render: a random Gaussian blur
(sigma 0-0.8 px) and a little noise, so the network learns to sharpen soft art, not only to enlarge crisp art.
Random flips and quarter turns (the task has no orientation). Loss: L1 on pixels plus L1 on image gradients
(edges are what it is for). 5 % of the images (a fixed sample) are held out; the script reports their PSNR
against bicubic upsampling.

    python training/train_upscaler.py --data data/emoji_sr.npz --run training/runs/upscaler --epochs 30
    python training/train_upscaler.py --run training/runs/upscaler --export   # into the shipped weights
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from imageforge.engines.embedded.config import WEIGHTS_DIR
from imageforge.engines.embedded.upscaler import Upscaler, UpscalerConfig

CONFIG = UpscalerConfig()


def load(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    d = np.load(path)
    lo = torch.from_numpy(d["images_32"]).permute(0, 3, 1, 2).float() / 255.0  # (N, 4, 32, 32)
    hi = torch.from_numpy(d["images_128"]).permute(0, 3, 1, 2).float() / 255.0  # (N, 4, 128, 128)
    return lo, hi


def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    k = max(1, n // 20)
    return order[k:], order[:k]


def degrade(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    sigma = float(torch.empty(1).uniform_(0.0, 0.8, generator=gen))
    if sigma > 0.1:
        r = torch.arange(-2, 3, dtype=torch.float32)
        k = torch.exp(-(r**2) / (2 * sigma**2))
        k = (k / k.sum()).view(1, 1, 1, 5).repeat(4, 1, 1, 1)
        x = F.conv2d(F.pad(x, (2, 2, 0, 0), mode="replicate"), k, groups=4)
        x = F.conv2d(F.pad(x, (0, 0, 2, 2), mode="replicate"), k.transpose(2, 3), groups=4)
    noise = float(torch.empty(1).uniform_(0.0, 0.02, generator=gen))
    x = (x + noise * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    return torch.cat([torch.minimum(x[:, :3], x[:, 3:4]), x[:, 3:4]], dim=1)


def orient(lo: torch.Tensor, hi: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    k = int(torch.randint(0, 4, (1,), generator=gen))
    lo, hi = torch.rot90(lo, k, (2, 3)), torch.rot90(hi, k, (2, 3))
    if bool(torch.randint(0, 2, (1,), generator=gen)):
        lo, hi = lo.flip(3), hi.flip(3)
    return lo, hi


def grad_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    dx = (a[..., :, 1:] - a[..., :, :-1]) - (b[..., :, 1:] - b[..., :, :-1])
    dy = (a[..., 1:, :] - a[..., :-1, :]) - (b[..., 1:, :] - b[..., :-1, :])
    return dx.abs().mean() + dy.abs().mean()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / F.mse_loss(a, b)))


@torch.no_grad()
def validate(model: Upscaler, lo: torch.Tensor, hi: torch.Tensor) -> dict[str, float]:
    model.eval()
    out = torch.cat([model(lo[i : i + 64]) for i in range(0, len(lo), 64)])
    bicubic = F.interpolate(lo, scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1)
    model.train()
    return {"psnr": psnr(out, hi), "psnr_bicubic": psnr(bicubic, hi)}


def train(args: argparse.Namespace) -> None:
    run: Path = args.run
    run.mkdir(parents=True, exist_ok=True)
    lo, hi = load(args.data)
    tr, va = split(len(lo))
    model = Upscaler(CONFIG)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    steps_per_epoch = math.ceil(len(tr) / args.batch)
    total = args.epochs * steps_per_epoch
    state = {"epoch": 0, "step": 0, "seconds": 0.0}
    ckpt = run / "last.pt"
    if ckpt.exists():
        saved = torch.load(ckpt, weights_only=True)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["opt"])
        state = saved["state"]
        print(f"resumed at epoch {state['epoch']}", flush=True)
    gen = torch.Generator().manual_seed(1000 + int(state["epoch"]))
    while state["epoch"] < args.epochs:
        t0 = time.time()
        order = tr[torch.randperm(len(tr), generator=gen)]
        for i in range(0, len(order), args.batch):
            idx = order[i : i + args.batch]
            x, y = orient(lo[idx], hi[idx], gen)
            lr = args.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, state["step"] / total)))
            for g in opt.param_groups:
                g["lr"] = lr
            out = model(degrade(x, gen))
            loss = F.l1_loss(out, y) + 0.5 * grad_l1(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            state["step"] += 1
        state["epoch"] += 1
        state["seconds"] += time.time() - t0
        metrics = validate(model, lo[va], hi[va])
        line = {"epoch": state["epoch"], "loss": round(loss.item(), 5), **metrics, "seconds": round(state["seconds"])}
        print(json.dumps(line), flush=True)
        with open(run / "log.jsonl", "a") as f:
            f.write(json.dumps(line) + "\n")
        tmp = run / "last.pt.tmp"
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "state": state, "metrics": metrics}, tmp)
        os.replace(tmp, ckpt)


def export(run: Path) -> None:
    saved = torch.load(run / "last.pt", weights_only=True)
    out = WEIGHTS_DIR / "upscaler"
    out.mkdir(exist_ok=True)
    state = {k: v.half().contiguous() for k, v in saved["model"].items()}  # fp16 on disk, fp32 in memory
    save_file(state, out / "upscaler.safetensors")
    meta_path = WEIGHTS_DIR / "model.json"
    meta = json.loads(meta_path.read_text())
    meta["upscaler"] = {
        "config": CONFIG.to_dict(),
        "training": {
            "script": "training/train_upscaler.py",
            "data": "training/build_dataset.py --sizes 32 128",
            "epochs": saved["state"]["epoch"],
            "cpu_seconds": round(saved["state"]["seconds"]),
            "held_out_psnr": round(saved["metrics"]["psnr"], 2),
            "held_out_psnr_bicubic": round(saved["metrics"]["psnr_bicubic"], 2),
        },
    }
    meta.setdefault("files_sha256", {})["upscaler/upscaler.safetensors"] = hashlib.sha256(
        (out / "upscaler.safetensors").read_bytes()
    ).hexdigest()
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta["upscaler"], indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("data/emoji_sr.npz"))
    ap.add_argument("--run", type=Path, default=Path("training/runs/upscaler"))
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--export", action="store_true", help="write the run's weights into the shipped model")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.export:
        export(args.run)
    else:
        train(args)


if __name__ == "__main__":
    main()
