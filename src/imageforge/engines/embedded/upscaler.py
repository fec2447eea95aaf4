"""A learned 4x upscaler for the embedded model's art: 32 px premultiplied RGBA in, 128 px out (issue 5, "crisp
at every API size").

The denoiser draws at 32 px; resampling that straight to 1024 px gives soft, blurry edges. This small residual
network (EDSR-style: conv, residual blocks, sub-pixel convolution; Lim et al. 2017, Shi et al. 2016) was trained
on pairs of the same emoji rendered from their vector sources at 32 and 128 px (``training/train_upscaler.py``),
with blur and noise on the inputs so it also sharpens the model's softer output. It predicts the difference from
bicubic upsampling. The engine resamples its 128 px output to the requested size.

Imported only by the engine's ``load()``: it needs torch at import time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Upscaler", "UpscalerConfig", "load_upscaler"]


@dataclass(frozen=True)
class UpscalerConfig:
    channels: int = 4
    width: int = 32
    blocks: int = 4
    scale: int = 4

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Residual(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(width, width, 3, padding=1)
        self.c2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = x + self.c2(F.relu(self.c1(x)))
        return out


class Upscaler(nn.Module):
    def __init__(self, cfg: UpscalerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.head = nn.Conv2d(cfg.channels, cfg.width, 3, padding=1)
        self.body = nn.Sequential(*[_Residual(cfg.width) for _ in range(cfg.blocks)])
        self.tail = nn.Conv2d(cfg.width, cfg.channels * cfg.scale**2, 3, padding=1)
        self.shuffle = nn.PixelShuffle(cfg.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 4, S, S) premultiplied RGBA in [0, 1] -> (B, 4, scale*S, scale*S), still premultiplied."""
        base = F.interpolate(x, scale_factor=self.cfg.scale, mode="bicubic", align_corners=False)
        h = self.head(x)
        out = (base + self.shuffle(self.tail(h + self.body(h)))).clamp(0.0, 1.0)
        alpha = out[:, 3:4]
        return torch.cat([torch.minimum(out[:, :3], alpha), alpha], dim=1)  # premultiplied: colour <= alpha


def load_upscaler(weights_dir: Path, config: dict[str, Any]) -> Upscaler:
    from safetensors.torch import load_file

    model = Upscaler(UpscalerConfig(**config))
    state = load_file(str(weights_dir / "upscaler" / "upscaler.safetensors"))
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return model.eval().requires_grad_(False)
