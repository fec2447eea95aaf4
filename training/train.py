"""Train the embedded model (pixel-space RGBA diffusion UNet conditioned on MiniLM), resumably, on CPU or GPU.

Recipe (why: ``../shared/reference/embedded-model.md`` and training/README.md):
  * data: ``build_dataset.py`` output, premultiplied RGBA scaled to [-1, 1]; one caption drawn at random per
    sample from the concept's caption list; 10 % of captions replaced by "" for classifier-free guidance;
  * objective: v-prediction on the cosine (``squaredcos_cap_v2``) schedule, min-SNR-5 loss weighting
    (Hang et al. 2023) so the low-noise steps do not dominate the gradient;
  * AdamW, linear warm-up then cosine decay to 10 % over ``--total-steps``; EMA of the weights (what ships).

A checkpoint (weights, EMA, optimiser, step, RNG) is written atomically every ``--ckpt-minutes`` to
``RUN/last.pt``, and the run resumes from it when started again with the same ``--run``. Logs go to
``RUN/log.jsonl``.

A later session without that run directory continues from the *shipped* weights instead
(``--init-from src/imageforge/engines/embedded/weights``): the EMA weights become both the weights and the EMA,
the step count and compute time come from ``model.json``, and the optimiser restarts with a fresh warm-up
(its moments are not committed: they would double the repository's size for every weight update).

    python training/train.py --data data/emoji.npz --run training/runs/v1 --total-steps 4500
    python training/train.py --run training/runs/v2 --init-from src/imageforge/engines/embedded/weights \
        --total-steps 9000
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import random
import signal
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from colour_swap import HUES, hue_word, rotate_hue, swapped_captions  # training/ is the script's directory
from imageforge.engines.embedded.colours import RECOLOURS, recolour, recolour_caption, saturated_share
from imageforge.engines.embedded.config import WEIGHTS_DIR, EmbeddedModelConfig
from imageforge.engines.embedded.network import build_unet, noise_schedule
from imageforge.engines.embedded.text import TextEncoder

COLOUR_WORDS = frozenset(
    {"red", "orange", "yellow", "green", "blue", "purple", "brown", "black", "white", "pink", "grey", "gray"}
)
ARCH = EmbeddedModelConfig(
    block_out_channels=(32, 96, 192),
    down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
)
BLANK = -1.0  # a missing reference image: fully transparent (premultiplied RGBA 0 -> -1)


def widen_conv_in(state: dict[str, torch.Tensor], in_channels: int) -> dict[str, torch.Tensor]:
    """Give a text-only UNet's first convolution zero weights for the reference channels, so the widened network
    starts out computing exactly what the shipped one did and learns to use the references from there."""
    w = state["conv_in.weight"]  # (C, in, 3, 3)
    if w.shape[1] < in_channels:
        extra = torch.zeros(w.shape[0], in_channels - w.shape[1], *w.shape[2:], dtype=w.dtype)
        state = {**state, "conv_in.weight": torch.cat([w, extra], dim=1)}
    return state


def pick_references(
    i: int, by_concept: dict[int, list[int]], concept: np.ndarray, k: int, rng: random.Random
) -> list[int]:
    """``k`` images of image ``i``'s concept in *other* art styles (repeated when fewer exist; none -> [])."""
    others = [j for j in by_concept[int(concept[i])] if j != i]
    if not others:
        return []
    rng.shuffle(others)
    return [others[n % len(others)] for n in range(k)]


def encode_captions(captions: list[str], cfg: EmbeddedModelConfig, device: str) -> dict[str, torch.Tensor]:
    """Encode every caption (and the empty caption, last) once; training then indexes these tensors."""
    encoder = TextEncoder(WEIGHTS_DIR, cfg.max_tokens)
    toks, masks, pooled = [], [], []
    texts = [*captions, ""]
    for i in range(0, len(texts), 256):
        e = encoder.encode(texts[i : i + 256])
        toks.append(e.tokens.half())
        masks.append(e.mask.bool())
        pooled.append(e.pooled)
    return {
        "tokens": torch.cat(toks).to(device),  # (C+1, T, D) fp16 to halve memory
        "mask": torch.cat(masks).to(device),  # (C+1, T)
        "pooled": torch.cat(pooled).to(device),  # (C+1, D)
    }


def cached_captions(
    path: Path, captions: list[str], extra: list[str], cfg: EmbeddedModelConfig, device: str
) -> dict[str, torch.Tensor]:
    """The data set's captions, "", then ``extra`` encoded; cached in the run directory (tens of thousands of
    captions take minutes on a CPU), keyed by the texts and the text encoder's weights."""
    key = hashlib.sha256(
        json.dumps([captions, extra]).encode() + (WEIGHTS_DIR / "text_encoder" / "model.safetensors").read_bytes()
    ).hexdigest()
    if path.exists():
        cached = torch.load(path, map_location=device, weights_only=True)
        if cached.get("key") == key:
            return {k: cached[k] for k in ("tokens", "mask", "pooled")}
    emb = encode_captions(captions, cfg, device)
    if extra:
        more = encode_captions(extra, cfg, device)  # ends with its own empty caption, unused
        emb = {k: torch.cat([emb[k], more[k][:-1]]) for k in emb}
    save_atomic({"key": key, **{k: v.cpu() for k, v in emb.items()}}, path)
    return emb


def lr_at(step: int, base: float, warmup: int, total: int, warm_from: int = 0) -> float:
    """Warm-up then cosine decay, both counted from ``warm_from`` (0, or the step a continued model ended at),
    so a continuation gets a whole schedule of its own."""
    step, total = step - warm_from, total - warm_from
    if step < warmup:
        return base * (step + 1) / warmup * _cosine(step, warmup, total)
    return base * _cosine(step, warmup, total)


def _cosine(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def save_atomic(obj: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("data/emoji.npz"))
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--total-steps", type=int, default=15000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--cfg-drop", type=float, default=0.1)
    ap.add_argument("--min-snr", type=float, default=5.0)
    ap.add_argument("--ckpt-minutes", type=float, default=10.0)
    ap.add_argument("--max-minutes", type=float, default=0.0, help="stop (after a checkpoint) after this long")
    ap.add_argument(
        "--stop-at", type=int, default=0, help="stop (after a checkpoint) at this step: replays a recorded phase"
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init-from", type=Path, help="a weights directory (unet/ + model.json) to continue from")
    ap.add_argument(
        "--colour-weight",
        type=float,
        default=1.0,
        help="sampling weight of images whose label names a colour (1 = uniform); binds colour words",
    )
    ap.add_argument(
        "--colour-swap",
        type=float,
        default=0.0,
        help="probability that an image whose label names one hue is recoloured to another hue, caption to match",
    )
    ap.add_argument(
        "--references",
        type=int,
        default=0,
        help="reference images of the concept (other art styles) stacked on the input: retrieval conditioning",
    )
    ap.add_argument(
        "--recolour",
        type=float,
        default=0.0,
        help="probability that a coloured image is redrawn in one of ten colours, caption 'a <colour> <label>'",
    )
    ap.add_argument(
        "--ref-recolour",
        type=float,
        default=0.0,
        help="probability that a recoloured image's references are recoloured to the same colour (as sampling "
        "does for a prompt that names a colour)",
    )
    args = ap.parse_args()
    stop = {"asked": False}
    # SIGTERM: checkpoint at the end of the current step and exit, so a stopped run loses nothing.
    signal.signal(signal.SIGTERM, lambda *_: stop.update(asked=True))

    torch.set_num_threads(args.threads)
    args.run.mkdir(parents=True, exist_ok=True)
    dev = args.device

    # 1. Data: premultiplied RGBA uint8 -> [-1, 1]; caption table per concept.
    data = np.load(args.data)
    meta = json.loads(bytes(data["meta_json"]))
    cfg = dataclasses.replace(ARCH, reference_images=args.references, reference_recolour=args.ref_recolour > 0)
    images = torch.from_numpy(data[f"images_{cfg.image_size}"]).permute(0, 3, 1, 2).contiguous().to(dev)  # (N,4,S,S)
    concept = data["concept"]
    offsets = data["caption_offsets"]
    # Colour swap (colour_swap.py): per swappable image, its hue word; captions for every other hue, encoded once
    # after the data set's own captions (and the empty caption).
    words = [hue_word(meta["labels"][int(c)]) for c in concept]
    extra: list[str] = []
    swap_caps: dict[tuple[int, str], list[int]] = {}  # (concept, target hue) -> caption indices
    base = len(meta["captions"]) + 1
    for c in sorted({int(c) for c, w in zip(concept, words, strict=True) if w}):
        label = meta["labels"][c]
        for target, texts in swapped_captions(label, hue_word(label) or "").items():
            swap_caps[(c, target)] = list(range(base + len(extra), base + len(extra) + len(texts)))
            extra += texts
    # Recolouring (any image with enough coloured pixels, any of the ten colour words): captions encoded once.
    colours = list(RECOLOURS)
    recolourable = (saturated_share(images.float() / 127.5 - 1.0) > 0.3).cpu().numpy() if args.recolour else None
    recolour_caps: dict[tuple[int, str], int] = {}
    if args.recolour:
        for c in sorted({int(c) for c in concept}):
            for colour in colours:
                recolour_caps[(c, colour)] = base + len(extra)
                extra.append(recolour_caption(meta["labels"][c], colour))
        print(f"{int(recolourable.sum())} images can be recoloured")
    by_concept: dict[int, list[int]] = {}
    for i, c in enumerate(concept.tolist()):
        by_concept.setdefault(int(c), []).append(i)
    empty = len(meta["captions"])
    emb = cached_captions(args.run / "captions.pt", meta["captions"], extra, cfg, dev)
    print(f"{sum(w is not None for w in words)} images can be colour-swapped ({len(extra)} extra captions)")
    # Colour-named concepts ("blue heart", "green circle", "red apple") are a small share of the data, and the
    # many uncoloured variants of the same objects teach "hearts are red"; weighting them up binds colour words.
    coloured = np.array([any(w in COLOUR_WORDS for w in meta["labels"][c].split()) for c in concept])
    weights = torch.from_numpy(np.where(coloured, args.colour_weight, 1.0))
    print(f"{int(coloured.sum())} images name a colour; their sampling weight is {args.colour_weight}")

    # 2. Model, EMA, optimiser, schedule.
    torch.manual_seed(args.seed)
    unet = build_unet(cfg).to(dev).train()
    ema = build_unet(cfg).to(dev).eval().requires_grad_(False)
    ema.load_state_dict(unet.state_dict())
    opt = torch.optim.AdamW(unet.parameters(), lr=args.lr, weight_decay=0.01)
    alphas_cumprod = noise_schedule(cfg).to(dev)  # (T,)
    step, trained_seconds = 0, 0.0
    warm_from = 0  # the LR ramps up over --warmup steps from here (0, or the step a shipped model ended at)
    rng = random.Random(args.seed)

    ckpt_path = args.run / "last.pt"
    if not ckpt_path.exists() and args.init_from is not None:
        from safetensors.torch import load_file

        shipped = load_file(str(args.init_from / "unet" / "diffusion_pytorch_model.safetensors"))
        unet.load_state_dict(widen_conv_in({k: v.float() for k, v in shipped.items()}, unet.config.in_channels))
        ema.load_state_dict(unet.state_dict())
        info = json.loads((args.init_from / "model.json").read_text())["training"]
        step, trained_seconds = int(info["steps"]), float(info["trained_minutes"]) * 60
        warm_from = step
        ours = json.loads(args.data.with_suffix(".json").read_text())["dataset_sha256"]
        if info.get("dataset_sha256") not in (None, ours):
            print(f"warning: dataset differs from the one the shipped model was trained on ({ours})")
        print(f"continuing the shipped model from step {step} ({trained_seconds / 60:.1f} min trained)")
    if ckpt_path.exists():
        # weights_only: even our own checkpoints are loaded without executing pickled code.
        state = torch.load(ckpt_path, map_location=dev, weights_only=True)
        unet.load_state_dict(state["unet"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        step, trained_seconds = state["step"], state["trained_seconds"]
        warm_from = state.get("warm_from", 0)
        rng.setstate(state["py_rng"])
        torch.set_rng_state(state["torch_rng"])
        print(f"resumed at step {step} ({trained_seconds / 60:.1f} min trained)")
    with (args.run / "history.jsonl").open("a") as history:  # every (re)start, so export can tell the phases
        history.write(json.dumps({"from_step": step, "args": {k: str(v) for k, v in vars(args).items()}}) + "\n")
    (args.run / "config.json").write_text(
        json.dumps({"model": asdict(cfg), "args": {k: str(v) for k, v in vars(args).items()}}, indent=2)
    )
    print(f"{sum(p.numel() for p in unet.parameters()) / 1e6:.2f}M parameters, {len(images)} images")

    log = (args.run / "log.jsonl").open("a")
    t_start = time.time()
    t_ckpt = time.time()
    t_seg = time.time()
    seg_loss, seg_n = 0.0, 0
    while step < args.total_steps:
        # 3. Batch: images, one random caption each, CFG dropout.
        if args.colour_weight == 1.0:
            idx = torch.randint(0, len(images), (args.batch,))
        else:
            idx = torch.multinomial(weights, args.batch, replacement=True)
        cap, shift, paint, refs, ref_paint = [], [], [], [], []
        for i in idx.tolist():
            c, word, turn, colour = int(concept[i]), words[i], 0.0, None
            drop = rng.random() < args.cfg_drop  # the unguided branch: no caption and no references
            refs.append([] if drop else pick_references(i, by_concept, concept, args.references, rng))
            if recolourable is not None and recolourable[i] and rng.random() < args.recolour:
                colour = rng.choice(colours)
                cap.append(empty if drop else recolour_caps[(c, colour)])
                if not drop and rng.random() < args.ref_recolour:
                    ref_paint.append((len(paint), colour))
            elif word is not None and rng.random() < args.colour_swap:
                target = rng.choice([h for h in HUES if h != word])
                turn = HUES[target] - HUES[word]
                choices = swap_caps[(c, target)]
                cap.append(empty if rng.random() < args.cfg_drop else rng.choice(choices))
            else:
                cap.append(empty if rng.random() < args.cfg_drop else rng.randrange(offsets[c], offsets[c + 1]))
            shift.append(turn)
            paint.append(colour)
        cap_t = torch.tensor(cap, device=dev)
        x0 = images[idx.to(dev)].float() / 127.5 - 1.0  # (B, 4, S, S)
        if any(shift):
            x0 = rotate_hue(x0, torch.tensor(shift, device=dev))
        chosen = [k for k, colour in enumerate(paint) if colour is not None]
        if chosen:
            x0[chosen] = recolour(x0[chosen], [paint[k] for k in chosen])
        # References keep their own colours (shape from them, colour words from the caption), except for a
        # --ref-recolour share of the recoloured targets, whose references are recoloured as sampling does.
        ref_x = torch.full((args.batch, 4 * args.references, cfg.image_size, cfg.image_size), BLANK, device=dev)
        for k, r in enumerate(refs):
            if r:
                ref_x[k] = (images[torch.tensor(r, device=dev)].float() / 127.5 - 1.0).flatten(0, 1)
        for k, colour in ref_paint:
            if refs[k]:
                own = ref_x[k].view(args.references, 4, cfg.image_size, cfg.image_size)
                ref_x[k] = recolour(own, [colour] * args.references).flatten(0, 1)
        tokens = emb["tokens"][cap_t].float()  # (B, T, D)
        mask = emb["mask"][cap_t]  # (B, T)
        pooled = emb["pooled"][cap_t]  # (B, D)

        # 4. Forward diffusion and v-target.
        t = torch.randint(0, cfg.num_train_timesteps, (args.batch,), device=dev)
        a = alphas_cumprod[t].view(-1, 1, 1, 1).sqrt()  # (B,1,1,1)
        s = (1 - alphas_cumprod[t]).view(-1, 1, 1, 1).sqrt()
        noise = torch.randn_like(x0)
        xt = a * x0 + s * noise
        v = a * noise - s * x0
        snr = alphas_cumprod[t] / (1 - alphas_cumprod[t])
        weight = torch.clamp(snr, max=args.min_snr) / (snr + 1)  # min-SNR for v-prediction

        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.lr, args.warmup, args.total_steps, warm_from)
        net_in = torch.cat([xt, ref_x], dim=1) if args.references else xt
        pred = unet(net_in, t, encoder_hidden_states=tokens, encoder_attention_mask=mask, class_labels=pooled).sample
        loss = ((pred - v) ** 2).mean(dim=(1, 2, 3))
        loss = (loss * weight).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), unet.parameters(), strict=True):
                pe.lerp_(pm, 1 - decay)
        step += 1
        seg_loss += loss.item()
        seg_n += 1

        # 5. Log, checkpoint.
        if step % 50 == 0:
            now = time.time()
            rate = seg_n * args.batch / (now - t_seg)
            rec = {
                "step": step,
                "loss": seg_loss / seg_n,
                "img_per_s": round(rate, 1),
                "lr": opt.param_groups[0]["lr"],
                "minutes": round((trained_seconds + now - t_start) / 60, 2),
            }
            log.write(json.dumps(rec) + "\n")
            log.flush()
            seg_loss, seg_n, t_seg = 0.0, 0, now
        done = step >= args.total_steps
        out_of_time = (
            stop["asked"]
            or (args.max_minutes and (time.time() - t_start) / 60 >= args.max_minutes)
            or step == args.stop_at
        )
        if done or out_of_time or time.time() - t_ckpt >= args.ckpt_minutes * 60:
            save_atomic(
                {
                    "unet": unet.state_dict(),
                    "ema": ema.state_dict(),
                    "opt": opt.state_dict(),
                    "step": step,
                    "warm_from": warm_from,
                    "trained_seconds": trained_seconds + time.time() - t_start,
                    "py_rng": rng.getstate(),
                    "torch_rng": torch.get_rng_state(),
                    "config": asdict(cfg),
                    "dataset_sha256": json.loads(args.data.with_suffix(".json").read_text())["dataset_sha256"],
                },
                ckpt_path,
            )
            t_ckpt = time.time()
            if out_of_time:
                break
    print(f"stopped at step {step}")


if __name__ == "__main__":
    main()
