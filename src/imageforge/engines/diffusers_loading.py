"""Loading diffusers pipelines from what users actually have: a local diffusers directory, one ``.safetensors``
file (A1111/ComfyUI style), or a hub id (for machines with network). Pickle checkpoints are refused: loading them
executes arbitrary code (``torch.load`` on ``.ckpt``/``.bin``/``.pt``; CVE-2025-32434 and friends).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from imageforge.errors import ConfigurationError, EngineUnavailableError, UnsafeCheckpointError

__all__ = [
    "PICKLE_SUFFIXES",
    "check_call_options",
    "load_preview_vae",
    "load_text2image",
    "refuse_pickles",
    "replace_scheduler",
    "resolve_dtype",
]

log = logging.getLogger(__name__)

PICKLE_SUFFIXES = frozenset({".ckpt", ".bin", ".pt", ".pth", ".pkl", ".pickle"})
_DTYPES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16", "bfloat16": "bfloat16"}


def _diffusers() -> Any:
    try:
        import diffusers
    except ImportError as exc:  # pragma: no cover - diffusers is a dependency; this guards broken installs
        raise EngineUnavailableError("the diffusers engine needs the 'diffusers' package") from exc
    return diffusers


def resolve_dtype(dtype: str, device: str) -> Any:
    """ "auto" is fp16 on CUDA (bf16 where supported) and fp32 on CPU, where half-precision kernels are slow."""
    import torch

    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    try:
        return getattr(torch, _DTYPES[dtype])
    except KeyError:
        raise ConfigurationError(f"unknown dtype {dtype!r}; use auto, float32, float16 or bfloat16") from None


def refuse_pickles(directory: Path) -> None:
    """Refuse a diffusers directory if any component's weights exist only in pickle form."""
    for sub in [directory, *(p for p in directory.iterdir() if p.is_dir())]:
        files = [p for p in sub.iterdir() if p.is_file()]
        pickled = [p.name for p in files if p.suffix in PICKLE_SUFFIXES]
        if pickled and not any(p.suffix == ".safetensors" for p in files):
            raise UnsafeCheckpointError(
                f"{sub} holds only pickle weights ({', '.join(sorted(pickled))}); ImageForge loads safetensors only. "
                "Convert the checkpoint to .safetensors first."
            )


def load_text2image(
    source: str,
    *,
    torch_dtype: Any,
    pipeline_class: str | None = None,
    single_file_config: str | None = None,
    variant: str | None = None,
    revision: str | None = None,
    local_files_only: bool = False,
) -> Any:
    """A text-to-image pipeline from a directory, a single ``.safetensors`` file, or a hub id."""
    diffusers = _diffusers()
    path = Path(source).expanduser()
    common: dict[str, Any] = {"dtype": torch_dtype}
    if path.suffix in PICKLE_SUFFIXES:
        raise UnsafeCheckpointError(
            f"{path.name}: pickle checkpoints ({', '.join(sorted(PICKLE_SUFFIXES))}) are refused because loading "
            "them can run arbitrary code; use a .safetensors file."
        )
    if path.is_file():
        if path.suffix != ".safetensors":
            raise ConfigurationError(f"{path}: a single-file checkpoint must be a .safetensors file")
        cls = _pipeline_class(diffusers, pipeline_class or "StableDiffusionPipeline")
        kwargs = dict(common)
        if single_file_config:
            # A diffusers directory or hub id holding the component configs; without it diffusers fetches the
            # default config of the detected architecture, which needs network access once.
            kwargs["config"] = single_file_config
        log.info("loading single-file checkpoint %s as %s", path, cls.__name__)
        return _loading(source, lambda: cls.from_single_file(str(path), **kwargs))
    if path.is_dir():
        refuse_pickles(path)
        target: str = str(path)
        common.update(variant=variant)  # fp16 variant files live in local directories too
    elif path.is_absolute() or source.startswith((".", "~")) or source.count("/") != 1:
        raise ConfigurationError(f"model {source!r}: no such file or directory, and not a hub id (org/name)")
    else:
        target = source  # hub id; weights are cached by huggingface_hub on first use
        common.update(variant=variant, revision=revision, local_files_only=local_files_only)
    cls = _pipeline_class(diffusers, pipeline_class) if pipeline_class else diffusers.AutoPipelineForText2Image
    log.info("loading pipeline %s with %s", target, getattr(cls, "__name__", cls))
    return _loading(source, lambda: cls.from_pretrained(target, use_safetensors=True, **common))


def load_preview_vae(source: str, torch_dtype: Any) -> Any:
    """A tiny preview decoder (``AutoencoderTiny``, e.g. TAESD) from a directory or hub id; safetensors only."""
    diffusers = _diffusers()
    path = Path(source).expanduser()
    if path.is_dir():
        refuse_pickles(path)
    return _loading(
        source, lambda: diffusers.AutoencoderTiny.from_pretrained(str(path) if path.is_dir() else source,
                                                                  use_safetensors=True, dtype=torch_dtype)
    )  # fmt: skip


def replace_scheduler(pipe: Any, name: str | None, overrides: dict[str, Any] | None) -> None:
    """Swap in scheduler class ``name`` (None: keep the checkpoint's own) built from the pipeline's scheduler config
    with ``overrides`` (e.g. ``timestep_spacing="trailing"`` for distilled models), as model cards do with
    ``Scheduler.from_config(pipe.scheduler.config, ...)``."""
    if name is None and not overrides:
        return
    diffusers = _diffusers()
    cls = type(pipe.scheduler) if name is None else getattr(diffusers, name, None)
    if cls is None or not hasattr(cls, "from_config"):
        raise ConfigurationError(f"unknown diffusers scheduler class {name!r}")
    try:
        pipe.scheduler = cls.from_config(pipe.scheduler.config, **(overrides or {}))
    except Exception as exc:  # a scheduler that rejects the checkpoint's config: a catalogue error, named
        raise ConfigurationError(f"cannot build scheduler {cls.__name__}: {type(exc).__name__}: {exc}") from exc
    log.info("scheduler %s %s", cls.__name__, overrides or "")


def check_call_options(pipe: Any, options: dict[str, Any]) -> None:
    """Refuse extra call arguments the pipeline does not take (a typo would otherwise fail every request)."""
    import inspect

    accepted = inspect.signature(pipe.__call__).parameters
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigurationError(f"{type(pipe).__name__} takes no call option(s) {', '.join(unknown)}")


def _loading(source: str, load: Any) -> Any:
    """Run a diffusers loader; whatever it raises becomes a ConfigurationError that names the model.

    Loading a user's checkpoint fails in many library-specific ways (missing files, bad configs, unknown
    architectures, shape mismatches); all of them mean "this catalogue entry cannot be served".
    """
    try:
        return load()
    except (UnsafeCheckpointError, ConfigurationError):
        raise
    except OSError as exc:
        if "safetensors" in str(exc).lower():
            raise UnsafeCheckpointError(f"{source}: no safetensors weights found ({exc})") from exc
        raise ConfigurationError(f"cannot load {source}: {exc}") from exc
    except Exception as exc:  # the layer boundary: see the docstring
        raise ConfigurationError(f"cannot load {source}: {type(exc).__name__}: {exc}") from exc


def _pipeline_class(diffusers: Any, name: str) -> Any:
    cls = getattr(diffusers, name, None)
    if cls is None or not hasattr(cls, "from_pretrained"):
        raise ConfigurationError(f"unknown diffusers pipeline class {name!r}")
    return cls
