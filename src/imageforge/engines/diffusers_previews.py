"""Partial-image previews for diffusers pipelines: the clean-image estimate at the current step, decoded.

Pipelines do not hand the x0 estimate to ``callback_on_step_end``; the scheduler computes it inside ``step`` and
throws it away. :func:`capture_x0` wraps ``step`` on *our own* scheduler instance (never the class) and keeps the
estimate: from the step output where the scheduler reports it (``pred_original_sample``: Euler, DDIM, DDPM, ...;
``denoised``: LCM), from DPM-Solver++'s converted model output, or from the flow-matching identity
``x0 = x_t - sigma * v`` (SD3, FLUX). Schedulers that expose none of these preview the current latents.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["X0Capture", "capture_x0", "decode_latents"]


class X0Capture:
    """Holds the latest x0 estimate (latents, one row per image) seen by the wrapped scheduler."""

    def __init__(self) -> None:
        self.latest: Any = None


@contextmanager
def capture_x0(scheduler: Any) -> Iterator[X0Capture]:
    """While active, every ``scheduler.step`` also records its x0 estimate; the plain method is restored after."""
    capture = X0Capture()
    original: Callable[..., Any] = scheduler.step
    is_flow = "FlowMatch" in type(scheduler).__name__

    def step(model_output: Any, timestep: Any, sample: Any, *args: Any, **kwargs: Any) -> Any:
        return_dict = kwargs.pop("return_dict", True)
        sigma = None
        if is_flow:
            if scheduler.step_index is None:
                scheduler._init_step_index(timestep)
            sigma = scheduler.sigmas[scheduler.step_index]
        out = original(model_output, timestep, sample, *args, return_dict=True, **kwargs)
        x0 = getattr(out, "pred_original_sample", None)
        if x0 is None:
            x0 = getattr(out, "denoised", None)
        if x0 is None and sigma is not None:
            x0 = sample - sigma * model_output
        if x0 is None and getattr(scheduler.config, "algorithm_type", "").endswith("dpmsolver++"):
            x0 = scheduler.model_outputs[-1]
        capture.latest = out.prev_sample if x0 is None else x0
        return out if return_dict else (out.prev_sample,)

    scheduler.step = step  # an instance attribute shadows the method; the class is untouched
    try:
        yield capture
    finally:
        del scheduler.step


def decode_latents(pipe: Any, latents: Any, height: int, width: int, vae: Any = None) -> list[Any]:
    """Latents (as the pipeline holds them) -> PIL images at ``width`` x ``height``."""
    import torch

    vae = vae if vae is not None else pipe.vae
    if latents.dim() == 3 and hasattr(pipe, "_unpack_latents"):  # FLUX-style packed sequence latents
        latents = pipe._unpack_latents(latents, height, width, pipe.vae_scale_factor)
    scaling = getattr(vae.config, "scaling_factor", 1.0) or 1.0
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    with torch.inference_mode():
        images = vae.decode((latents / scaling + shift).to(vae.dtype), return_dict=False)[0]
    pil: list[Any] = pipe.image_processor.postprocess(images.float(), output_type="pil")
    return [im if im.size == (width, height) else im.resize((width, height)) for im in pil]
