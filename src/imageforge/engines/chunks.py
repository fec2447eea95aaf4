"""Splitting a batch's images into network passes of at most ``max_batch`` images."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from imageforge.params import GenerationParams

__all__ = ["ImageSlot", "plan_chunks"]


@dataclass(frozen=True)
class ImageSlot:
    request: int  # index of the request in the batch
    image: int  # index of the image within the request (its seed is ``seed + image``)


def plan_chunks(batch: Sequence[GenerationParams], max_batch: int) -> list[list[ImageSlot]]:
    """All images of the batch in request order, cut into consecutive passes of at most ``max_batch``.

    Seeds are per image, so how images fall into passes never changes what any image looks like.
    """
    slots = [ImageSlot(r, i) for r, p in enumerate(batch) for i in range(p.n)]
    return [slots[k : k + max_batch] for k in range(0, len(slots), max_batch)]
