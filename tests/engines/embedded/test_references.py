"""Retrieval conditioning of the embedded model: the index format, the query, the choice of references, and the
shipped index finding the right concept for plain and coloured prompts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from imageforge.engines.embedded.config import WEIGHTS_DIR, load_config
from imageforge.engines.embedded.references import ReferenceIndex, retrieval_query, write_index

SHIPPED = load_config(WEIGHTS_DIR).reference_images > 0


def test_colour_adjectives_are_left_out_of_the_query() -> None:
    assert retrieval_query("a Green cat, smiling") == "a cat, smiling"
    assert retrieval_query("red.") == "red."  # nothing but a colour: kept as it is
    assert retrieval_query("an orange") == "an orange"  # the fruit
    assert retrieval_query("a redwood tree") == "a redwood tree"


def test_index_round_trips_through_its_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(70, 8, 8, 4), dtype=np.uint8)  # 70 tiles: a partly filled atlas row
    image_concept = np.repeat(np.arange(35), 2)
    vectors = torch.nn.functional.normalize(torch.randn(50, 6), dim=-1)
    caption_concept = rng.integers(0, 35, size=50)
    write_index(tmp_path, vectors, caption_concept, images, image_concept, [f"c{i}" for i in range(35)], columns=16)
    index = ReferenceIndex.load(tmp_path)
    assert np.array_equal(index.images, images)  # lossless, premultiplied values untouched
    assert np.array_equal(index.image_concept, image_concept)
    assert index.labels[34] == "c34"
    # The nearest concept is the concept of the best-matching caption.
    assert index.nearest(vectors[17]) == caption_concept[17]


def test_a_concept_matched_by_several_captions_beats_one_matched_by_one(tmp_path: Path) -> None:
    query = torch.tensor([1.0, 0.0, 0.0])
    vectors = torch.nn.functional.normalize(
        torch.tensor([[1.0, 0.25, 0.0], [1.0, 0.0, 0.3], [1.0, -0.3, 0.0], [1.0, 0.2, 0.0], [0.0, 1.0, 0.0]]), dim=-1
    )
    # Concept 1 has the single best caption; concept 0 three that are nearly as good.
    caption_concept = np.array([0, 0, 0, 1, 2])
    images = np.zeros((3, 4, 4, 4), np.uint8)
    write_index(tmp_path, vectors, caption_concept, images, np.arange(3), ["many", "one", "far"])
    index = ReferenceIndex.load(tmp_path)
    assert int((index.caption_vectors @ query).argmax()) == 3  # a plain maximum would pick concept 1
    assert index.labels[index.nearest(query)] == "many"
    assert index.labels[index.nearest(torch.tensor([0.0, 1.0, 0.0]))] == "far"


def test_references_are_distinct_styles_chosen_by_seed(tmp_path: Path) -> None:
    images = np.zeros((5, 4, 4, 4), np.uint8)
    images[:, 0, 0, 0] = np.arange(5)  # tag each image
    write_index(tmp_path, torch.eye(2), np.array([0, 1]), images, np.array([0, 0, 0, 1, 1]), ["a", "b"])
    index = ReferenceIndex.load(tmp_path)
    picks = {tuple(index.pick(0, seed, 2)) for seed in range(20)}
    assert all(len(set(p)) == 2 and set(p) <= {0, 1, 2} for p in picks)  # two different images of concept 0
    assert len(picks) > 1  # the seed chooses
    assert tuple(index.pick(0, 7, 2)) == tuple(index.pick(0, 7, 2))
    assert list(index.pick(1, 0, 3)).count(3) + list(index.pick(1, 0, 3)).count(4) == 3  # repeated when short
    t = index.tensor(index.pick(0, 3, 2))
    assert t.shape == (8, 4, 4) and float(t.min()) == -1.0  # [-1, 1], channels of both images stacked


@pytest.mark.skipif(not SHIPPED, reason="the shipped weights are text-only")
def test_shipped_index_retrieves_the_object_not_the_colour() -> None:
    from imageforge.engines.embedded.text import TextEncoder

    index = ReferenceIndex.load(WEIGHTS_DIR)
    encoder = TextEncoder(WEIGHTS_DIR, 32)

    def label(prompt: str) -> str:
        return index.labels[index.nearest(encoder.encode([retrieval_query(prompt)]).pooled[0])]

    assert label("a red apple") in {"red apple", "green apple"}
    assert "umbrella" in label("a purple umbrella")
    assert label("a green bird") in {"bird", "black bird", "dove", "parrot"}
    assert label("a rocket") == "rocket"
    assert len(index.images) == len(index.image_concept) > 4000


@pytest.mark.skipif(not SHIPPED, reason="the shipped weights are text-only")
def test_batched_images_equal_the_same_images_made_alone() -> None:
    """Each image's references are chosen by its own seed, so batching never changes an image."""
    from imageforge.engines.embedded.engine import EmbeddedEngine
    from imageforge.params import GenerationParams

    engine = EmbeddedEngine(device="cpu")
    a = GenerationParams(prompt="a rocket", width=32, height=32, steps=4, seed=11, n=2)
    b = GenerationParams(prompt="a purple umbrella", width=32, height=32, steps=4, seed=12)
    together = engine.generate([a, b])
    alone = [engine.generate([a])[0], engine.generate([b])[0]]
    for batched, single in zip(together, alone, strict=True):
        for x, y in zip(batched.images, single.images, strict=True):
            diff = np.abs(np.asarray(x, dtype=np.int16) - np.asarray(y, dtype=np.int16)).max()
            assert diff <= 1, diff  # batched matmuls may differ in the last bit


@pytest.mark.skipif(not SHIPPED, reason="the shipped weights are text-only")
def test_the_image_follows_its_references_and_is_not_one_of_them() -> None:
    """Drawn from the retrieved concept: closer to that concept's images than to another concept's, and not a
    copy of any of them."""
    from imageforge.engines.embedded.engine import EmbeddedEngine
    from imageforge.params import GenerationParams

    engine = EmbeddedEngine(device="cpu")
    for prompt, other in (("a rocket", "a red apple"), ("a cat face", "a house")):
        images = engine.generate([GenerationParams(prompt=prompt, width=32, height=32, steps=20, seed=5, n=4)])
        found, refs = engine.retrieved(prompt)  # type: ignore[misc]
        _, other_refs = engine.retrieved(other)  # type: ignore[misc]

        def distance(img: object, targets: list[object]) -> float:
            x = _on_white(img)
            return min(float(np.abs(x - _on_white(t)).mean()) for t in targets)

        own = [distance(im, refs) for im in images[0].images]
        far = [distance(im, other_refs) for im in images[0].images]
        assert np.mean(own) < np.mean(far), (prompt, found, own, far)
        assert min(own) > 0.01, (prompt, own)  # not a stored image returned as is


def _on_white(img: object) -> np.ndarray:
    from PIL import Image

    assert isinstance(img, Image.Image)
    rgba = img.convert("RGBA").resize((32, 32), Image.Resampling.BOX)
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"), dtype=np.float64) / 255.0
