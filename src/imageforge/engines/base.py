"""The narrow interface every engine implements, and the capabilities it declares as data.

An engine is owned by one worker (DESIGN.md §1): ``load()`` once, then ``generate(batch, on_step, cancelled)`` from
that worker's thread, then ``close()``. Engines know nothing of HTTP or wire models; they take frozen
:class:`~imageforge.params.GenerationParams` and return :class:`~imageforge.params.GenerationResult` s.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from imageforge.errors import ConfigurationError, GenerationCancelled, InvalidRequestError
from imageforge.params import (
    AlphaSupport,
    EngineCapabilities,
    GenerationParams,
    GenerationResult,
    StepCallback,
)

__all__ = [
    "QUALITY_KEYS",
    "AlphaSupport",
    "Cancelled",
    "Engine",
    "EngineCapabilities",
    "EngineFactory",
    "RequestCancelled",
    "check_batch",
    "check_quality_steps",
    "make_result",
    "never_cancelled",
    "raise_if_cancelled",
    "resolve_device",
]

Cancelled = Callable[[], bool]
# Index of a request in the batch -> whether that request is cancelled (engines with ``drops_requests``).
RequestCancelled = Callable[[int], bool]


def never_cancelled() -> bool:
    return False


def resolve_device(device: str) -> str:
    """ "auto" -> "cuda" when torch sees a GPU, else "cpu"; anything else is passed through."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class Engine(Protocol):
    """An image generator behind ImageForge's scheduler."""

    @property
    def capabilities(self) -> EngineCapabilities: ...

    def load(self) -> None:
        """Load weights (blocking; called once from the owning worker before the first ``generate``)."""

    def generate(
        self,
        batch: Sequence[GenerationParams],
        on_step: StepCallback | None = None,
        cancelled: Cancelled = never_cancelled,
    ) -> list[GenerationResult]:
        """Run one batch of compatible requests (equal ``batch_key()``); one result per request, in order.

        ``on_step`` is called after every denoising step; ``cancelled`` is polled between steps and, when it
        returns true, the engine stops at once and raises :class:`~imageforge.errors.GenerationCancelled`.

        Engines whose capabilities say ``drops_requests=True`` also take a keyword argument
        ``request_cancelled: RequestCancelled | None = None`` (index of a request in ``batch`` -> whether it is
        cancelled); callers pass it only to such engines, so the signature above stays the common ground.
        It is polled at every step boundary (after ``on_step``, after ``cancelled``) and before each pass
        of the network over a new chunk of images. Once it has returned true for a request, that request is
        dropped for the rest of the call: its images are no longer computed (its rows leave the running pass; a
        later pass holding only its images is skipped), its preview is empty, and its result, still at its
        place in the returned list, has ``images=()`` (seeds, steps and prompt as asked). The other requests'
        images are the same as without the drop, up to float rounding of a smaller batch. When every request of
        the batch is dropped the engine raises :class:`~imageforge.errors.GenerationCancelled`, as for
        ``cancelled``. ``StepPreview.step`` counts the steps run so far, one more at every call; its
        ``total_steps`` is the number the call still expects to reach and shrinks when a skipped pass no longer
        has to run (it never changes for a batch that fits one pass).
        """
        ...

    def close(self) -> None:
        """Free the weights and any device memory."""


@runtime_checkable
class EngineFactory(Protocol):
    """What the registry holds: ``factory(**options) -> Engine`` (an engine class is one)."""

    def __call__(self, **options: Any) -> Engine: ...


def check_batch(batch: Sequence[GenerationParams], caps: EngineCapabilities) -> None:
    """Reject a batch the engine cannot run. Validation normally catches these first, with the API's wording;
    this is the engine-side guard so a misuse never becomes a wrong image."""
    if not batch:
        raise ValueError("empty batch")
    keys = {p.batch_key() for p in batch}
    if len(keys) != 1:
        raise ValueError(f"incompatible requests in one batch: {keys}")
    p = batch[0]
    if not caps.min_steps <= p.steps <= caps.max_steps:
        raise InvalidRequestError(
            f"steps must be between {caps.min_steps} and {caps.max_steps} for this engine; got {p.steps}.",
            param="steps",
        )
    if p.width % caps.size_multiple or p.height % caps.size_multiple:
        raise InvalidRequestError(
            f"size must have both sides divisible by {caps.size_multiple} for this model; got {p.width}x{p.height}.",
            param="size",
        )
    if p.width * p.height > caps.max_pixels:
        raise InvalidRequestError(
            f"size {p.width}x{p.height} exceeds this model's limit of {caps.max_pixels} pixels.", param="size"
        )
    if (p.mode == "img2img" and not caps.img2img) or (p.mode == "inpaint" and not caps.inpaint):
        raise InvalidRequestError(f"this model does not support {p.mode}.", param="image")
    if caps.alpha == "none" and any(q.background == "transparent" for q in batch):
        raise InvalidRequestError("this model cannot produce transparent backgrounds.", param="background")


QUALITY_KEYS = ("low", "medium", "high")
EXTRA_QUALITY_KEYS = ("xhigh", "max")  # optional in an engine's table (check_quality_steps derives them)


def check_quality_steps(table: Mapping[str, int], min_steps: int, max_steps: int) -> dict[str, int]:
    """An engine's quality -> steps table: low/medium/high, each within the engine's step range, and the
    gpt-image-2.5 qualities ``xhigh`` and ``max``, which an engine may give and otherwise get 1.5x and 2x high's
    steps (at most ``max_steps``): more denoising work, never a silent alias of ``high``."""
    given = set(table)
    if not set(QUALITY_KEYS) <= given <= set(QUALITY_KEYS) | set(EXTRA_QUALITY_KEYS):
        raise ConfigurationError(
            f"quality_steps must give {', '.join(QUALITY_KEYS)} (and may give {', '.join(EXTRA_QUALITY_KEYS)}); "
            f"got {dict(table)}"
        )
    for key, steps in table.items():
        if isinstance(steps, bool) or not isinstance(steps, int) or not min_steps <= steps <= max_steps:
            raise ConfigurationError(
                f"quality_steps[{key!r}] must be an integer from {min_steps} to {max_steps}; got {steps!r}"
            )
    out = {k: table[k] for k in QUALITY_KEYS}
    out["xhigh"] = table.get("xhigh", min(max_steps, math.ceil(out["high"] * 1.5)))
    out["max"] = table.get("max", min(max_steps, out["high"] * 2))
    return out


def raise_if_cancelled(cancelled: Cancelled, step: int) -> None:
    if cancelled():
        raise GenerationCancelled(f"generation cancelled after {step} step(s)")


def make_result(
    p: GenerationParams, images: Sequence[Any], prompt: str | None = None, drafts: int = 0
) -> GenerationResult:
    return GenerationResult(
        images=tuple(images), seeds=tuple(p.seeds()), steps=p.steps, prompt=prompt or p.prompt, drafts=drafts
    )
