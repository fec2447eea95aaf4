"""Retrieval for the embedded model: the prompt's nearest known concept and its reference images.

Retrieval-augmented conditioning (as in Retrieval-Augmented Diffusion Models, KNN-Diffusion, Re-Imagen): the
denoiser sees, besides the text, a few 32 px images of the concept the prompt is nearest to. It is trained to draw
a concept in one art style from the *other* styles' images (training/train.py), so at sampling it draws a new
image of the concept rather than returning a stored one (BENCHMARKS.md measures the near-copy share).

The index ships in ``weights/references/`` (training/export.py writes it from the data set):

* ``index.safetensors``: ``caption_vectors`` (C, D) fp16, the text encoder's pooled vector of every training
  caption; ``caption_concept`` (C,) and ``image_concept`` (N,) int32;
* ``images.png``: the N reference images as an atlas of ``tile`` px tiles, premultiplied RGBA stored as is;
* ``index.json``: the concept labels and the atlas layout.

Colour adjectives are left out of the query: the object is retrieved, and the colour comes from the caption (the
denoiser is trained with recoloured targets whose references keep their own colours), so "a green cat" finds
the cat, not the green apple.

An edit may bring its own references instead (``GenerationParams.reference_images``, the input images after the
first): they are made into tiles exactly as the index's were (:func:`image_tile`) and fill the k slots in place of
the retrieved ones.

Sampling starts from the references too (``EmbeddedModelConfig.reference_start``): their mean, recoloured to the
prompt's colour word if it names one (colours.py), noised to that level of the schedule, as image-to-image
does. The references set the layout, the denoiser draws the picture.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import torch

from imageforge.engines.embedded.colours import colour_positions

__all__ = ["ReferenceIndex", "image_tile", "retrieval_query", "tiles_tensor", "write_index"]

_DIR = "references"
# Temperature of the soft maximum over a concept's captions (nearest); chosen on the development paraphrases
# (benchmarks/quality_prompts/paraphrases_dev.json), never on the benchmark's own set.
RETRIEVAL_TAU = 0.1


def retrieval_query(prompt: str) -> str:
    """The prompt without its colour adjectives ("a green cat" -> "a cat"; "an orange" stays)."""
    drop = set(colour_positions(prompt))
    return " ".join(w for i, w in enumerate(prompt.split()) if i not in drop)


def image_tile(img: Image.Image, size: int) -> np.ndarray:
    """An image as the index stores its tiles (training/build_dataset.py ``_render``): its centred square,
    premultiplied *before* resampling (no dark fringes from transparent pixels), area-averaged to ``size`` px and
    rounded to uint8; (S, S, 4). A tile of the index given back as an image comes out as that tile again."""
    rgba = img.convert("RGBA")
    w, h = rgba.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    arr = np.asarray(rgba.crop((left, top, left + side, top + side)), dtype=np.float32) / 255.0
    arr[..., :3] *= arr[..., 3:4]
    # BOX on float planes is the exact area average, fractional pixel coverage included (any side, not only
    # multiples of ``size``); PIL's own RGBA resampling premultiplies in 8 bits and un-premultiplies again.
    planes = [Image.fromarray(np.ascontiguousarray(arr[..., c]), "F").resize((size, size), Image.Resampling.BOX)
              for c in range(4)]  # fmt: skip
    small = np.stack([np.asarray(p, dtype=np.float32) for p in planes], axis=-1)
    return np.round(np.clip(small, 0.0, 1.0) * 255.0).astype(np.uint8)


def tiles_tensor(tiles: np.ndarray) -> torch.Tensor:
    """(k, S, S, 4) uint8 premultiplied tiles -> the conditioning tensor (4k, S, S) in [-1, 1]."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(tiles)).permute(0, 3, 1, 2).float() / 127.5 - 1.0  # (k, 4, S, S)
    return x.flatten(0, 1)


@dataclass(frozen=True)
class ReferenceIndex:
    caption_vectors: torch.Tensor  # (C, D) fp32, unit length
    caption_concept: np.ndarray  # (C,) concept of each caption
    images: np.ndarray  # (N, S, S, 4) uint8 premultiplied RGBA
    image_concept: np.ndarray  # (N,)
    labels: list[str]

    @classmethod
    def load(cls, weights_dir: Path) -> ReferenceIndex:
        from safetensors.torch import load_file

        root = weights_dir / _DIR
        meta = json.loads((root / "index.json").read_text())
        tensors = load_file(str(root / "index.safetensors"))
        with Image.open(root / "images.png") as atlas:
            grid = np.asarray(atlas.convert("RGBA"))  # (rows*S, cols*S, 4)
        s, cols, n = meta["tile"], meta["columns"], meta["count"]
        tiles = grid.reshape(grid.shape[0] // s, s, cols, s, 4).transpose(0, 2, 1, 3, 4).reshape(-1, s, s, 4)
        return cls(
            caption_vectors=tensors["caption_vectors"].float(),
            caption_concept=tensors["caption_concept"].numpy(),
            images=np.ascontiguousarray(tiles[:n]),
            image_concept=tensors["image_concept"].numpy(),
            labels=list(meta["labels"]),
        )

    def nearest(self, query: torch.Tensor) -> int:
        """The concept nearest to the pooled query vector (D,): a soft maximum over each concept's captions,
        ``tau * log(sum(exp(cos / tau)))``, so a concept several of whose captions match the prompt wins over one
        that matches by a single caption (on the development prompts, top-1 42.7 -> 49.3 % against the plain
        maximum; BENCHMARKS.md)."""
        import torch

        scores = self.caption_vectors @ query.float()  # (C,) cosine: both unit length
        owners = torch.from_numpy(self.caption_concept.astype(np.int64))
        mass = torch.zeros(len(self.labels)).scatter_add_(0, owners, torch.exp((scores - 1.0) / RETRIEVAL_TAU))
        return int(mass.argmax())

    def pick(self, concept: int, seed: int, k: int) -> np.ndarray:
        """``k`` of the concept's images (N index), chosen by ``seed`` as in training: distinct art styles while
        there are enough, then repeated."""
        own = [int(i) for i in np.flatnonzero(self.image_concept == concept)]
        random.Random(seed).shuffle(own)
        return np.array([own[n % len(own)] for n in range(k)])

    def tensor(self, picks: np.ndarray) -> torch.Tensor:
        """The picked images as one conditioning tensor (4k, S, S) in [-1, 1]."""
        return tiles_tensor(self.images[picks])


def write_index(
    weights_dir: Path,
    caption_vectors: torch.Tensor,
    caption_concept: np.ndarray,
    images: np.ndarray,
    image_concept: np.ndarray,
    labels: list[str],
    columns: int = 64,
) -> None:
    """Write ``weights_dir/references/`` (used by training/export.py)."""
    import torch
    from safetensors.torch import save_file

    root = weights_dir / _DIR
    root.mkdir(parents=True, exist_ok=True)
    n, s = len(images), images.shape[1]
    rows = -(-n // columns)
    grid = np.zeros((rows * columns, s, s, 4), np.uint8)
    grid[:n] = images
    atlas = grid.reshape(rows, columns, s, s, 4).transpose(0, 2, 1, 3, 4).reshape(rows * s, columns * s, 4)
    # Premultiplied values stored as plain RGBA bytes: the PNG is only a lossless container here.
    Image.fromarray(atlas, "RGBA").save(root / "images.png", optimize=True)
    save_file(
        {
            "caption_vectors": caption_vectors.half().contiguous(),
            "caption_concept": torch.from_numpy(caption_concept.astype(np.int32)),
            "image_concept": torch.from_numpy(image_concept.astype(np.int32)),
        },
        str(root / "index.safetensors"),
    )
    meta = {"tile": s, "columns": columns, "count": n, "labels": labels}
    (root / "index.json").write_text(json.dumps(meta, ensure_ascii=False) + "\n")
