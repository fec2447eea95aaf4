"""Pixel plumbing shared by the engines: premultiplied arrays to images, exact output sizes, backgrounds.

Kept apart from ``encode.py`` (bytes out) so that engines can shape their images without knowing about formats.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from imageforge.params import Background

__all__ = [
    "OPAQUE_BACKGROUND",
    "blend",
    "fit_square",
    "flatten",
    "image_to_premultiplied",
    "premultiplied_to_image",
    "square_region",
]

# The colour transparent areas get when an opaque image is asked for (emoji art is drawn for light backgrounds).
OPAQUE_BACKGROUND = (255, 255, 255)


def premultiplied_to_image(rgba: NDArray[np.floating]) -> Image.Image:
    """(H, W, 4) premultiplied RGBA in [0, 1] -> straight-alpha RGBA image."""
    a = np.clip(rgba[..., 3:4], 0.0, 1.0)
    rgb = np.clip(rgba[..., :3], 0.0, None)
    rgb = np.minimum(rgb, a)  # a premultiplied colour can never exceed its alpha
    straight = np.where(a > 1e-4, rgb / np.maximum(a, 1e-4), 0.0)
    out = np.concatenate([straight, a], axis=-1)
    return Image.fromarray(np.round(out * 255.0).astype(np.uint8), "RGBA")


def image_to_premultiplied(img: Image.Image) -> NDArray[np.float32]:
    """Any image -> (H, W, 4) premultiplied RGBA float32 in [0, 1] (opaque if it has no alpha)."""
    arr = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
    arr[..., :3] *= arr[..., 3:4]
    return arr


def square_region(width: int, height: int) -> tuple[int, int, int, int]:
    """The centred square (left, top, right, bottom) of a width x height canvas that square art is drawn into."""
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def fit_square(img: Image.Image, width: int, height: int) -> Image.Image:
    """Resample square RGBA art into the centred square of a transparent width x height canvas.

    Pillow resamples RGBA in premultiplied space, so edges keep their colour. Non-square sizes get transparent
    margins (filled by :func:`flatten` for opaque output) rather than a stretched picture.
    """
    left, top, right, _ = square_region(width, height)
    side = right - left
    art = img if img.size == (side, side) else img.resize((side, side), Image.Resampling.LANCZOS)
    if (side, side) == (width, height):
        return art
    canvas = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    canvas.paste(art, (left, top))
    return canvas


def flatten(img: Image.Image, background: Background) -> Image.Image:
    """The final pixels for a background choice: RGBA kept for "transparent", composited to RGB for "opaque"."""
    if background == "transparent":
        return img.convert("RGBA")
    if img.mode not in ("RGBA", "LA", "PA"):
        return img.convert("RGB")
    base = Image.new("RGBA", img.size, (*OPAQUE_BACKGROUND, 255))
    return Image.alpha_composite(base, img.convert("RGBA")).convert("RGB")


def blend(generated: Image.Image, original: Image.Image, mask: Image.Image) -> Image.Image:
    """Inpainting's last step, at full resolution: ``mask`` (L, 255 = generated) picks between the two RGBA
    images in premultiplied space, so pixels outside the mask stay exactly the original's."""
    m = np.asarray(mask.convert("L"), dtype=np.float32)[..., None] / 255.0
    out = m * image_to_premultiplied(generated) + (1.0 - m) * image_to_premultiplied(original)
    result = premultiplied_to_image(out)
    # Where the mask is fully "keep", return the original's bytes exactly (no premultiply round trip).
    keep = Image.fromarray(((m[..., 0] <= 0.0) * 255).astype(np.uint8), "L")
    result.paste(original.convert("RGBA"), (0, 0), keep)
    return result
