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

Besides the current estimate (:meth:`CostModel.estimate`, the moving average: how long a call takes *now*, under
whatever load the machine carries), the model keeps the fastest that average has ever been
(:meth:`CostModel.reference`): what the call costs on an idle engine. Promises are made against the reference
(a request should finish within 1.5x of its *unloaded* time), the queue ahead is timed with the current
estimate. On a machine whose CPUs the server's own work also uses, a loaded engine is slower, and a promise
made against the loaded time would drift with the load.

Thread-safe: the worker records from its own thread, admission reads from the event loop's.
"""

from __future__ import annotations

import threading

from imageforge.params import BatchKey

__all__ = ["CostModel", "denoising_steps"]

_ALPHA = 0.3  # weight of the newest observation: a few calls follow a change of load, one outlier does not rule
Shape = tuple[int, int, str, float | None, bool, int]  # a batch key without its steps (width, height, mode, ...)


def denoising_steps(key: BatchKey) -> int:
    """Steps a call with this key runs (diffusers counts ``int(steps * strength)`` from an init image)."""
    return key.steps if key.mode == "text2img" else max(1, int(key.steps * key.strength))


def _shape(key: BatchKey) -> Shape:
    # Planning's drafts are work per image beyond the steps: a planned shape has its own per-step rate.
    return key.width, key.height, key.mode, key.guidance_scale, key.negative_prompt, key.plan_candidates


def _ema(old: float | None, new: float) -> float:
    return new if old is None else (1 - _ALPHA) * old + _ALPHA * new


class CostModel:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seconds: dict[tuple[BatchKey, int], float] = {}
        self._best: dict[tuple[BatchKey, int], float] = {}  # the lowest the average has been
        self._counts: dict[BatchKey, set[int]] = {}
        self._per_step_image: dict[Shape, float] = {}  # seconds per denoising step and image, by shape
        self._best_per_step_image: dict[Shape, float] = {}

    def observe(self, key: BatchKey, images: int, seconds: float) -> None:
        """Record a finished call of ``images`` images that took ``seconds``."""
        if images < 1 or seconds <= 0:
            return
        with self._lock:
            now = self._seconds[key, images] = _ema(self._seconds.get((key, images)), seconds)
            self._best[key, images] = min(now, self._best.get((key, images), now))
            self._counts.setdefault(key, set()).add(images)
            shape = _shape(key)
            rate = self._per_step_image[shape] = _ema(
                self._per_step_image.get(shape), seconds / (denoising_steps(key) * images)
            )
            self._best_per_step_image[shape] = min(rate, self._best_per_step_image.get(shape, rate))

    def estimate(self, key: BatchKey, images: int) -> float | None:
        """Seconds a call of ``images`` images with ``key`` should take now; ``None`` for a shape never run."""
        with self._lock:
            return self._lookup(key, images, self._seconds, self._per_step_image)

    def reference(self, key: BatchKey, images: int) -> float | None:
        """Seconds such a call takes on an idle engine (the fastest its average has been); ``None`` if never run."""
        with self._lock:
            return self._lookup(key, images, self._best, self._best_per_step_image)

    def _lookup(
        self,
        key: BatchKey,
        images: int,
        seconds: dict[tuple[BatchKey, int], float],
        per_step_image: dict[Shape, float],
    ) -> float | None:
        seen = seconds.get((key, images))
        if seen is not None:
            return seen
        counts = self._counts.get(key)
        if counts:
            nearest = min(counts, key=lambda c: (abs(c - images), -c))
            return seconds[key, nearest] * images / nearest
        rate = per_step_image.get(_shape(key))
        return None if rate is None else rate * denoising_steps(key) * images
