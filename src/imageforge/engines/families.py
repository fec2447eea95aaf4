"""Model families as data: how each published checkpoint family is run with diffusers.

One frozen row per family, holding what its model card and diffusers' pipeline docs recommend: the pipeline class,
steps per quality, guidance, a scheduler override where the family needs one, native size, a per-call batch, the
OpenAI API profile its own id answers with, and the TAESD-family preview decoder matching its latent space.
:func:`Family.engine_options` turns a row into ``DiffusersEngine`` options; ``engines/detection.py`` picks the row
from a checkpoint's files. Nothing here imports torch or diffusers.

Sources of the values (model cards unless said otherwise): SD 1.5 and 2.x (50 steps, guidance 7.5; 2.x base with
Euler, 2.1 768-v with DPM-Solver++), SD-Turbo and SDXL-Turbo (1-4 steps, guidance 0, trailing timesteps), SDXL
(diffusers' default guidance 5.0), SDXL-Lightning (Euler, trailing timesteps, guidance 0), LCM-LoRA SDXL
(LCMScheduler, 4-8 steps, guidance 1-2), SD3 medium (28 steps, 7.0), SD3.5 large (28 steps, 3.5), SD3.5 medium
(40 steps, 4.5), SD3.5 large turbo (4 steps, guidance 0), FLUX.1 dev (50 steps, guidance 3.5, 512 T5 tokens),
FLUX.1 schnell (4 steps, guidance 0, 256 T5 tokens), PixArt-Sigma and Sana (20 steps, guidance 4.5), SDXS-512
(one step at t=999, guidance 0). ``max_batch`` is a conservative images-per-call for a 24 GB GPU at native size in
half precision (an estimate, not a measurement); ``--max-batch`` lowers it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["FAMILIES", "GENERIC", "Family", "QualitySteps", "get_family"]

# TAESD-family preview decoders (https://github.com/madebyollin/taesd), one per latent space.
_TAESD = "madebyollin/taesd"  # SD 1.x / 2.x
_TAESDXL = "madebyollin/taesdxl"  # SDXL (and PixArt-Sigma, which uses the SDXL VAE)
_TAESD3 = "madebyollin/taesd3"  # SD3 / SD3.5 (16 latent channels)
_TAEF1 = "madebyollin/taef1"  # FLUX.1
_TRAILING = (("timestep_spacing", "trailing"),)
_NO_BINNING = (("use_resolution_binning", False),)  # distilled models start at t=999 (arXiv:2305.08891, table 2)


@dataclass(frozen=True)
class QualitySteps:
    low: int
    medium: int
    high: int

    def as_dict(self) -> dict[str, int]:
        return {"low": self.low, "medium": self.medium, "high": self.high}


@dataclass(frozen=True)
class Family:
    name: str
    description: str
    pipeline: str | None  # diffusers class name; None = AutoPipelineForText2Image decides
    steps: QualitySteps
    guidance_scale: float | None  # None = the pipeline's own default
    native_size: int
    max_batch: int
    profile: str  # the API profile (profiles.py) the model's own id answers with
    preview_vae: str | None  # hub id of a TAESD-family decoder; None = previews use the model's own VAE
    scheduler: str | None = None  # scheduler class to swap in; None = the checkpoint's own class
    scheduler_config: tuple[tuple[str, Any], ...] = ()  # overrides applied to the scheduler's config
    call_options: tuple[tuple[str, Any], ...] = ()  # extra pipeline-call arguments
    examples: tuple[str, ...] = ()  # hub ids of the family (documentation)

    def engine_options(self) -> dict[str, Any]:
        """``DiffusersEngine`` options for this family (the checkpoint itself is added by the caller)."""
        options: dict[str, Any] = {
            "quality_steps": self.steps.as_dict(),
            "native_size": self.native_size,
            "max_batch": self.max_batch,
        }
        if self.pipeline is not None:
            options["pipeline"] = self.pipeline
        if self.guidance_scale is not None:
            options["guidance_scale"] = self.guidance_scale
        if self.scheduler is not None:
            options["scheduler"] = self.scheduler
        if self.scheduler_config:
            options["scheduler_config"] = dict(self.scheduler_config)
        if self.call_options:
            options["call_options"] = dict(self.call_options)
        return options


_SD, _SDXL = "StableDiffusionPipeline", "StableDiffusionXLPipeline"
_SD3, _FLUX = "StableDiffusion3Pipeline", "FluxPipeline"

FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("sd1", "Stable Diffusion 1.x (512 px)", _SD, QualitySteps(20, 30, 50), 7.5, 512, 4,
               "imageforge", _TAESD, examples=("stable-diffusion-v1-5/stable-diffusion-v1-5",)),
        Family("sd2", "Stable Diffusion 2.x base (512 px, epsilon)", _SD, QualitySteps(20, 30, 50), 7.5, 512, 4,
               "imageforge", _TAESD, scheduler="EulerDiscreteScheduler",
               examples=("stabilityai/stable-diffusion-2-1-base",)),
        Family("sd2-v", "Stable Diffusion 2.x (768 px, v-prediction)", _SD, QualitySteps(20, 25, 40), 7.5, 768, 2,
               "imageforge", _TAESD, scheduler="DPMSolverMultistepScheduler",
               examples=("stabilityai/stable-diffusion-2-1",)),
        Family("sd-turbo", "SD-Turbo (SD 2.1 distilled, 1-4 steps)", _SD, QualitySteps(1, 2, 4), 0.0, 512, 8,
               "imageforge", _TAESD, scheduler_config=_TRAILING, examples=("stabilityai/sd-turbo",)),
        Family("sdxs", "SDXS (one-step SD, 512 px)", _SD, QualitySteps(1, 1, 1), 0.0, 512, 8,
               "imageforge", None, scheduler_config=_TRAILING, examples=("IDEA-CCNL/sdxs-512-0.9",)),
        Family("sdxl", "Stable Diffusion XL (1024 px)", _SDXL, QualitySteps(20, 30, 40), 5.0, 1024, 2,
               "gpt-image-1", _TAESDXL, examples=("stabilityai/stable-diffusion-xl-base-1.0",)),
        Family("sdxl-turbo", "SDXL-Turbo (512 px, 1-4 steps)", _SDXL, QualitySteps(1, 2, 4), 0.0, 512, 8,
               "imageforge", _TAESDXL, scheduler_config=_TRAILING, examples=("stabilityai/sdxl-turbo",)),
        Family("sdxl-lightning", "step-distilled SDXL: Lightning, Hyper-SD (1024 px, 2-8 steps)", _SDXL,
               QualitySteps(2, 4, 8), 0.0, 1024, 2, "gpt-image-1", _TAESDXL,
               scheduler="EulerDiscreteScheduler", scheduler_config=_TRAILING,
               examples=("ByteDance/SDXL-Lightning", "ByteDance/Hyper-SD")),
        Family("sdxl-lcm", "latent-consistency SDXL (LCM, 4-8 steps)", _SDXL, QualitySteps(4, 6, 8), 1.0, 1024, 2,
               "gpt-image-1", _TAESDXL, scheduler="LCMScheduler", examples=("latent-consistency/lcm-sdxl",)),
        Family("sd3", "Stable Diffusion 3 medium", _SD3, QualitySteps(20, 28, 40), 7.0, 1024, 2,
               "gpt-image-1", _TAESD3, examples=("stabilityai/stable-diffusion-3-medium-diffusers",)),
        Family("sd3.5-large", "Stable Diffusion 3.5 large", _SD3, QualitySteps(20, 28, 40), 3.5, 1024, 1,
               "gpt-image-1", _TAESD3, examples=("stabilityai/stable-diffusion-3.5-large",)),
        Family("sd3.5-medium", "Stable Diffusion 3.5 medium (MMDiT-X)", _SD3, QualitySteps(24, 40, 50), 4.5, 1024, 2,
               "gpt-image-1", _TAESD3, examples=("stabilityai/stable-diffusion-3.5-medium",)),
        Family("sd3.5-large-turbo", "Stable Diffusion 3.5 large turbo (4 steps)", _SD3, QualitySteps(2, 4, 8), 0.0,
               1024, 1, "gpt-image-1", _TAESD3, examples=("stabilityai/stable-diffusion-3.5-large-turbo",)),
        Family("flux-dev", "FLUX.1 dev (guidance-distilled)", _FLUX, QualitySteps(20, 28, 50), 3.5, 1024, 1,
               "gpt-image-1", _TAEF1, call_options=(("max_sequence_length", 512),),
               examples=("black-forest-labs/FLUX.1-dev",)),
        Family("flux-schnell", "FLUX.1 schnell (1-4 steps)", _FLUX, QualitySteps(1, 2, 4), 0.0, 1024, 1,
               "gpt-image-1", _TAEF1, call_options=(("max_sequence_length", 256),),
               examples=("black-forest-labs/FLUX.1-schnell",)),
        # PixArt and Sana would snap a size to their nearest trained aspect-ratio bin and resample the result back:
        # 1536x1024 would be drawn at 1216x832 and upscaled. The API honours sizes exactly, so they draw it as asked.
        Family("pixart-sigma", "PixArt-Sigma (1024 px, T5)", "PixArtSigmaPipeline", QualitySteps(14, 20, 30), 4.5,
               1024, 2, "gpt-image-1", _TAESDXL, call_options=_NO_BINNING,
               examples=("PixArt-alpha/PixArt-Sigma-XL-2-1024-MS",)),
        # Sana's DC-AE compresses 32x; no TAESD-family decoder matches it, so previews use its own VAE.
        Family("sana", "Sana (1024 px, Gemma text encoder, DC-AE)", "SanaPipeline", QualitySteps(14, 20, 30), 4.5,
               1024, 2, "gpt-image-1", None, call_options=_NO_BINNING,
               examples=("Efficient-Large-Model/Sana_1600M_1024px_diffusers",)),
    )
}  # fmt: skip

# What an unrecognised diffusers pipeline gets: diffusers' AutoPipeline picks the class, the pipeline's own
# guidance default applies, and the step table is the engine's general-purpose one.
GENERIC = Family("generic", "unrecognised diffusers pipeline (AutoPipelineForText2Image)", None,
                 QualitySteps(15, 25, 40), None, 512, 1, "imageforge", None)  # fmt: skip


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise KeyError(f"unknown model family {name!r}; known: {', '.join(FAMILIES)}") from None
