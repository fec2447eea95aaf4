"""Engine over Hugging Face diffusers pipelines: SD 1.x/2.x, SDXL, SD-Turbo, SD3, FLUX and anything else that
``AutoPipelineForText2Image`` knows, from the user's own checkpoints.

* Text-to-image through the loaded pipeline; image-to-image and inpainting through
  ``AutoPipelineFor{Image2Image,Inpainting}.from_pipe`` on the *same* components (no second copy in memory).
* One CPU ``torch.Generator`` per image, seeded ``seed + i`` (CPU generators give the same noise on any device),
  passed as a list with ``num_images_per_prompt``: a batch equals its images made one by one.
* ``callback_on_step_end`` reports every step; previews decode the scheduler's x0 estimate
  (``diffusers_previews``); cancellation sets the pipeline's ``_interrupt`` flag, which every diffusers pipeline
  checks before each step (diffusers docs, "Pipeline callbacks: interrupt the diffusion process").
* Transparent backgrounds: these models draw no alpha, so the prompt asks for a plain white background and the
  result is matted (``imaging/matte.py``); the prompt actually used is reported.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from imageforge.engines.base import (
    Cancelled,
    EngineCapabilities,
    check_batch,
    make_result,
    never_cancelled,
    resolve_device,
)
from imageforge.engines.chunks import plan_chunks
from imageforge.engines.diffusers_loading import load_text2image, resolve_dtype
from imageforge.engines.diffusers_previews import capture_x0, decode_latents
from imageforge.errors import GenerationCancelled
from imageforge.imaging.canvas import blend, flatten
from imageforge.imaging.matte import matte
from imageforge.params import GenerationParams, GenerationResult, StepCallback, StepPreview

__all__ = ["TRANSPARENT_PROMPT_SUFFIX", "DiffusersEngine"]

log = logging.getLogger(__name__)

TRANSPARENT_PROMPT_SUFFIX = ", isolated on a plain white background"
_DEFAULT_QUALITY_STEPS = {"low": 15, "medium": 25, "high": 40}


class DiffusersEngine:
    def __init__(
        self,
        model: str,
        *,
        pipeline: str | None = None,
        single_file_config: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        variant: str | None = None,
        revision: str | None = None,
        local_files_only: bool = False,
        guidance_scale: float | None = None,
        quality_steps: dict[str, int] | None = None,
        max_batch: int = 4,
        native_size: int = 512,
        max_steps: int = 150,
        max_pixels: int = 2048 * 2048,
        preview_vae: str | None = None,
    ) -> None:
        self.model = model
        self.pipeline_class = pipeline
        self.single_file_config = single_file_config
        self.device = device
        self.dtype = dtype
        self.variant = variant
        self.revision = revision
        self.local_files_only = local_files_only
        self.guidance_scale = guidance_scale
        self.preview_vae_source = preview_vae
        self._caps = EngineCapabilities(
            native_resolutions=((native_size, native_size),),
            max_batch=max_batch,
            alpha="matte",
            min_steps=1,
            max_steps=max_steps,
            quality_steps=dict(quality_steps or _DEFAULT_QUALITY_STEPS),
            img2img=True,
            inpaint=True,
            size_multiple=8,
            max_pixels=max_pixels,
        )
        self._t2i: Any = None
        self._derived: dict[str, Any] = {}
        self._preview_vae: Any = None

    @property
    def capabilities(self) -> EngineCapabilities:
        return self._caps

    def load(self) -> None:
        if self._t2i is not None:
            return
        device = resolve_device(self.device)
        dtype = resolve_dtype(self.dtype, device)
        pipe = load_text2image(
            self.model,
            torch_dtype=dtype,
            pipeline_class=self.pipeline_class,
            single_file_config=self.single_file_config,
            variant=self.variant,
            revision=self.revision,
            local_files_only=self.local_files_only,
        )
        pipe = pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        if self.preview_vae_source:
            from diffusers import AutoencoderTiny

            self._preview_vae = AutoencoderTiny.from_pretrained(self.preview_vae_source, dtype=dtype).to(device)
        self._t2i = pipe
        log.info("diffusers pipeline %s loaded on %s (%s)", type(pipe).__name__, device, dtype)

    def close(self) -> None:
        self._t2i = None
        self._derived.clear()
        self._preview_vae = None
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover
            pass

    def _pipeline_for(self, mode: str) -> Any:
        if mode == "text2img":
            return self._t2i
        if mode not in self._derived:
            from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting

            auto = AutoPipelineForImage2Image if mode == "img2img" else AutoPipelineForInpainting
            pipe = auto.from_pipe(self._t2i)
            pipe.set_progress_bar_config(disable=True)
            self._derived[mode] = pipe
        return self._derived[mode]

    # -- generation ---------------------------------------------------------------------------------------

    def generate(
        self,
        batch: Sequence[GenerationParams],
        on_step: StepCallback | None = None,
        cancelled: Cancelled = never_cancelled,
    ) -> list[GenerationResult]:
        check_batch(batch, self._caps)
        self.load()
        pipe = self._pipeline_for(batch[0].mode)
        prompts = [self._prompt_for(p) for p in batch]
        images: list[list[Any]] = [[] for _ in batch]
        chunks = plan_chunks(batch, self._caps.max_batch)
        progress = _Progress(done=0, total=batch[0].denoising_steps * len(chunks))
        for chunk in chunks:
            rows = [(s.request, s.image) for s in chunk]
            out = self._run_chunk(pipe, batch, rows, prompts, images, progress, on_step, cancelled)
            for (r, _), img in zip(rows, out, strict=True):
                images[r].append(self._finish(batch[r], img))
        return [
            make_result(p, imgs, self._used_prompt(prompt))
            for p, imgs, prompt in zip(batch, images, prompts, strict=True)
        ]

    def _run_chunk(
        self,
        pipe: Any,
        batch: Sequence[GenerationParams],
        rows: list[tuple[int, int]],
        prompts: list[str],
        images: list[list[Any]],
        progress: _Progress,
        on_step: StepCallback | None,
        cancelled: Cancelled,
    ) -> list[Any]:
        """One pipeline call over ``rows`` (request, image) pairs; the pipeline's own decode gives the images."""
        interrupted = False
        with capture_x0(pipe.scheduler) as capture:

            def on_step_end(pipeline: Any, i: int, t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
                nonlocal interrupted
                progress.done += 1
                if on_step is not None:
                    preview = self._previewer(pipeline, batch, rows, images, capture.latest)
                    on_step(StepPreview(progress.done, progress.total, preview))
                if cancelled():
                    pipeline._interrupt = True  # checked by the pipeline before its next step
                    interrupted = True
                return kwargs

            out: list[Any] = pipe(**self._call_kwargs(batch, rows, prompts), callback_on_step_end=on_step_end).images
        if interrupted:
            raise GenerationCancelled(f"generation cancelled after {progress.done} step(s)")
        return out

    def _call_kwargs(
        self, batch: Sequence[GenerationParams], rows: list[tuple[int, int]], prompts: list[str]
    ) -> dict[str, Any]:
        """Pipeline arguments: one prompt row per image, each with its own CPU generator seeded seed + i."""
        import torch

        p0 = batch[0]
        kwargs: dict[str, Any] = {
            "prompt": [prompts[r] for r, _ in rows],
            "num_images_per_prompt": 1,
            "num_inference_steps": p0.steps,
            "generator": [torch.Generator("cpu").manual_seed(batch[r].seed + i) for r, i in rows],
            "output_type": "pil",
        }
        negatives = [batch[r].negative_prompt for r, _ in rows]
        if any(negatives):
            kwargs["negative_prompt"] = [n or "" for n in negatives]
        guidance = p0.guidance_scale if p0.guidance_scale is not None else self.guidance_scale
        if guidance is not None:
            kwargs["guidance_scale"] = guidance
        if p0.mode != "text2img":
            kwargs["image"] = [self._init_image(batch[r]) for r, _ in rows]
            kwargs["strength"] = p0.strength
        if p0.mode == "inpaint":
            kwargs["mask_image"] = [_mask(batch[r]).resize((p0.width, p0.height)) for r, _ in rows]
        if p0.mode != "img2img":  # img2img takes its size from the init image
            kwargs.update(height=p0.height, width=p0.width)
        return kwargs

    def _prompt_for(self, p: GenerationParams) -> str:
        return p.prompt + TRANSPARENT_PROMPT_SUFFIX if p.background == "transparent" else p.prompt

    def _init_image(self, p: GenerationParams) -> Any:
        assert p.init_image is not None
        img = p.init_image
        if img.mode in ("RGBA", "LA", "P"):
            img = flatten(img.convert("RGBA"), "opaque")
        return img.convert("RGB").resize((p.width, p.height))

    def _finish(self, p: GenerationParams, img: Any) -> Any:
        if img.size != (p.width, p.height):  # pipelines round odd sizes; the API promises exact pixels
            img = img.resize((p.width, p.height))
        if p.mask is not None and p.init_image is not None:
            # The VAE round trip alters every pixel; an edit must leave the unmasked area exactly as it was.
            img = blend(img.convert("RGBA"), self._init_image(p).convert("RGBA"), _mask(p).resize(img.size))
        if p.background == "transparent":
            return matte(img)
        return img.convert("RGB")

    def _used_prompt(self, prompt: str) -> str:
        """The prompt as the pipeline's longest-context text encoder sees it (CLIP truncates at 77 tokens;
        FLUX and SD3 also read up to 256-512 T5 tokens)."""
        tokenizers = [getattr(self._t2i, n, None) for n in ("tokenizer", "tokenizer_2", "tokenizer_3")]
        tok = max((t for t in tokenizers if t is not None), key=lambda t: t.model_max_length, default=None)
        if tok is None or not getattr(tok, "is_fast", False):
            return prompt
        enc = tok(prompt, truncation=True, max_length=tok.model_max_length, return_offsets_mapping=True)
        ends = [end for start, end in enc["offset_mapping"] if end > start]
        if not ends or len(tok(prompt)["input_ids"]) <= tok.model_max_length:
            return prompt
        return prompt[: max(ends)]

    def _previewer(
        self,
        pipe: Any,
        batch: Sequence[GenerationParams],
        rows: list[tuple[int, int]],
        images: list[list[Any]],
        latest: Any,
    ) -> Callable[[int], list[Any]]:
        """Previews of a request at this step: its finished images (earlier chunks), then the decoded x0
        estimates of its images in this chunk; the decode runs only if someone asks."""

        def preview(request_index: int) -> list[Any]:
            p = batch[request_index]
            finished = list(images[request_index])
            idx = [k for k, (r, _) in enumerate(rows) if r == request_index]
            if latest is None or not idx:
                return finished
            decoded = decode_latents(pipe, latest[idx], p.height, p.width, self._preview_vae)
            return finished + [self._finish(p, im) for im in decoded]

        return preview


@dataclass
class _Progress:
    done: int
    total: int


def _mask(p: GenerationParams) -> Any:
    assert p.mask is not None  # inpaint mode guarantees it
    return p.mask.convert("L")
