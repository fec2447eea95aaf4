"""What the GPU test modules share: where engines run, the dtypes under test, pixel comparisons."""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["DEVICE", "HALF_DTYPES", "mean_diff", "pixels"]

# Every engine under test runs here; the dtypes are the two half precisions a GPU serves in.
DEVICE = "cuda"
HALF_DTYPES = ("float16", "bfloat16")


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.float64)


def mean_diff(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference of two images' RGB values, on the 0-255 scale."""
    return float(np.abs(pixels(a) - pixels(b)).mean())
