"""The diffusers engine on a tiny Stable Diffusion pipeline built from the real classes (random weights)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from imageforge.engines.diffusers import TRANSPARENT_PROMPT_SUFFIX, DiffusersEngine
from imageforge.errors import ConfigurationError, UnsafeCheckpointError
from imageforge.params import GenerationParams
from tests.engines.contract import EngineContract, max_diff
from tests.engines.tiny_pipelines import save_tiny_sd


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_sd(tmp_path_factory.mktemp("pipelines"))


@pytest.fixture(scope="module")
def engine(tiny_sd: Path) -> Iterator[DiffusersEngine]:
    e = DiffusersEngine(str(tiny_sd), device="cpu", max_batch=2)  # max_batch 2: n=3 exercises chunking
    e.load()
    yield e
    e.close()


class TestDiffusersContract(EngineContract):
    size = (32, 32)
    other_sizes = ((48, 32), (32, 48))
    steps = 4
    batch_tolerance = 2


def test_loads_in_fp32_on_cpu(engine: DiffusersEngine) -> None:
    import torch

    assert engine._t2i.unet.dtype == torch.float32
    assert engine.capabilities.alpha == "matte" and engine.capabilities.size_multiple == 8


def test_img2img_and_inpaint_share_the_components(engine: DiffusersEngine) -> None:
    img2img = engine._pipeline_for("img2img")
    inpaint = engine._pipeline_for("inpaint")
    assert img2img.unet is engine._t2i.unet and inpaint.vae is engine._t2i.vae


def test_transparent_requests_report_the_prompt_used(engine: DiffusersEngine) -> None:
    p = GenerationParams(prompt="a fox", width=32, height=32, steps=2, seed=1, background="transparent")
    result = engine.generate([p])[0]
    assert result.prompt.startswith("a fox")
    # The tiny tokenizer holds 16 tokens (one per byte), so the suffix is truncated; the report says so.
    assert len(result.prompt) < len("a fox" + TRANSPARENT_PROMPT_SUFFIX)


def test_refuses_pickle_only_directory(tiny_sd: Path, tmp_path: Path) -> None:
    import shutil

    bad = tmp_path / "pickled"
    shutil.copytree(tiny_sd, bad)
    weights = bad / "unet" / "diffusion_pytorch_model.safetensors"
    weights.rename(weights.with_suffix(".bin"))
    with pytest.raises(UnsafeCheckpointError, match="pickle"):
        DiffusersEngine(str(bad), device="cpu").load()


@pytest.mark.parametrize("name", ["model.ckpt", "model.bin", "model.pt", "model.pth"])
def test_refuses_pickle_single_files(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(UnsafeCheckpointError, match="safetensors"):
        DiffusersEngine(str(path), device="cpu").load()


def test_unknown_path_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no such file"):
        DiffusersEngine(str(tmp_path / "missing" / "model"), device="cpu").load()


def test_hub_id_offline_fails_with_a_clear_error() -> None:
    # A hub id is a real source for users with network; offline (as in these tests) it fails cleanly.
    with pytest.raises(ConfigurationError, match="org/not-cached"):
        DiffusersEngine("org/not-cached", device="cpu", local_files_only=True).load()


def test_single_safetensors_file_gives_the_same_images(tiny_sd: Path, engine: DiffusersEngine, tmp_path: Path) -> None:
    """An original-layout (A1111-style) single-file checkpoint, converted by diffusers at load time."""
    from tests.engines.ldm_checkpoint import save_ldm_checkpoint

    checkpoint = save_ldm_checkpoint(engine._t2i, tmp_path / "tiny-sd.safetensors")
    single = DiffusersEngine(
        str(checkpoint), pipeline="StableDiffusionPipeline", single_file_config=str(tiny_sd), device="cpu"
    )
    single.load()
    p = GenerationParams(prompt="a red apple", width=32, height=32, steps=3, seed=11, n=2)
    for a, b in zip(single.generate([p])[0].images, engine.generate([p])[0].images, strict=True):
        assert max_diff(a, b) == 0
    single.close()


def test_cancellation_skips_the_final_decode(engine: DiffusersEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    from imageforge.errors import GenerationCancelled

    calls: list[int] = []
    vae = engine._t2i.vae
    original = vae.decode
    monkeypatch.setattr(vae, "decode", lambda *a, **k: calls.append(1) or original(*a, **k))
    p = GenerationParams(prompt="x", width=32, height=32, steps=5, seed=1, n=3)  # two chunks (max_batch=2)
    with pytest.raises(GenerationCancelled):
        engine.generate([p], cancelled=lambda: True)
    assert calls == [], "a cancelled job must not pay for the VAE decode"


def test_transparent_inpaint_keeps_the_original_outside_the_mask(engine: DiffusersEngine) -> None:
    import numpy as np
    from PIL import Image

    init = Image.new("RGBA", (32, 32), (255, 255, 255, 255))
    init.paste((10, 200, 30, 0), (24, 0, 32, 32))  # a transparent strip the edit must keep transparent
    mask = Image.new("L", (32, 32), 0)
    mask.paste(255, (0, 0, 12, 32))
    p = GenerationParams(
        prompt="x", width=32, height=32, steps=4, seed=1, init_image=init, mask=mask, background="transparent"
    )
    out = np.asarray(engine.generate([p])[0].images[0])
    src = np.asarray(init)
    assert np.array_equal(out[:, 13:], src[:, 13:]), "outside the mask: the original, alpha included"


def test_pipeline_variants_are_found_at_load(engine: DiffusersEngine) -> None:
    assert engine.capabilities.img2img and engine.capabilities.inpaint


@pytest.mark.parametrize(
    "table,fragment",
    [({"low": 1, "medium": 2}, "must give low, medium, high"), ({"low": 1, "medium": 2, "high": 999}, "from 1 to 150")],
)
def test_bad_quality_tables_are_configuration_errors(table: dict[str, int], fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        DiffusersEngine("/m", quality_steps=table)


def test_a_broken_checkpoint_is_a_configuration_error(tiny_sd: Path, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_sd, broken)
    (broken / "unet" / "config.json").write_text("{ not json")
    with pytest.raises(ConfigurationError, match="cannot load"):
        DiffusersEngine(str(broken), device="cpu").load()
