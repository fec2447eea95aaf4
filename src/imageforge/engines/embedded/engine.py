"""The embedded default engine: the small RGBA diffusion model whose weights ship inside this package.

It works offline on any machine: nothing is downloaded, ever. The network draws square premultiplied-RGBA art
at ``image_size`` pixels; this adapter resamples it to the exact requested size (non-square sizes get the art in
the centred square), keeps or flattens the alpha the model drew, and runs image-to-image and inpainting.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageChops

from imageforge.engines.base import (
    Cancelled,
    EngineCapabilities,
    RequestCancelled,
    check_batch,
    check_quality_steps,
    make_result,
    never_cancelled,
    raise_if_cancelled,
    resolve_device,
)
from imageforge.engines.chunks import ImageSlot, plan_chunks
from imageforge.errors import ConfigurationError, GenerationCancelled
from imageforge.imaging.canvas import (
    blend,
    fit_square,
    flatten,
    image_to_premultiplied,
    premultiplied_to_image,
    square_region,
)
from imageforge.params import GenerationParams, GenerationResult, StepCallback, StepPreview

__all__ = ["EmbeddedEngine"]

log = logging.getLogger(__name__)


class EmbeddedEngine:
    """Engine over ``engines/embedded/weights`` (or another directory of the same layout)."""

    def __init__(
        self,
        weights_dir: str | Path | None = None,
        device: str = "auto",
        guidance_scale: float | None = None,
        max_batch: int = 32,
        quality_steps: dict[str, int] | None = None,
    ) -> None:
        from imageforge.engines.embedded.config import WEIGHTS_DIR, load_config

        self.weights_dir = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR
        if not (self.weights_dir / "model.json").is_file():
            raise ConfigurationError(f"no embedded model at {self.weights_dir} (model.json missing)")
        self.config = load_config(self.weights_dir)
        self.device = resolve_device(device)
        self.guidance_scale = guidance_scale if guidance_scale is not None else self.config.guidance_scale
        self._caps = EngineCapabilities(
            native_resolutions=((self.config.image_size, self.config.image_size),),
            max_batch=max_batch,
            alpha="native",
            min_steps=1,
            max_steps=200,
            quality_steps=check_quality_steps(quality_steps or self.config.quality_steps, 1, 200),
            img2img=True,
            inpaint=True,
            drops_requests=True,
            # An edit's first image is the one edited; up to k more replace the retrieved references (the config
            # is loaded above, so a text-only model, k = 0, takes the one image only).
            input_images=1 + self.config.reference_images,
            animation=True,
            planning=True,
        )
        self._text: Any = None
        self._sampler: Any = None
        self._uncond: Any = None
        self._upscaler: Any = None
        self._references: Any = None

    @property
    def capabilities(self) -> EngineCapabilities:
        return self._caps

    def load(self) -> None:
        if self._sampler is not None:
            return
        from imageforge.engines.embedded.network import load_unet
        from imageforge.engines.embedded.sampler import Sampler
        from imageforge.engines.embedded.text import TextEncoder

        self._text = TextEncoder(self.weights_dir, self.config.max_tokens, self.device)
        unet = load_unet(self.config, self.weights_dir).to(self.device)
        self._sampler = Sampler(unet, self.config, self.device)
        upscaler = json.loads((self.weights_dir / "model.json").read_text()).get("upscaler")
        if upscaler is not None:  # weights made before issue 5 have none: plain resampling then
            from imageforge.engines.embedded.upscaler import load_upscaler

            self._upscaler = load_upscaler(self.weights_dir, upscaler["config"]).to(self.device)
        if self.config.reference_images:
            from imageforge.engines.embedded.references import ReferenceIndex

            self._references = ReferenceIndex.load(self.weights_dir)
        self._uncond = self._text.encode([""])
        log.info("embedded model loaded from %s", self.weights_dir)

    def close(self) -> None:
        self._text = self._sampler = self._uncond = self._upscaler = self._references = None

    # -- generation ---------------------------------------------------------------------------------------

    def generate(
        self,
        batch: Sequence[GenerationParams],
        on_step: StepCallback | None = None,
        cancelled: Cancelled = never_cancelled,
        request_cancelled: RequestCancelled | None = None,
    ) -> list[GenerationResult]:
        """See :class:`~imageforge.engines.base.Engine`; ``request_cancelled`` drops single requests (their rows
        leave the running pass at the next step boundary; a later pass skips them)."""
        check_batch(batch, self._caps)
        self.load()
        p0 = batch[0]
        guidance = p0.guidance_scale if p0.guidance_scale is not None else self.guidance_scale
        embeds = [self._text.encode([p.prompt]) for p in batch]
        # Negative prompts replace the empty prompt on the unguided branch, so guidance steers away from them.
        negatives = [self._text.encode([p.negative_prompt]) if p.negative_prompt else self._uncond for p in batch]
        inits = [self._model_inputs(p) for p in batch]
        given = [self._given_references(p) for p in batch]  # an edit's own references, per request
        concepts = [None if g is not None else self._concept(p.prompt) for p, g in zip(batch, given, strict=True)]
        finals: list[list[Image.Image | None]] = [[None] * p.n for p in batch]
        chunks = plan_chunks(batch, self._caps.max_batch)
        steps_per_chunk = p0.denoising_steps
        done = 0
        dropped: set[int] = set()  # requests left through request_cancelled: never computed again

        def drop_cancelled() -> bool:
            """Poll ``request_cancelled``; true when a request was newly dropped."""
            if request_cancelled is None:
                return False
            new = [r for r in range(len(batch)) if r not in dropped and request_cancelled(r)]
            dropped.update(new)
            if len(dropped) == len(batch):
                raise GenerationCancelled(f"generation cancelled after {done} step(s)")
            return bool(new)

        def live(chunk: list[ImageSlot]) -> list[ImageSlot]:
            return [s for s in chunk if s.request not in dropped]

        def total_after(index: int, left: int) -> int:
            """Steps this call runs: those done, ``left`` more in pass ``index``, all of each later live pass."""
            return done + left + steps_per_chunk * sum(1 for c in chunks[index + 1 :] if live(c))

        # Where each image starts: its subject seed, or (complexity) the candidate planning found best.
        starts = {(r, i): p.subject_seed(i) for r, p in enumerate(batch) for i in range(p.n)}
        if p0.plan_candidates > 1:
            starts.update(self._plan(batch, embeds, negatives, inits, given, concepts, guidance, cancelled))
        current: dict[tuple[int, int], Any] = {}
        drop_cancelled()
        for index, chunk in enumerate(chunks):
            active = live(chunk)  # the images of this pass still computed, one per row of the sampler's batch
            if not active:
                continue
            cond = _stack_rows([embeds[s.request] for s in active])
            uncond = _stack_rows([negatives[s.request] for s in active]) if p0.negative_prompt else self._uncond
            init, mask = _stack_inits([inits[s.request] for s in active])
            prompts = [batch[s.request].prompt for s in active]
            # An animation's frames share its subject's choices (references); only their noise walks.
            seeds = [starts[s.request, s.image] for s in active]
            refs = self._reference_tensor(
                [concepts[s.request] for s in active], seeds, prompts, [given[s.request] for s in active]
            )
            noise = self._noise(batch, active, seeds)
            init, schedule, strength = self._schedule(p0.steps, p0.strength, init, refs, prompts)
            last: Any = None
            keep: list[int] | None = None
            run = self._sampler.run(cond, uncond, seeds, schedule, guidance, init, mask, strength, refs, noise)
            while True:
                try:
                    st = run.send(keep)  # None: go on with every row; a list: only those rows
                except StopIteration:
                    break
                keep = None
                done += 1
                for k, slot in enumerate(active):
                    current[(slot.request, slot.image)] = st.x0[k]
                if on_step is not None:
                    total = total_after(index, st.total - st.step)
                    on_step(StepPreview(done, total, self._previewer(batch, finals, dict(current), set(dropped))))
                raise_if_cancelled(cancelled, done)
                last = st.sample
                if drop_cancelled():
                    current = {key: x for key, x in current.items() if key[0] not in dropped}
                    rows = [k for k, slot in enumerate(active) if slot.request not in dropped]
                    if len(rows) < len(active):  # some of this pass's images are no longer wanted
                        active = [active[k] for k in rows]
                        if not active:  # none: leave the pass, on to the next one
                            run.close()
                            break
                        keep, last = rows, last[rows]  # the sampler drops the same rows before its next step
            for k, slot in enumerate(active):
                finals[slot.request][slot.image] = self._postprocess(batch[slot.request], last[k])
        return [
            make_result(p, [] if r in dropped else [im for im in imgs if im is not None], self._used_prompt(p.prompt),
                        drafts=_drafts(p))
            for r, (p, imgs) in enumerate(zip(batch, finals, strict=True))
        ]  # fmt: skip

    def _concept(self, prompt: str) -> int | None:
        """The nearest known concept to the prompt (retrieval conditioning), or None without an index."""
        if self._references is None:
            return None
        from imageforge.engines.embedded.references import retrieval_query

        concept = self._references.nearest(self._text.encode([retrieval_query(prompt)]).pooled[0])
        log.debug("prompt retrieves concept %r", self._references.labels[concept])
        return int(concept)

    def retrieved(self, prompt: str) -> tuple[str, list[Image.Image]] | None:
        """The concept a prompt retrieves and its reference images (galleries, debugging); None for a text-only
        model."""
        self.load()
        concept = self._concept(prompt)
        if concept is None:
            return None
        index = self._references
        own = np.flatnonzero(index.image_concept == concept)
        return str(index.labels[concept]), [premultiplied_to_image(index.images[i] / 255.0) for i in own]

    def _reference_start(self, refs: Any, prompts: list[str]) -> Any:
        """Where text-to-image starts: the mean of each image's references, recoloured to its prompt's colour."""
        import torch

        from imageforge.engines.embedded.colours import prompt_colour, recolour

        b, s = refs.shape[0], self.config.image_size
        start = refs.view(b, self.config.reference_images, self.config.channels, s, s).mean(1)  # (B, 4, S, S)
        # References already recoloured (reference_recolour) are not recoloured twice: value scaling compounds.
        colours = [None if self.config.reference_recolour else prompt_colour(p) for p in prompts]
        chosen = [i for i, c in enumerate(colours) if c is not None]
        if chosen:
            start = start.clone()
            start[chosen] = recolour(start[chosen], [str(colours[i]) for i in chosen])
        return torch.clamp(start, -1.0, 1.0)

    def _given_references(self, p: GenerationParams) -> Any:
        """The request's own reference images (``p.reference_images``) as its (4k, S, S) reference tensor, made
        as the index's tiles are (references.image_tile) and cycled through until all k slots are filled, so
        one image given fills every slot; None when it gives none (the references are retrieved)."""
        if not p.reference_images:
            return None
        from imageforge.engines.embedded.references import image_tile, tiles_tensor

        k, s = self.config.reference_images, self.config.image_size
        if len(p.reference_images) > k:  # validation refuses these (capabilities.input_images); never dropped
            raise ValueError(f"this model takes at most {k} reference image(s), got {len(p.reference_images)}")
        tiles = [image_tile(im, s) for im in p.reference_images]
        return tiles_tensor(np.stack([tiles[n % len(tiles)] for n in range(k)]))

    def _schedule(
        self, steps: int, strength: float, init: Any, refs: Any, prompts: list[str]
    ) -> tuple[Any, int, float]:
        """(init, schedule length, strength) of a pass: text-to-image with references starts from their mean
        (_reference_start) and runs exactly ``steps`` steps (quality = network evaluations) over the tail of a
        longer schedule that begins at the reference_start noise level."""
        if init is None and refs is not None and self.config.reference_start < 1.0:
            schedule = math.ceil(steps / self.config.reference_start)
            # The sampler runs int(schedule * strength) == steps.
            return self._reference_start(refs, prompts), schedule, (steps + 0.5) / schedule
        return init, steps, strength

    def _noise(self, batch: Sequence[GenerationParams], active: list[ImageSlot], starts: list[int]) -> Any:
        """The starting noise of a pass's rows: an animation's frames on their walk around their subject's start,
        other images by their start seed."""
        import torch

        rows = []
        for slot, start in zip(active, starts, strict=True):
            p = batch[slot.request]
            if p.frames:
                rows.append(self._sampler.walk_noise(start, slot.image % p.frames, p.frames))
            else:
                rows.append(self._sampler.initial_noise([start])[0])
        return torch.stack(rows)

    def _plan(
        self,
        batch: Sequence[GenerationParams],
        embeds: list[Any],
        negatives: list[Any],
        inits: list[tuple[Any, Any]],
        given: list[Any],
        concepts: list[int | None],
        guidance: float,
        cancelled: Cancelled,
    ) -> dict[tuple[int, int], int]:
        """Planning (complexity): for every image (every animation), draft ``plan_candidates`` candidate starts
        (candidate j of subject seed s is s + j * PLAN_STRIDE, so candidate 0 is the unplanned image), each a full
        short sampling run of PLAN_DRAFT_STEPS steps with its own noise and its own references, score the drafts
        with the model's own prompt likelihood (Sampler.alignment), and return (request, image) -> the winning
        start for every image. Drafts run in passes of ``max_batch`` rows; a row's score depends on its own
        request only, so batching changes a plan only where float rounding of another batch size flips a near
        tie. ``cancelled`` is polled after every draft step."""
        import torch

        p0 = batch[0]
        k = p0.plan_candidates
        draft_steps = min(p0.steps, PLAN_DRAFT_STEPS)
        while int(draft_steps * p0.strength) < 1:  # an edit at a low strength still drafts at least one step
            draft_steps += 1
        subjects = [(r, i) for r, p in enumerate(batch) for i in range(0, p.n, p.frames or 1)]
        rows = [(r, i, batch[r].subject_seed(i) + j * PLAN_STRIDE) for r, i in subjects for j in range(k)]
        scores: list[float] = []
        for lo in range(0, len(rows), self._caps.max_batch):
            part = rows[lo : lo + self._caps.max_batch]
            requests = [r for r, _, _ in part]
            seeds = [seed for _, _, seed in part]
            prompts = [batch[r].prompt for r in requests]
            cond = _stack_rows([embeds[r] for r in requests])
            uncond = _stack_rows([negatives[r] for r in requests]) if p0.negative_prompt else self._uncond
            init, mask = _stack_inits([inits[r] for r in requests])
            refs = self._reference_tensor([concepts[r] for r in requests], seeds, prompts, [given[r] for r in requests])
            init, schedule, strength = self._schedule(draft_steps, p0.strength, init, refs, prompts)
            noise = self._sampler.initial_noise(seeds)
            last: Any = None
            for st in self._sampler.run(cond, uncond, seeds, schedule, guidance, init, mask, strength, refs, noise):
                raise_if_cancelled(cancelled, 0)
                last = st.sample
            scores.extend(self._sampler.alignment(last, cond, uncond, refs).tolist())
        table = torch.tensor(scores).view(len(subjects), k)
        best = table.argmax(dim=1).tolist()
        starts: dict[tuple[int, int], int] = {}
        for (r, i), j in zip(subjects, best, strict=True):
            p = batch[r]
            for image in range(i, i + (p.frames or 1)):
                starts[r, image] = p.subject_seed(i) + j * PLAN_STRIDE
        log.debug("planning: %d candidates per image, chose %s (scores %s)", k, best, table.tolist())
        return starts

    def _reference_tensor(
        self, concepts: list[int | None], seeds: list[int], prompts: list[str], given: list[Any] | None = None
    ) -> Any:
        """(B, 4k, S, S) reference images, each image's own choice of art styles by its seed, or the request's
        own references where ``given[i]`` holds them (_given_references), recoloured to the prompt's colour word
        when the model was trained so; None for a text-only model. Every row is made from its own request only
        (retrieval by its seed, recolouring per image), so a batched image equals the same image made alone."""
        if self._references is None:
            return None
        import torch

        from imageforge.engines.embedded.colours import prompt_colour, recolour

        k, index, c, s = self.config.reference_images, self._references, self.config.channels, self.config.image_size
        refs = []
        for row, (concept, seed, prompt) in enumerate(zip(concepts, seeds, prompts, strict=True)):
            own = given[row] if given is not None else None
            x = own if own is not None else index.tensor(index.pick(concept, seed, k))  # (4k, S, S)
            colour = prompt_colour(prompt) if self.config.reference_recolour else None
            if colour is not None:
                x = recolour(x.view(k, c, s, s), [colour] * k).flatten(0, 1)
            refs.append(x)
        return torch.stack(refs)

    def _used_prompt(self, prompt: str) -> str:
        """The part of the prompt the text encoder saw (it truncates to ``max_tokens``)."""
        return str(self._text.truncate(prompt))

    def _previewer(
        self,
        batch: Sequence[GenerationParams],
        finals: list[list[Image.Image | None]],
        current: dict[tuple[int, int], Any],
        dropped: set[int],
    ) -> Callable[[int], list[Image.Image]]:
        """Previews of a request: finished images as they are, images in flight as their x0 estimate. Images of
        a later chunk (only when the batch exceeds ``max_batch``) are not in the list yet; a dropped request has
        none."""

        def preview(request_index: int) -> list[Image.Image]:
            if request_index in dropped:
                return []
            p = batch[request_index]
            out = []
            for i in range(p.n):
                done_img = finals[request_index][i]
                if done_img is not None:
                    out.append(done_img)
                elif (request_index, i) in current:
                    out.append(self._postprocess(p, current[(request_index, i)]))
            return out

        return preview

    def _model_inputs(self, p: GenerationParams) -> tuple[Any, Any]:
        """Init image (and mask) at model resolution: the centred square, area-averaged, premultiplied, and
        recoloured to the prompt's colour word when it names one (inpainting: inside the mask only)."""
        import torch

        from imageforge.engines.embedded.colours import dominant_colour, prompt_colour, recolour

        if p.init_image is None:
            return None, None
        s = self.config.image_size
        box = square_region(p.width, p.height)
        init = p.init_image.convert("RGBA").resize((p.width, p.height), Image.Resampling.LANCZOS).crop(box)
        square = init.resize((s, s), Image.Resampling.BOX)
        x = torch.from_numpy(image_to_premultiplied(square)).permute(2, 0, 1) * 2.0 - 1.0  # (4, S, S)
        m = None
        if p.mask is not None:
            m_full = p.mask.convert("L").resize((p.width, p.height), Image.Resampling.BILINEAR).crop(box)
            m_small = np.asarray(m_full.resize((s, s), Image.Resampling.BOX), dtype=np.float32) / 255.0
            m = torch.from_numpy(m_small)[None]  # (1, S, S)
        # SDEdit keeps the init image's colours: even at strength 0.85 the noised init still carries its hues,
        # so "a blue heart" over a red heart comes out red. When the prompt names one colour, the init starts in
        # that colour instead, recoloured as text-to-image recolours its reference start (_reference_start).
        # Inpainting recolours the masked part only; the sampler takes the kept region from this tensor, so it
        # stays the original pixels. Left alone: an init that already reads as the colour (recolouring it to its
        # own colour would still shift its values), and light retouches below RECOLOUR_MIN_STRENGTH, which keep
        # the init's look, colours included. Per image, so batching cannot change the result.
        colour = prompt_colour(p.prompt) if p.strength >= RECOLOUR_MIN_STRENGTH else None
        if colour is not None and dominant_colour(square) != colour:
            recoloured = recolour(x[None], [colour])[0]
            x = recoloured if m is None else m * recoloured + (1 - m) * x
        return x, m

    def _postprocess(self, p: GenerationParams, x: Any) -> Image.Image:
        """(C, S, S) model output in [-1, 1] -> the final image at exactly p.width x p.height."""
        x = (x.float().clamp(-1, 1) + 1) / 2  # (4, S, S) premultiplied in [0, 1]
        if self._upscaler is not None and max(p.width, p.height) > x.shape[-1]:
            import torch

            with torch.inference_mode():
                x = self._upscaler(x[None].to(self.device))[0]  # (4, 4S, 4S): crisp edges, not resampled blur
        arr = _clean_alpha(x.permute(1, 2, 0).cpu().numpy())  # (S', S', 4) premultiplied
        art = fit_square(premultiplied_to_image(arr), p.width, p.height)
        if p.init_image is not None:
            original = p.init_image.convert("RGBA").resize((p.width, p.height), Image.Resampling.LANCZOS)
            # The model re-draws only the centred square it sees: img2img changes that square, inpainting the
            # masked part of it; everything outside keeps the original (docs/embedded-model.md, non-square sizes).
            mask = Image.new("L", (p.width, p.height), 0)
            mask.paste(255, square_region(p.width, p.height))
            if p.mask is not None:
                masked = p.mask.convert("L").resize((p.width, p.height), Image.Resampling.BILINEAR)
                mask = ImageChops.multiply(mask, masked)
            art = blend(art, original, mask)
        return flatten(art, p.background)


# Planning (GenerationParams.plan_candidates): a candidate's draft runs this many steps (fewer when the request
# itself asks for fewer), enough for the drawing's shape, colours and layout to be settled. Candidate j of seed s
# starts from s + j * PLAN_STRIDE. torch's CPU generator keeps only a seed's low 32 bits, so the stride is an odd
# constant (2^32 / golden ratio) whose first multiples differ there from each other and from the few seeds
# next to s that the request's other images use.
PLAN_DRAFT_STEPS = 8
PLAN_STRIDE = 0x9E3779B1

# Image-to-image and inpainting from this strength on recolour the init image to the prompt's colour word
# (_model_inputs); the Responses edits run at 0.45 and 0.7 (serving/responses.py, EDIT_STRENGTH).
RECOLOUR_MIN_STRENGTH = 0.4

# Alpha below ALPHA_LOW is noise around the drawing (transparent), above ALPHA_HIGH the drawing (opaque); between
# them the edge, stretched to the full range. Emoji art is opaque shapes on nothing, so a faint haze or a slightly
# see-through body are sampling noise, not intent; the anti-aliased edge itself survives.
ALPHA_LOW, ALPHA_HIGH = 0.15, 0.85


def _clean_alpha(arr: np.ndarray) -> np.ndarray:
    """Premultiplied (H, W, 4) in [0, 1] with alpha's noise floor and ceiling snapped to 0 and 1, colour kept."""
    a = arr[..., 3:4]
    clean = np.clip((a - ALPHA_LOW) / (ALPHA_HIGH - ALPHA_LOW), 0.0, 1.0)
    scale = np.where(a > 1e-4, clean / np.maximum(a, 1e-4), 0.0)  # premultiplied colour follows its alpha
    return np.concatenate([np.clip(arr[..., :3] * scale, 0.0, clean), clean], axis=-1)


def _drafts(p: GenerationParams) -> int:
    """Candidate drafts planning runs for a request: one per candidate, per image (per animation for a gif)."""
    return 0 if p.plan_candidates == 1 else p.plan_candidates * (p.n // (p.frames or 1))


def _stack_rows(embeds: list[Any]) -> Any:
    import torch

    from imageforge.engines.embedded.text import TextEmbedding

    return TextEmbedding(
        tokens=torch.cat([e.tokens for e in embeds]),
        mask=torch.cat([e.mask for e in embeds]),
        pooled=torch.cat([e.pooled for e in embeds]),
    )


def _stack_inits(items: list[tuple[Any, Any]]) -> tuple[Any, Any]:
    import torch

    if items[0][0] is None:
        return None, None
    init = torch.stack([x for x, _ in items])
    mask = None if items[0][1] is None else torch.stack([m for _, m in items])
    return init, mask
