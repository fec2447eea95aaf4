"""The family table, and every family diffusers can build at toy size: detected from its files in a hub cache,
given its row's options by ``entries_for``, loaded by hub id offline and generating a real image."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from imageforge.config import Settings
from imageforge.engines.base import check_quality_steps
from imageforge.engines.detection import detect_directory, detect_single_file
from imageforge.engines.diffusers import DiffusersEngine
from imageforge.engines.families import FAMILIES, GENERIC
from imageforge.engines.sources import entries_for
from imageforge.errors import ConfigurationError
from imageforge.params import GenerationParams
from imageforge.profiles import PROFILES
from tests.engines.toy_families import BUILDERS, hub_cache, save_to_hub_cache

TAESD_FAMILY = {"madebyollin/taesd", "madebyollin/taesdxl", "madebyollin/taesd3", "madebyollin/taef1"}


@pytest.fixture(scope="module")
def toy_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every toy family saved as a cached hub model (``HF_HUB_OFFLINE=1`` comes from tests/conftest.py)."""
    home = tmp_path_factory.mktemp("hf-home")
    work = tmp_path_factory.mktemp("toys")
    with hub_cache(home) as hub:
        for repo, (build, _) in BUILDERS.items():
            save_to_hub_cache(build(work / repo.replace("/", "--")), hub, repo)
        yield hub


def test_every_row_names_real_classes_profiles_and_decoders() -> None:
    import diffusers

    assert len(FAMILIES) >= 17
    for family in [*FAMILIES.values(), GENERIC]:
        assert family.profile in PROFILES, family.name
        assert family.pipeline is None or hasattr(diffusers, family.pipeline), family.name
        assert family.scheduler is None or hasattr(diffusers, family.scheduler), family.name
        assert family.preview_vae is None or family.preview_vae in TAESD_FAMILY, family.name
        check_quality_steps(family.steps.as_dict(), 1, 150)
        assert family.steps.low <= family.steps.medium <= family.steps.high, family.name
        assert family.native_size % 64 == 0 and family.max_batch >= 1


def test_distilled_rows_turn_guidance_off_and_use_few_steps() -> None:
    for name in ("sd-turbo", "sdxs", "sdxl-turbo", "sdxl-lightning", "sd3.5-large-turbo", "flux-schnell"):
        assert FAMILIES[name].guidance_scale == 0.0 and FAMILIES[name].steps.high <= 8, name
    assert dict(FAMILIES["sdxl-lightning"].scheduler_config) == {"timestep_spacing": "trailing"}
    assert FAMILIES["flux-dev"].engine_options()["call_options"] == {"max_sequence_length": 512}


@pytest.mark.parametrize("repo", sorted(BUILDERS))
def test_toy_family_is_detected_configured_and_generates(toy_hub: Path, repo: str) -> None:
    expected = FAMILIES[BUILDERS[repo][1]]
    entry = entries_for([repo], Settings())[repo.split("/")[1].lower()]
    assert entry.engine == "diffusers" and entry.profile == expected.profile
    want = {"model": repo, "local_files_only": True, **expected.engine_options()}  # no preview decoder cached
    assert entry.options == want

    engine = DiffusersEngine(**entry.options, device="cpu")
    engine.load()
    try:
        pipe = engine._t2i
        assert type(pipe).__name__ == expected.pipeline
        if expected.scheduler:
            assert type(pipe.scheduler).__name__ == expected.scheduler
        for key, value in expected.scheduler_config:
            assert pipe.scheduler.config[key] == value
        p = GenerationParams(prompt="a red fox", width=32, height=32, steps=2, seed=3)
        image = engine.generate([p])[0].images[0]
        assert image.size == (32, 32)
        assert np.asarray(image.convert("RGB")).std() > 0, "a real (non-constant) image"
    finally:
        engine.close()


def test_an_unknown_pipeline_class_falls_back_to_generic_settings(
    toy_hub: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = next(toy_hub.glob("models--toy--stable-diffusion-v1-5/snapshots/*"))
    copy = tmp_path / "new-architecture"
    shutil.copytree(source, copy)
    index = json.loads((copy / "model_index.json").read_text())
    (copy / "model_index.json").write_text(json.dumps({**index, "_class_name": "StableDiffusionPAGPipeline"}))
    with caplog.at_level("INFO", logger="imageforge"):
        detection = detect_directory(copy)
    assert detection.family is GENERIC and "not in the family table" in caplog.text
    entry = entries_for([str(copy)], Settings())["new-architecture"]
    assert "pipeline" not in entry.options and "guidance_scale" not in entry.options
    engine = DiffusersEngine(**entry.options, device="cpu")  # AutoPipelineForText2Image picks the class
    engine.load()
    assert type(engine._t2i).__name__ == "StableDiffusionPAGPipeline"
    assert engine.generate([GenerationParams(prompt="x", width=32, height=32, steps=1, seed=1)])[0].images
    engine.close()


def test_a_directory_without_model_index_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"no model_index\.json"):
        entries_for([str(tmp_path)], Settings())


def test_fp16_only_weights_select_the_variant(toy_hub: Path, tmp_path: Path) -> None:
    source = next(toy_hub.glob("models--toy--FLUX.1-schnell/snapshots/*"))
    copy = tmp_path / "schnell-fp16"
    shutil.copytree(source, copy)
    for weights in copy.glob("*/*.safetensors"):
        weights.rename(weights.with_name(weights.name.replace(".safetensors", ".fp16.safetensors")))
    detection = detect_directory(copy)
    assert detection.family.name == "flux-schnell" and detection.variant == "fp16"
    assert entries_for([str(copy)], Settings())["schnell-fp16"].options["variant"] == "fp16"


# -- single .safetensors files: tensor names and shapes only, classified by diffusers ----------------------------


def _keys_file(path: Path, shapes: dict[str, tuple[int, ...]]) -> Path:
    import torch
    from safetensors.torch import save_file

    save_file({k: torch.zeros(shape) for k, shape in shapes.items()}, str(path))
    return path


_FLUX = "double_blocks.0.img_attn.norm.key_norm.scale"
_XL = "conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias"
_V2 = "model.diffusion_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight"


@pytest.mark.parametrize(
    "name,shapes,family",
    [
        ("flux1-dev.safetensors", {_FLUX: (1,), "guidance_in.in_layer.bias": (1,), "img_in.weight": (1, 64)},
         "flux-dev"),
        ("flux1-schnell.safetensors", {_FLUX: (1,), "img_in.weight": (1, 64)}, "flux-schnell"),
        ("sd_xl_base_1.0.safetensors", {_XL: (1,)}, "sdxl"),
        ("sd_xl_turbo_1.0.safetensors", {_XL: (1,)}, "sdxl-turbo"),
        ("sdxl_lightning_4step.safetensors", {_XL: (1,)}, "sdxl-lightning"),
        ("v2-1_768-ema-pruned.safetensors", {_V2: (1, 1024)}, "sd2-v"),
        ("v2-1_512-ema-pruned.safetensors", {_V2: (1, 1024)}, "sd2"),
        ("sd3.5_large_turbo.safetensors", {"joint_blocks.37.x_block.mlp.fc1.weight": (1,)}, "sd3.5-large-turbo"),
        ("sana.safetensors", {"blocks.0.cross_attn.q_linear.weight": (1,)}, "sana"),
        ("v1-5-pruned-emaonly.safetensors", {"model.diffusion_model.out.2.bias": (4,)}, "sd1"),
    ],
)  # fmt: skip
def test_single_file_families_from_key_shapes(
    tmp_path: Path, name: str, shapes: dict[str, tuple[int, ...]], family: str
) -> None:
    assert detect_single_file(_keys_file(tmp_path / name, shapes)).family.name == family


def test_single_file_of_an_unsupported_kind_is_a_configuration_error(tmp_path: Path) -> None:
    video = _keys_file(
        tmp_path / "video.safetensors", {"txt_in.individual_token_refiner.blocks.0.adaLN_modulation.1.bias": (1,)}
    )
    with pytest.raises(ConfigurationError, match="hunyuan-video"):
        detect_single_file(video)
    garbage = tmp_path / "broken.safetensors"
    garbage.write_bytes(b"not a safetensors file")
    with pytest.raises(ConfigurationError, match="not a readable"):
        detect_single_file(garbage)


def test_single_file_checkpoint_loads_with_its_configs_from_the_cache(toy_hub: Path, tmp_path: Path) -> None:
    """An A1111-style SD 1.x file: the family from its keys; diffusers takes the default v1 configs from the cache."""
    from tests.engines.ldm_checkpoint import save_ldm_checkpoint

    reference = DiffusersEngine("toy/stable-diffusion-v1-5", device="cpu", local_files_only=True)
    reference.load()
    # diffusers' default config repository for a v1 file, cached here with the toy's (tiny) configs.
    save_to_hub_cache(reference._t2i, toy_hub, "stable-diffusion-v1-5/stable-diffusion-v1-5")
    checkpoint = save_ldm_checkpoint(reference._t2i, tmp_path / "My-Model.safetensors")
    entry = entries_for([str(checkpoint)], Settings())["my-model"]
    assert entry.options["pipeline"] == "StableDiffusionPipeline" and entry.options["model"] == str(checkpoint)
    assert entry.options["guidance_scale"] == FAMILIES["sd1"].guidance_scale
    single = DiffusersEngine(**entry.options, device="cpu")
    p = GenerationParams(prompt="a red apple", width=32, height=32, steps=2, seed=5, guidance_scale=7.5)
    assert single.generate([p])[0].images[0].tobytes() == reference.generate([p])[0].images[0].tobytes()
    single.close()
    reference.close()
