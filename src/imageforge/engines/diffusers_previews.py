"""Partial-image previews for diffusers pipelines: the clean-image estimate at the current step, decoded.

Pipelines do not hand the x0 estimate to ``callback_on_step_end``; the scheduler computes it inside ``step`` and
throws it away. :func:`capture_x0` wraps ``step`` on *our own* scheduler instance (never the class) and keeps the
estimate: from the step output where the scheduler reports it (``pred_original_sample``: Euler, DDIM, DDPM, ...;
``denoised``: LCM), from DPM-Solver++'s converted model output, or from the flow-matching identity
``x0 = x_t - sigma * v`` (SD3, FLUX). Schedulers that expose none of these preview the current latents.

Decoding that estimate with the full VAE costs as much as one or two denoising steps per preview (a 512² decode
of a quarter-width SD VAE took 1.9 s on two CPU cores against 0.93 s for a UNet step), so by default previews are
decoded by :class:`LatentPreview`: a linear map from latent channels to RGB, fitted at load against the
checkpoint's own VAE encoder, then upscaled. That is a blurred but faithful colour layout, at a few milliseconds
a preview. A TAESD-family decoder (``preview_vae``) or the full VAE are the alternatives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["LatentPreview", "X0Capture", "capture_x0", "decode_latents"]


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
    latents = _spatial(pipe, latents, height, width)
    scaling = getattr(vae.config, "scaling_factor", 1.0) or 1.0
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    with torch.inference_mode():
        images = vae.decode((latents / scaling + shift).to(vae.dtype), return_dict=False)[0]
    pil: list[Any] = pipe.image_processor.postprocess(images.float(), output_type="pil")
    return [im if im.size == (width, height) else im.resize((width, height)) for im in pil]


def _spatial(pipe: Any, latents: Any, height: int, width: int) -> Any:
    if latents.dim() == 3 and hasattr(pipe, "_unpack_latents"):  # FLUX-style packed sequence latents
        return pipe._unpack_latents(latents, height, width, pipe.vae_scale_factor)
    return latents


# Calibration images: random smooth colour fields (a few colours blended across the image) and flat colours, so
# the fit sees the whole colour cube, as areas the size of a latent pixel and larger.
_CALIBRATION_IMAGES = 24
_CALIBRATION_LATENT_SIZE = 8  # latent pixels per side of each calibration image


class LatentPreview:
    """Latents -> RGB by one linear map per latent channel (plus a bias), then a bilinear upscale."""

    def __init__(self, weight: Any, bias: Any) -> None:
        self.weight = weight  # (latent channels, 3), float32
        self.bias = bias  # (3,)

    @classmethod
    def calibrate(cls, pipe: Any) -> LatentPreview | None:
        """Fit the map on the pipeline's VAE: encode known images, least-squares their latents onto the images'
        colours at latent resolution. ``None`` if the VAE gives non-finite latents (an fp16 VAE that overflows)."""
        import torch
        import torch.nn.functional as F

        vae = pipe.vae
        factor = int(getattr(pipe, "vae_scale_factor", 8) or 8)
        side = _CALIBRATION_LATENT_SIZE * factor
        gen = torch.Generator("cpu").manual_seed(0)
        coarse = torch.rand(_CALIBRATION_IMAGES, 3, 3, 3, generator=gen) * 2 - 1
        fields = F.interpolate(coarse, size=(side, side), mode="bilinear", align_corners=True)
        flat = torch.rand(_CALIBRATION_IMAGES // 4, 3, 1, 1, generator=gen).expand(-1, -1, side, side) * 2 - 1
        images = torch.cat([fields, flat])
        device = next(vae.parameters()).device
        with torch.inference_mode():
            encoded = vae.encode(images.to(device=device, dtype=vae.dtype))
            # AutoencoderKL gives a distribution (its mean is the latent); deterministic autoencoders (Sana's
            # DC-AE) give the latent itself.
            dist = getattr(encoded, "latent_dist", None)
            z = (dist.mean if dist is not None else encoded.latent).float().cpu()
        scaling = getattr(vae.config, "scaling_factor", 1.0) or 1.0
        shift = getattr(vae.config, "shift_factor", None) or 0.0
        z = (z - shift) * scaling  # the space the pipeline's latents live in (decode_latents undoes this)
        if not torch.isfinite(z).all():
            return None
        target = F.adaptive_avg_pool2d(images, z.shape[-2:])
        x = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        y = target.permute(0, 2, 3, 1).reshape(-1, 3)
        design = torch.cat([x, torch.ones(len(x), 1)], dim=1)
        solution = torch.linalg.lstsq(design.double(), y.double()).solution.float()
        return cls(solution[:-1], solution[-1])

    def decode(self, pipe: Any, latents: Any, height: int, width: int) -> list[Any]:
        import torch
        import torch.nn.functional as F
        from PIL import Image

        with torch.inference_mode():
            z = _spatial(pipe, latents, height, width).float().cpu()
            rgb = torch.einsum("bchw,cd->bdhw", z, self.weight) + self.bias[None, :, None, None]
            rgb = F.interpolate(rgb, size=(height, width), mode="bilinear", align_corners=False)
            pixels = ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        return [Image.fromarray(px, "RGB") for px in pixels]
