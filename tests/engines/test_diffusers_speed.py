"""The diffusers engine's preview decoders and speed options, on toy pipelines of each latent layout (random
weights): SD (4 latent channels, UNet), SDXL, SD3 (16 channels, transformer), FLUX (packed sequence latents) and
Sana (a deterministic DC-AE autoencoder, 32x downsampling)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from imageforge.engines.diffusers import DiffusersEngine
from imageforge.engines.diffusers_previews import LatentPreview
from imageforge.engines.diffusers_speed import SpeedOptions, load_factory
from imageforge.errors import ConfigurationError
from imageforge.params import GenerationParams, StepPreview
from tests.engines.tiny_pipelines import build_tiny_sd
from tests.engines.toy_families import build_flux, build_sana, build_sd3, build_sdxl

LAYOUTS: dict[str, Callable[[Path], Any]] = {
    "sd": build_tiny_sd,
    "sdxl": build_sdxl,
    "sd3": build_sd3,
    "flux": lambda w: build_flux(w, guidance_embeds=False),
    "sana": build_sana,
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for name, build in LAYOUTS.items():
        work = tmp_path_factory.mktemp(name)
        pipe = build(work)
        pipe.save_pretrained(str(work / "pipe"), safe_serialization=True)
        out[name] = work / "pipe"
    return out


def _previews(engine: DiffusersEngine, p: GenerationParams) -> tuple[list[list[Image.Image]], list[Image.Image]]:
    seen: list[list[Image.Image]] = []

    def on_step(st: StepPreview) -> None:
        seen.append(st.preview(0))

    final = engine.generate([p], on_step=on_step)[0].images
    return seen, final


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_latent_previews_of_every_latent_layout(saved: dict[str, Path], layout: str) -> None:
    size = 64 if layout == "sana" else 32  # Sana's autoencoder downsamples 32x
    engine = DiffusersEngine(str(saved[layout]), device="cpu", guidance_scale=0.0)
    engine.load()
    assert engine._latent_preview is not None  # the default decoder, fitted at load
    p = GenerationParams(prompt="a red apple", width=size + 16 * (layout != "sana"), height=size, steps=3, seed=1)
    previews, final = _previews(engine, p)
    assert len(previews) == 3
    for imgs in previews:
        assert [im.size for im in imgs] == [(p.width, p.height)]
        assert imgs[0].mode == final[0].mode
    # Previews follow the run: they change from step to step.
    first, last = (np.asarray(previews[i][0], dtype=np.int16) for i in (0, -1))
    assert np.abs(first - last).max() > 0


class _LinearVae:
    """A stand-in autoencoder whose latents are a known linear function of each 8x8 patch's mean colour (with
    shift and scaling factors as SD3/FLUX VAEs have), so the map the calibration must recover is known exactly.
    Random-weight toy VAEs carry no colour linearly, and no trained VAE can be downloaded here: how well the fit
    reads a real checkpoint's VAE is measured on the GPU run, not here."""

    def __init__(self) -> None:
        import torch

        gen = torch.Generator("cpu").manual_seed(4)
        self.mix = torch.randn(16, 3, generator=gen)
        self.offset = torch.randn(16, generator=gen)
        self.config = type("Config", (), {"scaling_factor": 0.36, "shift_factor": 0.12})()
        self.dtype = torch.float32
        self._param = torch.zeros(1)

    def parameters(self) -> Any:
        return iter([self._param])

    def encode(self, images: Any) -> Any:
        import torch
        import torch.nn.functional as F

        colour = F.avg_pool2d(images, 8)
        mean = torch.einsum("bdhw,cd->bchw", colour, self.mix) + self.offset[None, :, None, None]
        return type("Out", (), {"latent_dist": type("Dist", (), {"mean": mean})()})()


def test_the_fitted_map_inverts_a_linear_vae() -> None:
    import torch

    vae = _LinearVae()
    pipe = type("Pipe", (), {"vae": vae, "vae_scale_factor": 8})()
    latent_preview = LatentPreview.calibrate(pipe)
    assert latent_preview is not None
    side = 64
    halves = torch.full((1, 3, side, side), -0.8)
    halves[0, 0, :, : side // 2] = 0.8  # red on the left
    halves[0, 2, :, side // 2 :] = 0.8  # blue on the right
    z = (vae.encode(halves).latent_dist.mean - 0.12) * 0.36  # the pipeline's latent space
    preview = np.asarray(latent_preview.decode(pipe, z, side, side)[0], dtype=np.float64)
    truth = (halves[0].permute(1, 2, 0).numpy() + 1) * 127.5
    # Away from the seam (where the bilinear upscale blends the halves) the colours come back exactly.
    assert np.abs(preview[:, :24] - truth[:, :24]).max() <= 1
    assert np.abs(preview[:, -24:] - truth[:, -24:]).max() <= 1


def test_full_vae_previews_end_at_the_final_image(saved: dict[str, Path]) -> None:
    engine = DiffusersEngine(str(saved["sd"]), device="cpu", preview_decoder="vae", guidance_scale=0.0)
    engine.load()
    assert engine._latent_preview is None
    p = GenerationParams(prompt="a red apple", width=32, height=32, steps=2, seed=3)
    previews, final = _previews(engine, p)
    # The last step's x0 estimate is the final latent, decoded by the same VAE.
    diff = np.abs(np.asarray(previews[-1][0], dtype=np.int16) - np.asarray(final[0], dtype=np.int16))
    assert diff.mean() < 2


def test_speed_options_on_the_cpu_keep_the_images(saved: dict[str, Path]) -> None:
    """channels_last and fused QKV change memory layout and matmul grouping, not the model's function."""
    plain = DiffusersEngine(str(saved["sdxl"]), device="cpu", guidance_scale=0.0)
    fast = DiffusersEngine(str(saved["sdxl"]), device="cpu", guidance_scale=0.0, channels_last=True, fuse_qkv=True)
    p = GenerationParams(prompt="a red apple", width=32, height=32, steps=2, seed=5)
    a, b = (np.asarray(e.generate([p])[0].images[0], dtype=np.int16) for e in (plain, fast))
    assert np.abs(a - b).max() <= 2
    import torch

    assert fast._t2i.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert not plain._t2i.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)


def test_bad_speed_options_are_named() -> None:
    with pytest.raises(ConfigurationError, match="compile must be one of"):
        SpeedOptions(compile="everything")
    with pytest.raises(ConfigurationError, match="compile_mode"):
        SpeedOptions(compile="denoiser", compile_mode="fastest")
    with pytest.raises(ConfigurationError, match="preview_decoder must be one of"):
        DiffusersEngine("x", preview_decoder="fancy")
    with pytest.raises(ConfigurationError, match="needs preview_vae"):
        DiffusersEngine("x", preview_decoder="tiny")
    for target, message in [("nocolon", "module:callable"), ("no.such.module:f", "cannot be imported"),
                            ("imageforge.engines.diffusers_speed:COMPILE_CHOICES", "not callable")]:  # fmt: skip
        with pytest.raises(ConfigurationError, match=message):
            load_factory(target)


_BUILT: dict[str, Any] = {}


def toy_factory(*, dtype: Any, device: str) -> Any:
    """A ``factory`` target: builds the pipeline in code (random weights), as a benchmark or a custom loader does."""
    pipe = build_tiny_sd(_BUILT["work"])
    _BUILT["calls"] = _BUILT.get("calls", 0) + 1
    _BUILT["asked"] = (dtype, device)
    return pipe.to(dtype=dtype)


def test_factory_builds_the_pipeline(tmp_path: Path) -> None:
    import torch

    _BUILT.clear()
    _BUILT["work"] = tmp_path
    engine = DiffusersEngine("my-code-built-model", factory=f"{__name__}:toy_factory", device="cpu")
    img = engine.generate([GenerationParams(prompt="a cat", width=32, height=32, steps=1, seed=0)])[0].images[0]
    assert img.size == (32, 32)
    assert _BUILT["calls"] == 1 and _BUILT["asked"] == (torch.float32, "cpu")
