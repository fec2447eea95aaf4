"""Speed options of the diffusers engine, applied once when the pipeline is loaded.

Each is a catalogue option with a switch, off by default: none has been measured on a GPU with ImageForge yet
(BENCHMARKS.md, "GPU"), and on the CPU they gain nothing or cost (``torch.compile`` spends minutes compiling).

- ``channels_last``: the denoiser (UNets only: a transformer has no 4-d activations) and the VAE in NHWC layout,
  which cuDNN's convolution kernels prefer on tensor-core GPUs.
- ``fuse_qkv``: one matmul for the query, key and value projections of every attention layer
  (``pipe.fuse_qkv_projections()``); pipelines that lack it refuse the option at load.
- ``compile``: ``torch.compile`` of the denoiser (``"denoiser"``), and also of the VAE decoder
  (``"denoiser+vae"``). Shapes are compiled static (``dynamic=False``): each batch size and resolution the engine
  meets compiles once, and the engine's batch sizes are few (at most ``max_batch``), so the cache limit is raised
  to hold them rather than falling back to eager code after eight shapes.

Attention already goes through PyTorch's ``scaled_dot_product_attention`` (diffusers' default processor), so
there is no switch for it.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from imageforge.errors import ConfigurationError

__all__ = ["COMPILE_CHOICES", "SpeedOptions", "apply_speed_options", "denoiser_of", "load_factory"]

log = logging.getLogger(__name__)

COMPILE_CHOICES = ("off", "denoiser", "denoiser+vae")
# Compiled graphs kept per function: batch sizes 1..max_batch at a few resolutions.
_COMPILE_CACHE_LIMIT = 64


@dataclass(frozen=True)
class SpeedOptions:
    channels_last: bool = False
    fuse_qkv: bool = False
    compile: str = "off"
    compile_mode: str = "default"

    def __post_init__(self) -> None:
        if self.compile not in COMPILE_CHOICES:
            raise ConfigurationError(f"compile must be one of {', '.join(COMPILE_CHOICES)}, not {self.compile!r}")
        modes = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
        if self.compile_mode not in modes:
            raise ConfigurationError(f"compile_mode must be one of {', '.join(modes)}, not {self.compile_mode!r}")

    def enabled(self) -> list[str]:
        out = [name for name in ("channels_last", "fuse_qkv") if getattr(self, name)]
        if self.compile != "off":
            out.append(f"compile={self.compile}")
        return out


def denoiser_of(pipe: Any) -> Any:
    """The network run at every step: a UNet (SD, SDXL) or a transformer (SD3, FLUX, PixArt, Sana)."""
    for name in ("unet", "transformer"):
        module = getattr(pipe, name, None)
        if module is not None:
            return module
    raise ConfigurationError(f"{type(pipe).__name__} has neither a unet nor a transformer")


def apply_speed_options(pipe: Any, opts: SpeedOptions) -> None:
    """Apply ``opts`` to a loaded pipeline, in place, on the device it already sits on."""
    import torch

    denoiser = denoiser_of(pipe)
    if opts.channels_last:
        if getattr(pipe, "unet", None) is not None:
            pipe.unet.to(memory_format=torch.channels_last)
        if getattr(pipe, "vae", None) is not None:
            pipe.vae.to(memory_format=torch.channels_last)
    if opts.fuse_qkv:
        fuse = getattr(pipe, "fuse_qkv_projections", None)
        if fuse is None:
            raise ConfigurationError(f"{type(pipe).__name__} cannot fuse its attention projections (fuse_qkv)")
        fuse()
    if opts.compile != "off":
        import torch._dynamo

        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, _COMPILE_CACHE_LIMIT)
        # nn.Module.compile compiles in place: the pipeline keeps its own module (from_pipe and config access
        # still work), unlike assigning the OptimizedModule wrapper torch.compile returns.
        denoiser.compile(mode=opts.compile_mode, dynamic=False)
        if opts.compile == "denoiser+vae":
            pipe.vae.decode = torch.compile(pipe.vae.decode, mode=opts.compile_mode, dynamic=False)
    if opts.enabled():
        log.info("speed options: %s", ", ".join(opts.enabled()))


def load_factory(target: str) -> Callable[..., Any]:
    """``"package.module:callable"`` -> the callable that builds a pipeline (the ``factory`` option)."""
    module, sep, attr = target.partition(":")
    if not sep or not module or not attr:
        raise ConfigurationError(f"factory must be 'module:callable', not {target!r}")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"factory {target!r} cannot be imported: {exc}") from exc
    if not callable(fn):
        raise ConfigurationError(f"factory {target!r} is not callable")
    return fn  # type: ignore[no-any-return]
