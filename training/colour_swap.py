"""Colour-swap augmentation: teach colour words by recolouring images whose label names one hue.

A concept labelled with exactly one hue word ("red heart", "green circle", "blue book") is redrawn in another hue
by rotating the hue of every pixel (HSV; greys, black outlines and white highlights have no saturation and stay as
they are), and its caption names the new hue ("blue heart"). The data set has few such images per colour (one
blue heart per emoji style, against many red ones), so without this the model learns "hearts are red" and
treats the colour word as noise.
"""

from __future__ import annotations

import torch

# Hue of each colour word as a fraction of the colour wheel (HSV), as the emoji sets draw them.
HUES: dict[str, float] = {
    "red": 0 / 360,
    "orange": 30 / 360,
    "yellow": 52 / 360,
    "green": 120 / 360,
    "blue": 215 / 360,
    "purple": 275 / 360,
}


def hue_word(label: str) -> str | None:
    """The single hue word of a label, or None (no hue word, or several)."""
    found = [w for w in label.split() if w in HUES]
    return found[0] if len(found) == 1 else None


def swapped_captions(label: str, word: str) -> dict[str, list[str]]:
    """Target hue -> captions for the label redrawn in that hue."""
    out = {}
    for target in HUES:
        if target != word:
            new = " ".join(target if w == word else w for w in label.split())
            article = "an" if new[0] in "aeiou" else "a"
            out[target] = [new, f"{article} {new}"]
    return out


def rotate_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the hue of premultiplied RGBA images in [-1, 1] by ``shift`` turns.

    x: (B, 4, H, W); shift: (B,). Alpha is untouched; colour is un-premultiplied, rotated, re-premultiplied.
    """
    u = (x + 1) / 2  # (B, 4, H, W) in [0, 1]
    a = u[:, 3:4]
    rgb = (u[:, :3] / a.clamp(min=1e-4)).clamp(0, 1)  # straight colour, (B, 3, H, W)
    r, g, b = rgb.unbind(1)
    maxc, _ = rgb.max(1)
    minc, _ = rgb.min(1)
    delta = maxc - minc
    s = torch.where(maxc > 0, delta / maxc.clamp(min=1e-6), torch.zeros_like(maxc))
    d = delta.clamp(min=1e-6)
    h = torch.where(maxc == r, (g - b) / d, torch.where(maxc == g, 2 + (b - r) / d, 4 + (r - g) / d))
    h = (h / 6 + shift.view(-1, 1, 1)) % 1.0
    # HSV -> RGB (the standard six-sector formula, vectorised).
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], dim=1)  # (B, 3, H, W)
    v = maxc.unsqueeze(1)
    out = v - v * s.unsqueeze(1) * torch.clamp(torch.minimum(k, 4 - k), 0, 1)
    return torch.cat([out * a, a], dim=1) * 2 - 1
