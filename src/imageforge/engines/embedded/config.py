"""The embedded model's configuration: one dataclass, stored next to the weights as ``model.json``.

Training (``training/train.py``) and inference (``engine.py``) both build the network from this, so the two can
never disagree about shapes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["WEIGHTS_DIR", "EmbeddedModelConfig", "load_config"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class EmbeddedModelConfig:
    """Shapes and sampling defaults of the embedded pixel-space diffusion model."""

    # Pixel space, premultiplied RGBA in [-1, 1]: alpha is learned, so transparency comes from the model itself.
    image_size: int = 32
    channels: int = 4
    block_out_channels: tuple[int, ...] = (64, 128, 192)
    layers_per_block: int = 1
    down_block_types: tuple[str, ...] = ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D")
    up_block_types: tuple[str, ...] = ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D")
    attention_head_dim: int = 8
    norm_num_groups: int = 16
    # Text conditioning: MiniLM token states (cross-attention) + the pooled sentence vector (added to the time
    # embedding through diffusers' "projection" class embedding).
    text_dim: int = 384
    max_tokens: int = 32
    # Retrieval-augmented conditioning (issue 5): the denoiser also sees this many 32 px reference images of the
    # prompt's nearest concept (references.py), stacked on its input channels. 0 = text only (weights before it).
    reference_images: int = 0
    # Whether a prompt that names one colour gets its references recoloured to it (colours.py) before the
    # denoiser sees them, as the model was trained (train.py --ref-recolour): the shape comes from the concept,
    # the colour from the words, both already in the references. False for weights trained without it.
    reference_recolour: bool = False
    # Text-to-image with references starts from their (recoloured) mean noised to this share of the schedule
    # instead of pure noise (1.0): the layout comes from the concept, the drawing from the denoiser. Chosen by
    # measurement (BENCHMARKS.md, "Embedded model quality").
    reference_start: float = 0.85
    # Diffusion process.
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: str = "v_prediction"
    # Sampling defaults (DPM-Solver++ 2M); the quality table is documented in docs/cli.md.
    guidance_scale: float = 3.0
    quality_steps: dict[str, int] = field(default_factory=lambda: {"low": 10, "medium": 20, "high": 30})

    def unet_kwargs(self) -> dict[str, Any]:
        """Arguments for ``diffusers.UNet2DConditionModel``."""
        return {
            "sample_size": self.image_size,
            "in_channels": self.channels * (1 + self.reference_images),
            "out_channels": self.channels,
            "block_out_channels": tuple(self.block_out_channels),
            "layers_per_block": self.layers_per_block,
            "down_block_types": tuple(self.down_block_types),
            "up_block_types": tuple(self.up_block_types),
            "mid_block_type": "UNetMidBlock2DCrossAttn",
            "attention_head_dim": self.attention_head_dim,
            "norm_num_groups": self.norm_num_groups,
            "cross_attention_dim": self.text_dim,
            "class_embed_type": "projection",
            "projection_class_embeddings_input_dim": self.text_dim,
        }

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmbeddedModelConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("block_out_channels", "down_block_types", "up_block_types"):
            if key in known:
                known[key] = tuple(known[key])
        return cls(**known)


def load_config(weights_dir: Path = WEIGHTS_DIR) -> EmbeddedModelConfig:
    data = json.loads((weights_dir / "model.json").read_text())
    return EmbeddedModelConfig.from_dict(data["config"])
