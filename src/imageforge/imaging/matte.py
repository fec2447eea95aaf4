"""A background matte for engines that cannot draw alpha: key out the plain background around the subject.

Used for ``background: "transparent"`` on engines whose capability is ``alpha="matte"`` (the diffusers engine,
which also asks its model for a plain background, see ``engines/diffusers.py``). Only background pixels that are
*connected to the image border* become transparent, so a white shirt inside the subject stays opaque. Edges get a
soft ramp, and their colour is un-mixed from the background (no white halo on dark backgrounds).
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

__all__ = ["matte"]


def matte(img: Image.Image, tolerance: float = 0.12, softness: float = 0.06) -> Image.Image:
    """RGB(A) image -> RGBA with the border-connected plain background made transparent.

    ``tolerance``: colour distance (0..1, Euclidean in RGB over sqrt(3)) under which a pixel counts as background;
    ``softness``: how far below ``tolerance`` background noise is ignored (distances under
    ``tolerance - softness`` are background for certain).
    """
    rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0  # (H, W, 3)
    h, w, _ = rgb.shape
    # 1. Background colour: the median of a thin frame around the image.
    k = max(1, min(h, w) // 50)
    frame = np.concatenate(
        [rgb[:k].reshape(-1, 3), rgb[-k:].reshape(-1, 3), rgb[:, :k].reshape(-1, 3), rgb[:, -k:].reshape(-1, 3)]
    )
    bg = np.median(frame, axis=0)
    dist = np.linalg.norm(rgb - bg, axis=-1) / np.sqrt(3.0)  # (H, W) in [0, 1]

    # 2. Background = pixels within tolerance that are connected to the border (connected-component labels).
    labels, _ = ndimage.label(dist < tolerance)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    background = np.isin(labels, border[border > 0])  # (H, W)

    # 3. Alpha. An edge pixel is a linear mix a*fg + (1-a)*bg, so its distance from bg is a times fg's; fg's
    #    distance is estimated as the largest distance in the 5x5 neighbourhood. Pixels far from any background
    #    stay fully opaque; distances below ``floor`` (noise in a plain background) count as zero.
    floor = tolerance - softness
    near_bg = ndimage.maximum_filter(background, size=5)
    local_fg = ndimage.maximum_filter(dist, size=5)
    coverage = np.clip((dist - floor) / np.maximum(local_fg - floor, 1e-3), 0.0, 1.0)
    alpha = np.where(background | near_bg, coverage, 1.0)[..., None]  # (H, W, 1)

    # 4. Un-mix the background from semi-transparent edge pixels: observed = a * fg + (1 - a) * bg.
    fg = np.where(alpha > 1e-3, (rgb - (1.0 - alpha) * bg) / np.maximum(alpha, 1e-3), 0.0)
    out = np.concatenate([np.clip(fg, 0.0, 1.0), alpha], axis=-1)
    return Image.fromarray(np.round(out * 255.0).astype(np.uint8), "RGBA")
