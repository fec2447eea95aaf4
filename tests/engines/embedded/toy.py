"""A random-weight embedded UNet of the real architecture at toy width, and text embeddings for it: what the
sampler tests run on (no shipped weights)."""

from __future__ import annotations

import torch

from imageforge.engines.embedded.config import EmbeddedModelConfig
from imageforge.engines.embedded.network import build_unet
from imageforge.engines.embedded.sampler import Sampler
from imageforge.engines.embedded.text import TextEmbedding

__all__ = ["CFG", "embedding", "toy_sampler"]

CFG = EmbeddedModelConfig(
    image_size=16,
    block_out_channels=(8, 16, 16),
    norm_num_groups=4,
    attention_head_dim=4,
    text_dim=12,
    max_tokens=5,
)


def embedding(rows: int, seed: int) -> TextEmbedding:
    g = torch.Generator().manual_seed(seed)
    return TextEmbedding(
        tokens=torch.randn(rows, CFG.max_tokens, CFG.text_dim, generator=g),
        mask=torch.ones(rows, CFG.max_tokens, dtype=torch.long),
        pooled=torch.randn(rows, CFG.text_dim, generator=g),
    )


def toy_sampler() -> Sampler:
    torch.manual_seed(0)
    return Sampler(build_unet(CFG).eval(), CFG)
