"""What ``moderation: "auto" | "low"`` blocks: a threshold per category and level, for prompts and for images.

Prompt scores come from ``prompts.py`` (severe terms score 1.0, one moderate term 0.6, weak terms 0.25 each);
image scores are the open_nsfw probability (``images.py``). Defaults:

============================  ======  =====  ==========================================================
check                         auto    low    so ``low`` lets through
============================  ======  =====  ==========================================================
prompt: each category         0.5     0.9    nudity, gore, drug use, depictions of self-harm, hate symbols;
                                             it still blocks explicit acts, extreme gore, slurs, how-tos
prompt: ``sexual/minors``     0.5     0.5    nothing: never relaxed (``low`` cannot be set for it)
image: ``sexual``             0.5     0.8    images the classifier is less sure of
image: ``sexual/minors``      0.3     0.3    nothing: a minor in the prompt and an image scoring >= 0.3
============================  ======  =====  ==========================================================

Operators override thresholds per level (``moderation_auto`` / ``moderation_low`` settings; keys are the
category names, ``image`` and, for ``auto`` only, ``image/minors``). A threshold of ``off`` disables that check at
that level, except for ``sexual/minors`` and ``image/minors``, which can be tuned but never switched off or
relaxed by ``low``. DALL·E models, which have no ``moderation`` parameter, get the ``auto`` policy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from imageforge.errors import ConfigurationError

__all__ = ["CATEGORIES", "IMAGE_KEYS", "Level", "Policy"]

Level = Literal["auto", "low"]
CATEGORIES = ("sexual", "sexual/minors", "violence/graphic", "self-harm", "hate", "illicit")
IMAGE_KEYS = ("image", "image/minors")
_NEVER_RELAXED = ("sexual/minors", "image/minors")
_DEFAULTS: dict[str, dict[str, float]] = {
    "auto": {**dict.fromkeys(CATEGORIES, 0.5), "image": 0.5, "image/minors": 0.3},
    "low": {**dict.fromkeys(CATEGORIES, 0.9), "sexual/minors": 0.5, "image": 0.8, "image/minors": 0.3},
}


def _threshold(key: str, level: str, value: float | str) -> float:
    if value == "off":
        if key in _NEVER_RELAXED:
            raise ConfigurationError(f"moderation_{level}: {key} cannot be switched off")
        return math.inf
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"moderation_{level}: {key} must be a number in (0, 1] or 'off', not {value!r}"
        ) from None
    if not 0.0 < t <= 1.0:
        raise ConfigurationError(f"moderation_{level}: {key} must be in (0, 1] or 'off', not {t}")
    return t


@dataclass(frozen=True)
class Policy:
    thresholds: Mapping[str, Mapping[str, float]]  # level -> key (category, image, image/minors) -> threshold

    @classmethod
    def build(
        cls, auto: Mapping[str, float | str] | None = None, low: Mapping[str, float | str] | None = None
    ) -> Policy:
        """The defaults with an operator's overrides; unknown keys and relaxing ``sexual/minors`` are refused."""
        known = (*CATEGORIES, *IMAGE_KEYS)
        levels = {level: dict(values) for level, values in _DEFAULTS.items()}
        for level, overrides in (("auto", auto or {}), ("low", low or {})):
            for key, value in overrides.items():
                if key not in known:
                    raise ConfigurationError(f"moderation_{level}: unknown key {key!r}; known: {', '.join(known)}")
                if level == "low" and key in _NEVER_RELAXED:
                    raise ConfigurationError(
                        f"moderation_low: {key} is never relaxed; set it in moderation_auto (it applies to both)"
                    )
                levels[level][key] = _threshold(key, level, value)
        for key in _NEVER_RELAXED:  # low uses auto's threshold, so tuning auto tunes both
            levels["low"][key] = levels["auto"][key]
        return cls(levels)

    def prompt_categories(self, scores: Mapping[str, float], level: Level) -> list[str]:
        limits = self.thresholds[level]
        return [c for c in CATEGORIES if scores.get(c, 0.0) >= limits[c]]

    def image_categories(self, nsfw: float, level: Level, *, minor: bool) -> list[str]:
        limits = self.thresholds[level]
        out = []
        if nsfw >= limits["image"]:
            out.append("sexual")
        if minor and nsfw >= limits["image/minors"]:
            out.append("sexual/minors")
        return out
