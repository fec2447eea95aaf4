"""The embedded model's sampler: DPM-Solver++ (2M) with classifier-free guidance, written as a per-step generator.

``Sampler.run`` yields a :class:`SamplerStep` after every denoising step, carrying the current estimate of the
clean image (free with v-prediction: ``x0 = alpha_t * x_t - sigma_t * v``), so a caller can show previews,
count progress or simply stop iterating to cancel: nothing runs between ``yield`` s. A caller can also drop
images between steps: ``run.send(keep)`` (row indices to keep, ascending) instead of ``next(run)`` continues with
those rows only, every per-image tensor sliced alike, so the kept images come out as they would have anyway.

Image-to-image is SDEdit (Meng et al. 2022): the init image is noised to the level ``strength`` of the way up the
schedule and denoised from there. Inpainting adds masked sampling (as in RePaint/SD's legacy inpaint): after every
step the known region is replaced by the init image noised to the next step's level, so the model only invents
the masked part, in context.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from imageforge.engines.embedded.network import make_scheduler

if TYPE_CHECKING:
    from imageforge.engines.embedded.config import EmbeddedModelConfig
    from imageforge.engines.embedded.text import TextEmbedding

__all__ = ["Sampler", "SamplerStep"]

# The noise levels (training timesteps of 1000) and the fixed probe noise of Sampler.alignment: the middle of the
# schedule, where the prompt decides most of what the network predicts (the ends say little: near 0 the image
# itself, near 1000 only noise).
PROBE_LEVELS = (150, 300, 450, 600, 750)
PROBE_SEED = 20261202


@dataclass(frozen=True)
class SamplerStep:
    step: int  # 1-based
    total: int
    x0: torch.Tensor  # (B, C, S, S) current clean-image estimate, [-1, 1]
    sample: torch.Tensor  # (B, C, S, S) the latent after this step (== the output after the last step)


class Sampler:
    def __init__(self, unet: Any, cfg: EmbeddedModelConfig, device: str = "cpu") -> None:
        self.unet = unet
        self.cfg = cfg
        self.device = device

    def walk_noise(self, seed: int, frame: int, frames: int) -> torch.Tensor:
        """Frame ``frame`` of ``frames`` on the circle cos(t) z(seed) + sin(t) z(seed + 1): unit Gaussian noise at
        every frame (cos^2 + sin^2 = 1, the two independent), smooth from frame to frame, and back to the start
        after the last, so a looping animation has no jump."""
        z0, z1 = self.initial_noise([seed, seed + 1])
        t = 2 * math.pi * frame / frames
        walked: torch.Tensor = math.cos(t) * z0 + math.sin(t) * z1
        return walked

    def initial_noise(self, seeds: Sequence[int]) -> torch.Tensor:
        """One generator per image: image i's noise depends on its own seed only, never on its batch."""
        s, c = self.cfg.image_size, self.cfg.channels
        noise = [torch.randn((c, s, s), generator=torch.Generator().manual_seed(seed)) for seed in seeds]
        return torch.stack(noise).to(self.device)  # (B, C, S, S)

    @torch.inference_mode()
    def run(
        self,
        cond: TextEmbedding,
        uncond: TextEmbedding,
        seeds: Sequence[int],
        steps: int,
        guidance_scale: float,
        init: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        strength: float = 1.0,
        references: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
    ) -> Generator[SamplerStep, Sequence[int] | torch.Tensor | None, None]:
        """Sample ``len(seeds)`` images; ``cond`` holds one row per image, ``uncond`` one row (broadcast) or one
        per image (negative prompts).

        After a yield, ``send(keep)`` with the indices (into the current rows, ascending, not empty) of the images
        to go on with drops the others before the next step; ``next()`` (or ``send(None)``) keeps them all. Later
        steps' ``x0`` and ``sample`` then hold the kept rows only, in ``keep`` order.

        ``init`` (B, C, S, S) in [-1, 1] starts from an image (img2img); with ``mask`` (B, 1, S, S) in [0, 1]
        (1 = repaint) the rest of ``init`` is kept (inpainting). ``references`` (B, 4k, S, S) in [-1, 1] are the
        retrieved images the network is conditioned on (``cfg.reference_images`` = k); the unguided branch sees
        blank (fully transparent) references, as in training. ``noise`` (B, C, S, S) replaces the seeds' own
        starting noise (an animation's walk; ``seeds`` still counts the rows).
        """
        b = len(seeds)
        if init is not None:
            init = init.to(self.device)
        if mask is not None:
            mask = mask.to(self.device)
        sched = make_scheduler(self.cfg)
        sched.set_timesteps(steps, device=self.device)
        timesteps = sched.timesteps
        noise = self.initial_noise(seeds) if noise is None else noise.to(self.device)

        # 1. Starting point: pure noise, or the init image noised to where the shortened schedule begins.
        if init is None:
            x = noise * sched.init_noise_sigma
        else:
            # strength 1.0 runs the whole schedule (the init image only shows through the mask when inpainting).
            start = steps - int(steps * strength)  # as GenerationParams.denoising_steps (>= 1)
            timesteps = timesteps[start:]
            sched.set_begin_index(start)
            x = sched.add_noise(init, noise, timesteps[:1].repeat(b))
            init = init.expand_as(x)  # one row per image (even if broadcast), so rows can be dropped alike
            if mask is not None:
                mask = mask.expand(b, *mask.shape[1:])

        # 2. Conditioning for the doubled CFG batch: [uncond * B, cond * B].
        ctx, ctx_mask, pooled, extra = self._conditioning(cond, uncond, references, b)
        alphas_cumprod = sched.alphas_cumprod.to(self.device)

        # 3. Denoising loop.
        for i, t in enumerate(timesteps):
            v_uncond, v_cond = self._predict(x, t, ctx, ctx_mask, pooled, extra)
            v = v_uncond + guidance_scale * (v_cond - v_uncond)
            a_t = alphas_cumprod[t].sqrt()
            s_t = (1 - alphas_cumprod[t]).sqrt()
            x0 = (a_t * x - s_t * v).clamp(-1.0, 1.0)  # v-prediction identity
            x = sched.step(v, t, x).prev_sample
            if mask is not None and init is not None:
                if i + 1 < len(timesteps):
                    known = sched.add_noise(init, noise, timesteps[i + 1 : i + 2].repeat(b))
                else:
                    known = init
                x = mask * x + (1 - mask) * known
                x0 = mask * x0 + (1 - mask) * init
            keep = yield SamplerStep(step=i + 1, total=len(timesteps), x0=x0, sample=x)
            if keep is None:
                continue
            rows = _keep_index(keep, b, self.device)
            if len(rows) == b:
                continue
            both = torch.cat([rows, rows + b])  # the same images in both halves of the doubled CFG batch
            _slice_scheduler(sched, rows, b, x.ndim)
            x, noise = x[rows], noise[rows]
            init = init[rows] if init is not None else None
            mask = mask[rows] if mask is not None else None
            ctx, ctx_mask, pooled = ctx[both], ctx_mask[both], pooled[both]
            extra = extra[both] if extra is not None else None
            b = len(rows)

    def _conditioning(
        self, cond: TextEmbedding, uncond: TextEmbedding, references: torch.Tensor | None, b: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Text and reference conditioning of the doubled CFG batch, unguided rows first: token states (2B, T, D),
        their mask, the pooled vectors and the reference channels (2B, 4k, S, S), None for a text-only model. The
        unguided rows see blank (fully transparent) references, as in training."""
        ctx = torch.cat([uncond.tokens.expand(b, -1, -1), cond.tokens])
        ctx_mask = torch.cat([uncond.mask.expand(b, -1), cond.mask])
        pooled = torch.cat([uncond.pooled.expand(b, -1), cond.pooled])  # expand keeps B-row unconds
        extra = None
        if self.cfg.reference_images:
            s, k = self.cfg.image_size, self.cfg.channels * self.cfg.reference_images
            refs = references.to(self.device) if references is not None else torch.full((b, k, s, s), -1.0)
            extra = torch.cat([torch.full_like(refs, -1.0), refs.to(self.device)])
        return ctx, ctx_mask, pooled, extra

    def _predict(
        self,
        x: torch.Tensor,
        t: torch.Tensor | int,
        ctx: torch.Tensor,
        ctx_mask: torch.Tensor,
        pooled: torch.Tensor,
        extra: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The network's v-prediction for ``x`` (B, C, S, S) at timestep ``t``: (unguided, conditioned)."""
        inputs = torch.cat([x, x]) if extra is None else torch.cat([torch.cat([x, x]), extra], dim=1)
        v = self.unet(inputs, t, encoder_hidden_states=ctx, encoder_attention_mask=ctx_mask, class_labels=pooled)
        v_uncond, v_cond = v.sample.chunk(2)
        return v_uncond, v_cond

    @torch.inference_mode()
    def alignment(
        self,
        x0: torch.Tensor,
        cond: TextEmbedding,
        uncond: TextEmbedding,
        references: torch.Tensor | None = None,
        levels: Sequence[int] = PROBE_LEVELS,
    ) -> torch.Tensor:
        """How much better the prompt (and its references) explains each image than no prompt does: the model's
        own estimate of log p(prompt | image), as in Li et al. 2023 ("Your diffusion model is secretly a zero-shot
        classifier"). Each image (B, C, S, S) in [-1, 1] is noised to every level in ``levels`` with one fixed
        probe noise per level (the same for every row, so rows compare fairly and a row's score depends on that
        row only), and the score is the mean over levels of ||v_uncond - v||^2 - ||v_cond - v||^2, v being the true
        v-target. Higher: the drawing is more specific to its prompt. Returns (B,) on the CPU."""
        b = x0.shape[0]
        x0 = x0.to(self.device)
        ctx, ctx_mask, pooled, extra = self._conditioning(cond, uncond, references, b)
        alphas_cumprod = make_scheduler(self.cfg).alphas_cumprod.to(self.device)
        score = torch.zeros(b, device=self.device)
        probe = torch.Generator().manual_seed(PROBE_SEED)
        c, s = self.cfg.channels, self.cfg.image_size
        for level in levels:
            eps = torch.randn((1, c, s, s), generator=probe).to(self.device).expand_as(x0)
            a_t, s_t = alphas_cumprod[level].sqrt(), (1 - alphas_cumprod[level]).sqrt()
            target = a_t * eps - s_t * x0
            v_uncond, v_cond = self._predict(a_t * x0 + s_t * eps, level, ctx, ctx_mask, pooled, extra)
            score += ((v_uncond - target) ** 2).mean((1, 2, 3)) - ((v_cond - target) ** 2).mean((1, 2, 3))
        return (score / len(levels)).cpu()


def _keep_index(keep: Sequence[int] | torch.Tensor, b: int, device: str) -> torch.Tensor:
    rows = torch.as_tensor(keep, dtype=torch.long).flatten().cpu()
    if len(rows) == 0 or bool((rows < 0).any()) or bool((rows >= b).any()) or bool((rows[1:] <= rows[:-1]).any()):
        raise ValueError(f"keep must be ascending, distinct row indices below {b}, not empty; got {rows.tolist()}")
    return rows.to(device)


def _slice_scheduler(sched: Any, rows: torch.Tensor, b: int, ndim: int) -> None:
    """Keep ``rows`` of the scheduler's per-image history: DPM-Solver++ (2M) remembers the previous step's model
    output (``model_outputs``); other diffusers versions or schedulers may keep more (``sample``, ``last_sample``).
    Every tensor shaped like the batch, (b, C, S, S), is per image; its 1-D schedule tables are not."""

    def per_image(value: Any) -> bool:
        return isinstance(value, torch.Tensor) and value.ndim == ndim and value.shape[0] == b

    for name, value in list(vars(sched).items()):
        if per_image(value):
            setattr(sched, name, value[rows])
        elif isinstance(value, list | tuple) and any(per_image(v) for v in value):
            sliced = [v[rows] if per_image(v) else v for v in value]
            setattr(sched, name, type(value)(sliced))
