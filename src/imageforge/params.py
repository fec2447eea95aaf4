"""Internal, framework-free types of one generation: what validation produces and what engines consume.

No pydantic wire model ever reaches an engine (DESIGN.md §4.1): ``validation.resolve`` (or the CLI through it)
builds a frozen :class:`GenerationParams`, the engine returns a :class:`GenerationResult`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = [
    "AlphaSupport",
    "Background",
    "BatchKey",
    "EngineCapabilities",
    "GenerationMode",
    "GenerationParams",
    "GenerationResult",
    "StepCallback",
    "StepPreview",
]

AlphaSupport = Literal["native", "matte", "none"]
Background = Literal["transparent", "opaque"]
GenerationMode = Literal["text2img", "img2img", "inpaint"]


@dataclass(frozen=True)
class BatchKey:
    """Requests with equal keys can share one engine batch (same shapes and the same number of steps)."""

    width: int
    height: int
    steps: int
    guidance_scale: float | None
    mode: GenerationMode
    strength: float
    negative_prompt: bool  # engines condition the unguided branch differently with one
    plan_candidates: int = 1  # planning work differs (and is costed apart) by the number of candidates


@dataclass(frozen=True)
class GenerationParams:
    """One fully resolved request: every value is decided, nothing is ``auto``.

    Image ``i`` of the request is drawn with its own generator seeded ``seed + i``, so a request gives the same
    images whether it runs alone or batched with others.

    ``reference_images`` are an edit's further input images (after the first, which is ``init_image``): RGBA
    images of what to draw, for engines that condition on reference images (``EngineCapabilities.input_images``
    says how many an engine takes; the embedded model uses them in place of the ones it would retrieve).
    """

    prompt: str
    width: int
    height: int
    steps: int
    seed: int
    n: int = 1
    background: Background = "opaque"
    guidance_scale: float | None = None  # None: the engine's own default
    negative_prompt: str | None = None
    # Image-to-image and inpainting. ``mask`` is mode "L" at the init image's size: 255 = repaint, 0 = keep.
    init_image: Image | None = field(default=None, compare=False)
    mask: Image | None = field(default=None, compare=False)
    reference_images: tuple[Image, ...] = field(default=(), compare=False)  # only with an init_image
    strength: float = 1.0  # share of the noise schedule re-run over the init image (img2img/inpaint)
    request_id: str = ""
    # Animations (output_format "gif"): with ``frames`` > 0 the n images are n // frames looping animations of
    # ``frames`` frames each. Animation a's subject seed is s = seed + a * frames; its frame f starts from the noise
    # cos(t) z(s) + sin(t) z(s + 1), t = 2 pi f / frames, a closed circle through noise space (every point is still
    # unit Gaussian noise), and everything else the engine chooses by seed (references) uses s, so the subject
    # stays while the drawing moves. Frame 0 is the still image seed s gives.
    frames: int = 0
    # Planning (the API's ``complexity``): before drawing, an engine with ``capabilities.planning`` drafts this many
    # candidate starts per image (or per animation) and draws the one that its own model scores as the best fit to
    # the prompt; 1 draws from the seed directly.
    plan_candidates: int = 1

    def __post_init__(self) -> None:
        # Engines trust these invariants; validation is what reports them to clients with a named parameter.
        if self.width < 1 or self.height < 1 or self.n < 1 or self.steps < 1:
            raise ValueError(f"invalid GenerationParams: {self.width}x{self.height}, n={self.n}, steps={self.steps}")
        if self.mask is not None and self.init_image is None:
            raise ValueError("a mask needs an init_image")
        object.__setattr__(self, "reference_images", tuple(self.reference_images))  # a list is taken too
        if self.reference_images and self.init_image is None:
            raise ValueError("reference_images need an init_image (they are an edit's further input images)")
        if not 0.0 < self.strength <= 1.0:
            raise ValueError(f"strength must be in (0, 1], got {self.strength}")
        if self.frames < 0 or self.frames == 1 or (self.frames and self.n % self.frames):
            raise ValueError(f"frames must be 0 or at least 2 and divide n; got frames={self.frames}, n={self.n}")
        if self.plan_candidates < 1:
            raise ValueError(f"plan_candidates must be at least 1, got {self.plan_candidates}")
        if self.init_image is not None and int(self.steps * self.strength) < 1:
            raise ValueError(f"steps * strength must be at least 1 (steps={self.steps}, strength={self.strength})")

    @property
    def mode(self) -> GenerationMode:
        if self.init_image is None:
            return "text2img"
        return "img2img" if self.mask is None else "inpaint"

    @property
    def denoising_steps(self) -> int:
        """Steps actually run: all of them from noise; ``int(steps * strength)`` from an init image, as diffusers'
        image-to-image pipelines count them (``__post_init__`` guarantees at least one)."""
        if self.init_image is None:
            return self.steps
        return int(self.steps * self.strength)

    @property
    def animation(self) -> bool:
        return self.frames > 0

    def subject_seed(self, image: int) -> int:
        """The seed image ``image`` is drawn from: its own (seed + image), or its animation's subject seed."""
        if not self.frames:
            return self.seed + image
        return self.seed + (image // self.frames) * self.frames

    def seeds(self) -> list[int]:
        return [self.seed + i for i in range(self.n)]

    def batch_key(self) -> BatchKey:
        strength = self.strength if self.mode != "text2img" else 1.0
        return BatchKey(
            self.width,
            self.height,
            self.steps,
            self.guidance_scale,
            self.mode,
            strength,
            bool(self.negative_prompt),
            self.plan_candidates,
        )


@dataclass(frozen=True)
class GenerationResult:
    """The images of one request, in seed order: RGBA where transparency was asked for, RGB otherwise."""

    images: tuple[Image, ...]
    seeds: tuple[int, ...]
    steps: int
    prompt: str  # the prompt the engine actually conditioned on (after any truncation it reports)
    drafts: int = 0  # candidate drafts planning ran for this request (plan_candidates per image or animation)


@dataclass(frozen=True)
class StepPreview:
    """Progress of a batch after a denoising step; previews are computed only when asked for."""

    step: int  # 1-based: this many steps are done
    total_steps: int
    _preview: Callable[[int], list[Image]] = field(repr=False)

    def preview(self, request_index: int) -> list[Image]:
        """Images of the current estimate of the clean image for request ``request_index`` of the batch,
        at the requested size, RGBA where transparency was asked for."""
        return self._preview(request_index)


StepCallback = Callable[[StepPreview], None]


@dataclass(frozen=True)
class EngineCapabilities:
    """What an engine can do, as data; validation and the scheduler read it, nothing probes engines."""

    # Resolutions the network itself works at; other sizes are made from these (resampled or padded).
    native_resolutions: tuple[tuple[int, int], ...]
    # Largest number of images one ``generate`` call runs through the network together.
    max_batch: int
    # "native": the model draws alpha; "matte": alpha is keyed out of a plain background; "none": opaque only.
    alpha: AlphaSupport
    min_steps: int
    max_steps: int
    # API quality -> denoising steps ("low", "medium", "high"); written down in docs/cli.md per engine.
    quality_steps: Mapping[str, int]
    img2img: bool
    inpaint: bool
    # Output width/height must be multiples of this (1 = any size; the embedded model resamples).
    size_multiple: int = 1
    max_pixels: int = 3840 * 2160
    # The engine accepts ``request_cancelled`` in ``generate`` and stops computing a cancelled request's images at
    # the next step boundary (the others go on undisturbed); the request's result then has ``images=()``.
    drops_requests: bool = False
    # How many input images an edit may give: the first is the image edited (``GenerationParams.init_image``); an
    # engine that uses more (as references, ``GenerationParams.reference_images``) says so. More are refused with
    # a 400 naming this limit, never dropped.
    input_images: int = 1
    # The engine honours ``GenerationParams.frames`` (a noise walk); without it GIF output is refused.
    animation: bool = False
    # The engine honours ``GenerationParams.plan_candidates`` (complexity medium/high); without it they are refused.
    planning: bool = False
