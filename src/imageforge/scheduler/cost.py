"""What an engine call costs, in seconds, learned from the calls the engine made: the admission queue's clock.

The queue is bounded by time, not count (issue 15): a request is admitted only when the work queued ahead of it
can be done within its budget, and that needs an estimate of each batch's run time. Engines differ by orders of
magnitude (a 1-step SD-Turbo image on a GPU, 30 SDXL steps on a CPU), and none is linear in pixels at every size
(fixed costs dominate small images; the embedded model draws at its native size and upscales), so nothing is
assumed: each finished engine call is recorded as an exponential moving average of its wall time, and an
estimate comes from, in order:

1. calls with the same batch key (size, steps, mode, ...) and number of images;
2. the same batch key and the nearest other number of images, scaled linearly (batching makes a call cheaper
   per image, so scaling up overestimates a little and scaling down underestimates a little);
3. the same size and mode at another number of steps, scaled by the steps run and the images (another
   ``quality`` of the same size);
4. nothing: a shape the engine has never run has no estimate, and its first call measures it.

Thread-safe: the worker records from its own thread, admission reads from the event loop's.
"""

from __future__ import annotations

import threading

from imageforge.params import BatchKey

__all__ = ["CostModel", "denoising_steps"]

_ALPHA = 0.3  # weight of the newest observation: a few calls follow a change of load, one outlier does not rule
Shape = tuple[int, int, str, float | None, bool]  # a batch key without its steps (width, height, mode, ...)


def denoising_steps(key: BatchKey) -> int:
    """Steps a call with this key runs (diffusers counts ``int(steps * strength)`` from an init image)."""
    return key.steps if key.mode == "text2img" else max(1, int(key.steps * key.strength))


def _shape(key: BatchKey) -> Shape:
    return key.width, key.height, key.mode, key.guidance_scale, key.negative_prompt


def _ema(old: float | None, new: float) -> float:
    return new if old is None else (1 - _ALPHA) * old + _ALPHA * new


class CostModel:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seconds: dict[tuple[BatchKey, int], float] = {}
        self._counts: dict[BatchKey, set[int]] = {}
        self._per_step_image: dict[Shape, float] = {}  # seconds per denoising step and image, by shape

    def observe(self, key: BatchKey, images: int, seconds: float) -> None:
        """Record a finished call of ``images`` images that took ``seconds``."""
        if images < 1 or seconds <= 0:
            return
        with self._lock:
            self._seconds[key, images] = _ema(self._seconds.get((key, images)), seconds)
            self._counts.setdefault(key, set()).add(images)
            shape = _shape(key)
            rate = seconds / (denoising_steps(key) * images)
            self._per_step_image[shape] = _ema(self._per_step_image.get(shape), rate)

    def estimate(self, key: BatchKey, images: int) -> float | None:
        """Seconds a call of ``images`` images with ``key`` should take; ``None`` for a shape never run."""
        with self._lock:
            seen = self._seconds.get((key, images))
            if seen is not None:
                return seen
            counts = self._counts.get(key)
            if counts:
                nearest = min(counts, key=lambda c: (abs(c - images), -c))
                return self._seconds[key, nearest] * images / nearest
            rate = self._per_step_image.get(_shape(key))
            return None if rate is None else rate * denoising_steps(key) * images
