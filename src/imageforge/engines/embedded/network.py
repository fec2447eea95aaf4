"""The embedded model's denoiser (a diffusers ``UNet2DConditionModel``) and its noise schedule."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from imageforge.engines.embedded.config import EmbeddedModelConfig

if TYPE_CHECKING:
    import torch

__all__ = ["build_unet", "load_unet", "make_scheduler", "noise_schedule"]


def build_unet(cfg: EmbeddedModelConfig) -> Any:
    """A randomly initialised UNet of the configured shape (training, and tests that need no trained weights)."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**cfg.unet_kwargs())


def load_unet(cfg: EmbeddedModelConfig, weights_dir: Path) -> Any:
    """The shipped UNet: fp16 safetensors on disk, fp32 in memory (CPU fp16/bf16 kernels are slower here)."""
    from safetensors.torch import load_file

    unet = build_unet(cfg)
    state = load_file(str(weights_dir / "unet" / "diffusion_pytorch_model.safetensors"))
    unet.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return unet.eval().requires_grad_(False)


def _scheduler_config(cfg: EmbeddedModelConfig) -> dict[str, Any]:
    return {
        "num_train_timesteps": cfg.num_train_timesteps,
        "beta_schedule": cfg.beta_schedule,
        "prediction_type": cfg.prediction_type,
    }


def noise_schedule(cfg: EmbeddedModelConfig) -> torch.Tensor:
    """``alphas_cumprod`` (T,) of the training schedule, taken from diffusers so sampling matches exactly."""
    from diffusers import DDPMScheduler

    alphas: torch.Tensor = DDPMScheduler(**_scheduler_config(cfg)).alphas_cumprod.clone()
    return alphas


def make_scheduler(cfg: EmbeddedModelConfig) -> Any:
    """A fresh DPM-Solver++ (2M) scheduler for one sampling run (schedulers carry per-run state)."""
    from diffusers import DPMSolverMultistepScheduler

    return DPMSolverMultistepScheduler(
        **_scheduler_config(cfg),
        algorithm_type="dpmsolver++",
        solver_order=2,
        # Few-step sampling on a cosine schedule: "trailing" spacing reaches t = T-1 and lower_order_final keeps
        # the last steps stable (diffusers docs, DPMSolverMultistepScheduler).
        timestep_spacing="trailing",
        lower_order_final=True,
    )
