"""The output moderation classifier (open_nsfw on onnxruntime) on the GPU provider, where onnxruntime has one.

``NsfwClassifier.load`` puts ``CUDAExecutionProvider`` first whenever onnxruntime lists it (onnxruntime-gpu
installed), with the CPU as fallback. Here: the session really runs on CUDA, and its scores and verdicts are
those of the CPU session.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from imageforge.moderation import Level, Moderator
from imageforge.moderation.images import NsfwClassifier

pytestmark = pytest.mark.gpu

# CUDA convolutions may run in TF32 (onnxruntime's default on Ampere and later) against the CPU's fp32: scores, which
# are probabilities, move in the third decimal at most.
SCORE_TOLERANCE = 0.01


def sample_images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 255, (300, 200, 3), dtype=np.uint8))
    ramp = np.linspace(0, 255, 512, dtype=np.float64)
    gradient = Image.fromarray(np.stack([np.add.outer(ramp, ramp) / 2, np.tile(ramp, (512, 1)),
                                         np.tile(ramp[:, None], (1, 512))], axis=-1).astype(np.uint8))  # fmt: skip
    half_clear = Image.new("RGBA", (256, 256), (200, 30, 60, 255))
    half_clear.paste((0, 0, 0, 0), (0, 0, 128, 256))
    return [
        Image.new("RGB", (256, 256), "navy"),
        Image.new("RGB", (128, 128), (224, 172, 140)),  # a skin tone: a moderate, non-zero score
        noise,
        gradient,
        half_clear,
    ]


def test_the_classifier_runs_on_cuda_with_the_cpu_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    ort = pytest.importorskip("onnxruntime")
    available = ort.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        pytest.skip(f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (onnxruntime-gpu is not installed); "
                    f"its providers: {', '.join(available)}")  # fmt: skip
    gpu = NsfwClassifier()
    gpu.load()
    # onnxruntime falls back to the CPU silently (an error in its own log) when the CUDA provider cannot start.
    assert gpu._model.get_providers()[0] == "CUDAExecutionProvider", gpu._model.get_providers()
    with monkeypatch.context() as m:
        m.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
        cpu = NsfwClassifier()
        cpu.load()
    assert cpu._model.get_providers() == ["CPUExecutionProvider"]

    images = sample_images()
    for i, img in enumerate(images):
        on_gpu, on_cpu = gpu.score(img), cpu.score(img)
        assert on_gpu == pytest.approx(on_cpu, abs=SCORE_TOLERANCE), (i, on_gpu, on_cpu)
    levels: tuple[Level, ...] = ("auto", "low")
    for level in levels:
        a = Moderator(images=gpu).check_output(images, level)
        b = Moderator(images=cpu).check_output(images, level)
        assert a.categories == b.categories, level
        assert a.scores["nsfw"] == pytest.approx(b.scores["nsfw"], abs=SCORE_TOLERANCE)
