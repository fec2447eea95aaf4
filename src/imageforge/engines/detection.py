"""Which family (``engines/families.py``) a checkpoint belongs to, read from its files without loading weights.

* A diffusers directory: ``model_index.json``'s ``_class_name`` names the pipeline; component configs tell the
  variants apart where the architecture differs (FLUX dev has guidance embeddings, schnell none; SD 2.x's UNet
  attends to 1024-wide OpenCLIP states with linear projections where SD 1.x has 768 and convolutions; 2.x 768-v
  predicts ``v_prediction``; SD3.5 adds QK-norm, SD3.5 medium dual-attention layers; LCM-distilled SDXL UNets
  embed the guidance scale).
* A single ``.safetensors`` file: only its tensor names and shapes (``safe_open``), classified by diffusers' own
  ``infer_diffusers_model_type``, the function ``from_single_file`` uses.

Distilled variants that share their base model's architecture (Turbo, Lightning, Hyper-SD, LCM-LoRA merges, SDXS)
cannot be told from the weights. They are recognised **heuristically**: by the repository or file name, then by a
scheduler config the distillers ship (``LCMScheduler``; ``trailing`` timestep spacing, which base models do not
use). A wrong guess only costs quality, and a catalogue entry can always set the options explicitly.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imageforge.engines.families import FAMILIES, GENERIC, Family
from imageforge.errors import ConfigurationError

__all__ = ["Detection", "detect_directory", "detect_single_file"]

log = logging.getLogger(__name__)

# diffusers single-file model types -> family (the base family; names refine it below).
_SINGLE_FILE_TYPES = {
    "v1": "sd1",
    "v2": "sd2-v",  # diffusers' default config for a v2 file is stable-diffusion-2-1, the 768-v model
    "xl_base": "sdxl",
    "sd3": "sd3",
    "sd35_medium": "sd3.5-medium",
    "sd35_large": "sd3.5-large",
    "flux-dev": "flux-dev",
    "flux-schnell": "flux-schnell",
    "sana": "sana",
}


@dataclass(frozen=True)
class Detection:
    family: Family
    reason: str  # what decided it, for logs and `imageforge pull`
    variant: str | None = None  # weights present only as a variant (e.g. fp16) in a directory


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path}: expected a JSON object")
    return data


def _config(directory: Path, component: str) -> dict[str, Any]:
    for name in ("config.json", "scheduler_config.json"):
        path = directory / component / name
        if path.is_file():
            return _read_json(path)
    return {}


def _named(name: str, *words: str) -> bool:
    """Heuristic: the repository/file name says which distillation it is (sdxl-turbo, SDXL-Lightning, ...)."""
    lowered = name.lower()
    return any(w in lowered for w in words)


def detect_directory(directory: Path, name: str | None = None) -> Detection:
    """The family of a diffusers directory; ``name`` (hub id or directory name) feeds the name heuristics."""
    index_path = directory / "model_index.json"
    if not index_path.is_file():
        raise ConfigurationError(
            f"{directory} is not a diffusers pipeline directory (no model_index.json); pass the directory saved "
            "by save_pretrained, a .safetensors file, or a hub id"
        )
    index = _read_json(index_path)
    cls = str(index.get("_class_name", ""))
    label = name or directory.name
    scheduler = _config(directory, "scheduler")
    key, reason = _family_key(cls, label, directory, scheduler)
    if key is None:
        log.info("%s: pipeline %r is not in the family table; using AutoPipelineForText2Image defaults", label, cls)
        return Detection(GENERIC, f"{cls or 'unknown pipeline'}: not a known family", _variant(directory, index))
    return Detection(FAMILIES[key], reason, _variant(directory, index))


def _family_key(cls: str, label: str, directory: Path, scheduler: dict[str, Any]) -> tuple[str | None, str]:
    trailing = scheduler.get("timestep_spacing") == "trailing"
    sched_cls = scheduler.get("_class_name", "")
    if cls == "StableDiffusionPipeline":
        unet = _config(directory, "unet")
        if _named(label, "sdxs"):
            return "sdxs", "name says SDXS"
        if _named(label, "turbo"):
            return "sd-turbo", "name says turbo"
        sd2 = unet.get("cross_attention_dim") == 1024 or bool(unet.get("use_linear_projection"))
        if not sd2:
            return "sd1", "UNet: 768-wide CLIP cross-attention, no linear projection (SD 1.x)"
        if trailing:
            return "sd-turbo", "SD 2.x UNet with trailing timestep spacing (heuristic: SD-Turbo)"
        if scheduler.get("prediction_type") == "v_prediction":
            return "sd2-v", "SD 2.x UNet, v-prediction scheduler"
        return "sd2", "SD 2.x UNet, epsilon prediction"
    if cls == "StableDiffusionXLPipeline":
        unet = _config(directory, "unet")
        if _named(label, "turbo"):
            return "sdxl-turbo", "name says turbo"
        if _named(label, "lightning", "hyper"):
            return "sdxl-lightning", "name says Lightning/Hyper"
        if _named(label, "lcm") or sched_cls == "LCMScheduler" or unet.get("time_cond_proj_dim") is not None:
            return "sdxl-lcm", "LCM (name, LCMScheduler, or a guidance-embedding UNet)"
        if trailing:  # heuristic: Turbo ships Euler Ancestral, Lightning plain Euler, both with trailing spacing
            if sched_cls == "EulerAncestralDiscreteScheduler":
                return "sdxl-turbo", "trailing Euler Ancestral scheduler (heuristic: SDXL-Turbo)"
            return "sdxl-lightning", "trailing timestep spacing (heuristic: step-distilled SDXL)"
        return "sdxl", "SDXL pipeline"
    if cls == "StableDiffusion3Pipeline":
        transformer = _config(directory, "transformer")
        if _named(label, "turbo"):
            return "sd3.5-large-turbo", "name says turbo"
        if transformer.get("dual_attention_layers"):
            return "sd3.5-medium", "MMDiT-X dual-attention layers (SD3.5 medium)"
        if transformer.get("qk_norm"):
            return "sd3.5-large", "QK-norm transformer (SD3.5 large)"
        return "sd3", "SD3 transformer without QK-norm (SD3 medium)"
    if cls == "FluxPipeline":
        transformer = _config(directory, "transformer")
        if transformer.get("guidance_embeds") and not _named(label, "schnell"):
            return "flux-dev", "transformer has guidance embeddings (FLUX.1 dev)"
        return "flux-schnell", "transformer without guidance embeddings (FLUX.1 schnell)"
    if cls == "PixArtSigmaPipeline":
        return "pixart-sigma", "PixArt-Sigma pipeline"
    if cls == "SanaPipeline":
        return "sana", "Sana pipeline"
    return None, ""


def _variant(directory: Path, index: dict[str, Any]) -> str | None:
    """A variant (``fp16``) when a weighted component has only variant files, as ``pull --variant`` leaves it."""
    for component, spec in index.items():
        folder = directory / component
        if component.startswith("_") or not isinstance(spec, list) or not folder.is_dir():
            continue
        # diffusers names variant files <stem>.<variant>.safetensors (shards: <stem>.<variant>-0000N-of-...)
        variants = {_file_variant(p.name) for p in folder.glob("*.safetensors")}
        if variants and None not in variants:
            return sorted(v for v in variants if v)[0]
    return None


def _file_variant(filename: str) -> str | None:
    parts = filename.split(".")
    return parts[-2].split("-")[0] if len(parts) > 2 else None


class _Tensor:
    """A tensor's shape without its data: what ``infer_diffusers_model_type`` reads (``.shape``)."""

    def __init__(self, shape: list[int]) -> None:
        self.shape = tuple(shape)


def detect_single_file(path: Path) -> Detection:
    """The family of a single-file checkpoint, from its tensor names and shapes only."""
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            keys = {k: _Tensor(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 - not a dict
    except Exception as exc:  # safetensors raises its own error types for truncated or foreign files
        raise ConfigurationError(f"{path}: not a readable .safetensors file ({type(exc).__name__}: {exc})") from exc
    try:
        model_type = infer_diffusers_model_type(keys)
    except Exception as exc:  # a branch that needs tensor values, not just shapes
        raise ConfigurationError(f"{path}: diffusers cannot classify this checkpoint ({exc})") from exc
    base = _SINGLE_FILE_TYPES.get(model_type)
    if base is None:
        raise ConfigurationError(
            f"{path.name}: diffusers reads it as {model_type!r}, which is not a text-to-image family ImageForge "
            f"knows ({', '.join(FAMILIES)}); use a diffusers directory, or a catalogue entry naming the pipeline"
        )
    key = _refine_single_file(base, path.name)
    return Detection(FAMILIES[key], f"diffusers single-file type {model_type!r}" + ("" if key == base else
                                                                                     f", name says {key}"))  # fmt: skip


def _refine_single_file(base: str, name: str) -> str:
    """Heuristic, by file name: the distilled variants that share their base's tensors."""
    if base == "sd1" and _named(name, "sdxs"):
        return "sdxs"
    if base in ("sd1", "sd2-v") and _named(name, "turbo"):
        return "sd-turbo"
    if base == "sd2-v" and _named(name, "base", "512"):
        return "sd2"
    if base == "sdxl":
        if _named(name, "turbo"):
            return "sdxl-turbo"
        if _named(name, "lightning", "hyper"):
            return "sdxl-lightning"
        if _named(name, "lcm"):
            return "sdxl-lcm"
    if base == "sd3.5-large" and _named(name, "turbo"):
        return "sd3.5-large-turbo"
    if base.startswith("flux") and _named(name, "schnell"):
        return "flux-schnell"
    return base
