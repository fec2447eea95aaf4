"""The embedded model's learned 4x upscaler: shapes and invariants, and that the shipped one makes 1024 px output
crisper than resampling the model's native image (issue 5)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imageforge.engines.embedded.config import WEIGHTS_DIR
from imageforge.engines.embedded.engine import EmbeddedEngine
from imageforge.engines.embedded.upscaler import Upscaler, UpscalerConfig
from imageforge.params import GenerationParams


def test_upscaler_shape_and_premultiplied_output() -> None:
    torch.manual_seed(0)
    model = Upscaler(UpscalerConfig(width=8, blocks=1)).eval()
    x = torch.rand(2, 4, 32, 32)
    x[:, :3] = torch.minimum(x[:, :3], x[:, 3:4])
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 4, 128, 128)
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert bool((y[:, :3] <= y[:, 3:4] + 1e-6).all())  # colour never exceeds alpha


def _edge_strength(img: Image.Image, edges: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    grey = np.asarray(img.convert("L"), dtype=np.float64) / 255.0
    gy, gx = np.gradient(grey)
    mag = np.hypot(gx, gy)
    if edges is None:
        edges = mag >= np.quantile(mag, 0.95)
    return float(mag[edges].mean()), edges


def test_shipped_upscaler_makes_edges_crisper(embedded_engine: EmbeddedEngine) -> None:
    assert "upscaler" in json.loads((WEIGHTS_DIR / "model.json").read_text())
    size = embedded_engine.config.image_size
    for k, prompt in enumerate(("a red apple", "a blue heart")):
        native, full = (
            embedded_engine.generate([GenerationParams(prompt=prompt, width=s, height=s, steps=10, seed=7 + k)])[
                0
            ].images[0]
            for s in (size, 1024)
        )
        lanczos = native.resize((1024, 1024), Image.Resampling.LANCZOS)
        ref, edges = _edge_strength(lanczos)
        ours, _ = _edge_strength(full, edges)
        assert ours > 1.2 * ref, (prompt, ours, ref)
        # Same picture, only sharper: the colours agree with the plain upscale almost everywhere.
        diff = np.abs(np.asarray(full, dtype=np.float64) - np.asarray(lanczos, dtype=np.float64)).mean()
        assert diff < 12, diff


def test_weights_without_an_upscaler_still_load(tmp_path: Path) -> None:
    weights = tmp_path / "weights"
    shutil.copytree(WEIGHTS_DIR, weights, ignore=shutil.ignore_patterns("upscaler"))
    meta = json.loads((weights / "model.json").read_text())
    meta.pop("upscaler", None)
    (weights / "model.json").write_text(json.dumps(meta))
    engine = EmbeddedEngine(weights_dir=weights)
    image = engine.generate([GenerationParams(prompt="a cat", width=256, height=256, steps=2, seed=1)])[0].images[0]
    assert image.size == (256, 256)


def test_alpha_noise_is_snapped_and_colour_kept() -> None:
    from imageforge.engines.embedded.engine import _clean_alpha

    straight = np.array([0.8, 0.4, 0.2])
    alphas = np.array([0.0, 0.1, 0.5, 0.9, 1.0])
    arr = np.concatenate([straight[None] * alphas[:, None], alphas[:, None]], axis=1)[None]  # (1, 5, 4)
    out = _clean_alpha(arr)[0]
    assert out[:, 3].tolist() == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.0])  # haze gone, body solid, edge kept
    for px in out[2:]:
        assert px[:3] / px[3] == pytest.approx(straight)  # the same colour, un-premultiplied
    assert out[1].tolist() == [0.0, 0.0, 0.0, 0.0]
