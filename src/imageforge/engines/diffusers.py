"""Engine over Hugging Face diffusers pipelines: SD 1.x/2.x, SDXL, SD-Turbo, SD3, FLUX and anything else that
``AutoPipelineForText2Image`` knows, from the user's own checkpoints.

* Text-to-image through the loaded pipeline; image-to-image and inpainting through
  ``AutoPipelineFor{Image2Image,Inpainting}.from_pipe`` on the *same* components (no second copy in memory).
* One CPU ``torch.Generator`` per image, seeded ``seed + i`` (CPU generators give the same noise on any device),
  passed as a list with ``num_images_per_prompt``: a batch equals its images made one by one.
* ``callback_on_step_end`` reports every step; previews decode the scheduler's x0 estimate
  (``diffusers_previews``: by default a linear latent-to-RGB map fitted to the checkpoint's VAE at load;
  ``preview_decoder`` picks a tiny decoder or the full VAE instead); cancellation sets the pipeline's
  ``_interrupt`` flag, which every diffusers pipeline checks before each step (diffusers docs, "Pipeline
  callbacks: interrupt the diffusion process").
* A family's recommended scheduler (``scheduler``, ``scheduler_config``: e.g. trailing timesteps for distilled
  models) replaces the checkpoint's own at load; ``call_options`` are extra pipeline-call arguments (FLUX's
  ``max_sequence_length``). ``engines/families.py`` holds these per model family.
* Transparent backgrounds: these models draw no alpha, so the prompt asks for a plain white background and the
  result is matted (``imaging/matte.py``); the prompt actually used is reported.
* Speed options (``channels_last``, ``fuse_qkv``, ``compile``) are applied at load (``diffusers_speed``);
  ``factory`` builds the pipeline with the operator's own code instead of loading ``model`` (quantised or
  patched pipelines, and the GPU benchmarks' random-weight models).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from imageforge.engines.base import (
    Cancelled,
    EngineCapabilities,
    check_batch,
    check_quality_steps,
    make_result,
    never_cancelled,
    raise_if_cancelled,
    resolve_device,
)
from imageforge.engines.chunks import plan_chunks
from imageforge.engines.diffusers_loading import (
    check_call_options,
    load_preview_vae,
    load_text2image,
    replace_scheduler,
    resolve_dtype,
)
from imageforge.engines.diffusers_previews import LatentPreview, capture_x0, decode_latents
from imageforge.engines.diffusers_speed import SpeedOptions, apply_speed_options, load_factory
from imageforge.errors import ConfigurationError, GenerationCancelled
from imageforge.imaging.canvas import blend, flatten
from imageforge.imaging.matte import matte
from imageforge.params import GenerationParams, GenerationResult, StepCallback, StepPreview

__all__ = ["TRANSPARENT_PROMPT_SUFFIX", "DiffusersEngine"]

log = logging.getLogger(__name__)

TRANSPARENT_PROMPT_SUFFIX = ", isolated on a plain white background"
_DEFAULT_QUALITY_STEPS = {"low": 15, "medium": 25, "high": 40}
PREVIEW_DECODERS = ("auto", "latent", "tiny", "vae")


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
        scheduler: str | None = None,
        scheduler_config: dict[str, Any] | None = None,
        call_options: dict[str, Any] | None = None,
        factory: str | None = None,
        preview_decoder: str = "auto",
        channels_last: bool = False,
        fuse_qkv: bool = False,
        compile: str = "off",
        compile_mode: str = "default",
    ) -> None:
        if preview_decoder not in PREVIEW_DECODERS:
            raise ConfigurationError(
                f"preview_decoder must be one of {', '.join(PREVIEW_DECODERS)}, not {preview_decoder!r}"
            )
        if preview_decoder == "tiny" and not preview_vae:
            raise ConfigurationError("preview_decoder 'tiny' needs preview_vae (a TAESD-family decoder)")
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
        self.scheduler = scheduler
        self.scheduler_config = dict(scheduler_config or {})
        self.call_options = dict(call_options or {})
        self.factory = factory
        self.preview_decoder = preview_decoder
        self.speed = SpeedOptions(channels_last=channels_last, fuse_qkv=fuse_qkv, compile=compile,
                                  compile_mode=compile_mode)  # fmt: skip
        self._caps = EngineCapabilities(
            native_resolutions=((native_size, native_size),),
            max_batch=max_batch,
            alpha="matte",
            min_steps=1,
            max_steps=max_steps,
            quality_steps=check_quality_steps(quality_steps or _DEFAULT_QUALITY_STEPS, 1, max_steps),
            img2img=True,  # until load() finds out whether the pipeline family has these variants
            inpaint=True,
            size_multiple=8,
            max_pixels=max_pixels,
        )
        self._t2i: Any = None
        self._derived: dict[str, Any] = {}
        self._preview_vae: Any = None
        self._latent_preview: LatentPreview | None = None

    @property
    def capabilities(self) -> EngineCapabilities:
        return self._caps

    def load(self) -> None:
        if self._t2i is not None:
            return
        device = resolve_device(self.device)
        dtype = resolve_dtype(self.dtype, device)
        if self.factory:
            pipe = load_factory(self.factory)(dtype=dtype, device=device)
        else:
            pipe = load_text2image(
                self.model,
                torch_dtype=dtype,
                pipeline_class=self.pipeline_class,
                single_file_config=self.single_file_config,
                variant=self.variant,
                revision=self.revision,
                local_files_only=self.local_files_only,
            )
        replace_scheduler(pipe, self.scheduler, self.scheduler_config)
        check_call_options(pipe, self.call_options)
        pipe = pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        apply_speed_options(pipe, self.speed)
        decoder = self.preview_decoder
        if decoder == "auto":
            decoder = "tiny" if self.preview_vae_source else "latent"
        if decoder == "tiny":
            assert self.preview_vae_source  # __init__ refuses 'tiny' without it
            self._preview_vae = load_preview_vae(self.preview_vae_source, dtype).to(device)
        elif decoder == "latent":
            self._latent_preview = LatentPreview.calibrate(pipe)
            if self._latent_preview is None:
                log.warning("the VAE gave non-finite latents in %s; previews use the full VAE", dtype)
        self._t2i = pipe
        # Capabilities as found: not every pipeline family has image-to-image and inpainting variants.
        self._caps = replace(self._caps, img2img=self._derive("img2img"), inpaint=self._derive("inpaint"))
        log.info("diffusers pipeline %s loaded on %s (%s)", type(pipe).__name__, device, dtype)

    def close(self) -> None:
        self._t2i = None
        self._derived.clear()
        self._preview_vae = None
        self._latent_preview = None
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover
            pass

    def _derive(self, mode: str) -> bool:
        """Build (and keep) the ``mode`` pipeline over the loaded components; False if the family has none."""
        from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting

        auto = AutoPipelineForImage2Image if mode == "img2img" else AutoPipelineForInpainting
        try:
            pipe = auto.from_pipe(self._t2i)
        except ValueError as exc:  # diffusers: "... does not have an image-to-image/inpainting pipeline"
            log.info("%s: no %s pipeline (%s)", type(self._t2i).__name__, mode, exc)
            return False
        pipe.set_progress_bar_config(disable=True)
        self._derived[mode] = pipe
        return True

    def _pipeline_for(self, mode: str) -> Any:
        if mode == "text2img":
            return self._t2i
        return self._derived[mode]  # check_batch refused modes the capabilities do not list

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
        progress = _Progress(done=0, total=batch[0].denoising_steps * len(chunks), chunks=len(chunks))
        for chunk in chunks:
            raise_if_cancelled(cancelled, progress.done)
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
        with capture_x0(pipe.scheduler) as capture:

            def on_step_end(pipeline: Any, i: int, t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
                if i == 0:
                    # The pipeline's own count: float timestep maths (SD3/FLUX img2img) and second-order
                    # schedulers (Heun) can differ from steps * strength.
                    progress.total = pipeline.num_timesteps * progress.chunks
                progress.done += 1
                if on_step is not None:
                    preview = self._previewer(pipeline, batch, rows, images, capture.latest)
                    on_step(StepPreview(progress.done, progress.total, preview))
                if cancelled():
                    # The documented flag makes the pipeline skip its remaining steps; raising as well skips the
                    # VAE decode it would still run, so the job ends at this step boundary.
                    pipeline._interrupt = True
                    raise GenerationCancelled(f"generation cancelled after {progress.done} step(s)")
                return kwargs

            out: list[Any] = pipe(**self._call_kwargs(batch, rows, prompts), callback_on_step_end=on_step_end).images
        return out

    def _call_kwargs(
        self, batch: Sequence[GenerationParams], rows: list[tuple[int, int]], prompts: list[str]
    ) -> dict[str, Any]:
        """Pipeline arguments: one prompt row per image, each with its own CPU generator seeded seed + i."""
        import torch

        p0 = batch[0]
        # Call options go only to pipelines that take them (a family's img2img variant may not).
        accepted = inspect.signature(self._pipeline_for(p0.mode).__call__).parameters
        kwargs: dict[str, Any] = {k: v for k, v in self.call_options.items() if k in accepted}
        kwargs |= {
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
        """Pipeline output -> the final image: exact size, matted if transparency was asked for, and for
        inpainting the original's own pixels (alpha included) everywhere outside the mask."""
        if img.size != (p.width, p.height):  # pipelines round odd sizes; the API promises exact pixels
            img = img.resize((p.width, p.height))
        img = matte(img) if p.background == "transparent" else img.convert("RGBA")
        if p.mask is not None and p.init_image is not None:
            # The VAE round trip alters every pixel; an edit must leave the unmasked area exactly as it was.
            original = p.init_image.convert("RGBA").resize(img.size)
            img = blend(img, original, _mask(p).resize(img.size))
        return flatten(img, p.background)

    def _used_prompt(self, prompt: str) -> str:
        """The prompt as the pipeline's longest-context text encoder sees it (CLIP truncates at 77 tokens;
        FLUX and SD3 also read up to 256-512 T5 tokens)."""
        tokenizers = [getattr(self._t2i, n, None) for n in ("tokenizer", "tokenizer_2", "tokenizer_3")]
        tok = max((t for t in tokenizers if t is not None), key=lambda t: t.model_max_length, default=None)
        if tok is None or not getattr(tok, "is_fast", False):
            return prompt
        # The longest encoder reads max_sequence_length tokens where the family sets it (FLUX schnell: 256).
        limit = min(tok.model_max_length, self.call_options.get("max_sequence_length", tok.model_max_length))
        enc = tok(prompt, truncation=True, max_length=limit, return_offsets_mapping=True)
        ends = [end for start, end in enc["offset_mapping"] if end > start]
        if not ends or len(tok(prompt)["input_ids"]) <= limit:
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
            if self._latent_preview is not None:
                decoded = self._latent_preview.decode(pipe, latest[idx], p.height, p.width)
            else:
                decoded = decode_latents(pipe, latest[idx], p.height, p.width, self._preview_vae)
            return finished + [self._finish(p, im) for im in decoded]

        return preview


@dataclass
class _Progress:
    done: int
    total: int
    chunks: int


def _mask(p: GenerationParams) -> Any:
    assert p.mask is not None  # inpaint mode guarantees it
    return p.mask.convert("L")
