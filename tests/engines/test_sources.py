"""``--model`` specs, hub pulls (offline: the cache only; no network: a clear error), catalogue entries, the
OpenAI names answered by the first model, and the CLI pieces of ``cli/models.py``."""

from __future__ import annotations

import argparse
import io
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from imageforge.cli.models import add_model_flags, add_pull_parser, prepare_models, run_pull
from imageforge.config import EMBEDDED_ID, OPENAI_ALIASES, OPENAI_NAMES, Settings, load_catalogue
from imageforge.engines.families import FAMILIES
from imageforge.engines.sources import entries_for, parse_spec, pipeline_files, pull
from imageforge.errors import ConfigurationError, UnsafeCheckpointError
from tests.engines.tiny_pipelines import build_tiny_sd
from tests.engines.toy_families import build_flux, hub_cache, save_to_hub_cache

SD = "toy/stable-diffusion-v1-5"
SCHNELL = "toy/FLUX.1-schnell"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    work = tmp_path_factory.mktemp("toys")
    with hub_cache(tmp_path_factory.mktemp("hf-home")) as cache:
        save_to_hub_cache(build_tiny_sd(work / "sd"), cache, SD)
        save_to_hub_cache(build_flux(work / "flux", guidance_embeds=False), cache, SCHNELL)
        yield cache


# -- specs ---------------------------------------------------------------------------------------------------------


def test_specs_name_their_model(tmp_path: Path) -> None:
    directory = tmp_path / "My-SDXL"
    directory.mkdir()
    checkpoint = tmp_path / "DreamShaper_8.safetensors"
    checkpoint.write_bytes(b"")
    assert parse_spec("stabilityai/sdxl-turbo") == parse_spec("sdxl-turbo=stabilityai/sdxl-turbo")
    assert parse_spec("stabilityai/sdxl-turbo").kind == "hub"
    assert parse_spec(str(directory)).model_id == "my-sdxl" and parse_spec(str(directory)).kind == "directory"
    spec = parse_spec(f"dream={checkpoint}")
    assert (spec.model_id, spec.kind, spec.source) == ("dream", "file", str(checkpoint.resolve()))
    assert parse_spec(str(checkpoint)).model_id == "dreamshaper_8"


@pytest.mark.parametrize(
    "spec,error,fragment",
    [
        ("=org/name", ConfigurationError, "neither side empty"),
        ("name=", ConfigurationError, "neither side empty"),
        ("", ConfigurationError, "empty model source"),
        ("./missing/model", ConfigurationError, "no such file"),
        ("/nowhere/model.safetensors", ConfigurationError, "no such"),
        ("a/b/c", ConfigurationError, "not a hub id"),
        ("my model=org/name", ConfigurationError, "not a usable model id"),
        ("model.ckpt", UnsafeCheckpointError, "pickle"),
        ("x=/models/weights.pth", UnsafeCheckpointError, "pickle"),
    ],
)
def test_bad_specs_are_configuration_errors(spec: str, error: type[Exception], fragment: str) -> None:
    with pytest.raises(error, match=fragment):
        parse_spec(spec)


def test_a_file_that_is_not_safetensors_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ConfigurationError, match=r"must be a \.safetensors file"):
        entries_for([str(tmp_path / "notes.txt")], Settings())


# -- pulling ---------------------------------------------------------------------------------------------------------


def test_offline_pull_returns_the_cached_snapshot(hub: Path) -> None:
    path = pull(SD, offline=True)
    assert path.parent.parent.name == "models--toy--stable-diffusion-v1-5" and (path / "model_index.json").is_file()


def test_offline_pull_of_an_uncached_model_says_what_to_do(hub: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        pull("org/not-cached", offline=True)
    message = info.value.message
    assert "org/not-cached" in message and "not cached" in message and str(hub) in message
    assert "imageforge pull org/not-cached" in message and "local" in message


def test_a_cache_holding_only_configs_is_not_a_model(hub: Path) -> None:
    import shutil

    source = pull(SD, offline=True)
    snapshot = hub / "models--toy--configs-only" / "snapshots" / ("0" * 40)
    shutil.copytree(source, snapshot, ignore=shutil.ignore_patterns("*.safetensors"))
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    with pytest.raises(ConfigurationError, match="no weights for text_encoder, unet, vae"):
        pull("toy/configs-only", offline=True)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Online mode as far as huggingface_hub knows, but every connection is refused."""
    from huggingface_hub import constants

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionRefusedError("network disabled in this test")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    # huggingface_hub retries a failed connection with 1+2+4+8 s of back-off; the test need not wait for it.
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_without_network_an_uncached_model_is_a_clear_error(hub: Path, no_network: None) -> None:
    with pytest.raises(ConfigurationError) as info:
        pull("org/never-downloaded", offline=False)
    message = info.value.message
    assert "hub was tried" in message and "could not be reached" in message and "not in the cache" in message
    with pytest.raises(ConfigurationError, match="could not be reached"):
        entries_for(["org/never-downloaded"], Settings())
    # A cached model still serves: detection reads the cache, with no network at all.
    assert entries_for([SD], Settings())["stable-diffusion-v1-5"].options["model"] == SD


def test_pull_selects_the_pipeline_files_only() -> None:
    index = {"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
             "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
             "safety_checker": [None, None]}  # fmt: skip
    files = [
        "model_index.json", "v1-5-pruned.safetensors", "v1-5-pruned.ckpt", "safety_checker/model.safetensors",
        "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors",
        "unet/diffusion_pytorch_model.bin", "text_encoder/config.json", "text_encoder/model.safetensors",
        "tokenizer/vocab.json", "tokenizer/merges.txt", "vae_decoder/model.onnx",
    ]  # fmt: skip
    common = {"model_index.json", "unet/config.json", "text_encoder/config.json", "tokenizer/vocab.json",
              "tokenizer/merges.txt", "text_encoder/model.safetensors"}  # fmt: skip
    assert set(pipeline_files(files, index, None)) == common | {"unet/diffusion_pytorch_model.safetensors"}
    # fp16 where a component has it, the plain weights where it has not (text_encoder here).
    assert set(pipeline_files(files, index, "fp16")) == common | {"unet/diffusion_pytorch_model.fp16.safetensors"}


# -- catalogue entries -------------------------------------------------------------------------------------------


def test_entries_carry_the_family_options(hub: Path) -> None:
    entry = entries_for([f"fast={SCHNELL}"], Settings())["fast"]
    family = FAMILIES["flux-schnell"]
    assert entry.profile == family.profile and entry.options["quality_steps"] == {"low": 1, "medium": 2, "high": 4}
    assert entry.options["call_options"] == {"max_sequence_length": 256} and entry.options["local_files_only"]
    assert "preview_vae" not in entry.options, "offline, and the preview decoder is not cached"
    with pytest.raises(ConfigurationError, match="given twice"):
        entries_for([SD, f"stable-diffusion-v1-5={SCHNELL}"], Settings())


def test_a_cached_preview_decoder_is_used(hub: Path) -> None:
    from diffusers import AutoencoderTiny

    tiny = AutoencoderTiny(encoder_block_out_channels=(4,), decoder_block_out_channels=(4,), num_encoder_blocks=(1,),
                           num_decoder_blocks=(1,), latent_channels=4)  # fmt: skip
    save_to_hub_cache(tiny, hub, "madebyollin/taesd")
    assert entries_for([SD], Settings())["stable-diffusion-v1-5"].options["preview_vae"] == "madebyollin/taesd"


def test_the_first_model_answers_the_openai_names(hub: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "models.toml"
    cfg.write_text('[models."dall-e-3"]\nengine = "fake"\nprofile = "dall-e-3"\n')
    catalogue = load_catalogue(Settings(models=[SD, f"schnell={SCHNELL}"], config=cfg))
    first = catalogue.entry("stable-diffusion-v1-5")
    for name in (*OPENAI_NAMES, *OPENAI_ALIASES):
        if name == "dall-e-3":
            continue
        entry = catalogue.entry(name)
        assert entry.engine_key() == first.engine_key(), f"{name}: the same engine instance as the first model"
        assert entry.profile == OPENAI_ALIASES.get(name, name)
    assert catalogue.entry("dall-e-3").engine == "fake", "a name the catalogue file sets keeps the file's entry"
    assert catalogue.entry(EMBEDDED_ID).engine == "embedded"
    assert catalogue.entry("schnell").options["model"] == SCHNELL
    named = load_catalogue(Settings(models=[f"gpt-image-1={SCHNELL}"]))
    assert named.entry("gpt-image-1").profile == "gpt-image-1" and named.entry("dall-e-2").options["model"] == SCHNELL


def test_models_from_the_environment(hub: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEFORGE_MODELS", f"{SD}, schnell={SCHNELL}")
    monkeypatch.setenv("IMAGEFORGE_OFFLINE", "true")
    settings = Settings()
    assert settings.models == [SD, f"schnell={SCHNELL}"] and settings.offline
    assert {"stable-diffusion-v1-5", "schnell"} <= set(load_catalogue(settings).models)


# -- CLI pieces ----------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="imageforge")
    sub = ap.add_subparsers(dest="command", required=True)
    add_model_flags(sub.add_parser("serve"))
    add_pull_parser(sub)
    return ap


def test_serve_flags_map_onto_settings() -> None:
    ns = _parser().parse_args(["serve", "--model", "a/b", "--model", "c=/x", "--offline"])
    assert ns.models == ["a/b", "c=/x"] and ns.offline is True
    assert _parser().parse_args(["serve"]).offline is None, "not given: the setting keeps its default"


def test_pull_prints_the_family_and_the_serve_command(hub: Path) -> None:
    out = io.StringIO()
    ns = _parser().parse_args(["pull", SCHNELL, "--offline"])
    assert run_pull(ns, Console(file=out, width=200)) == 0
    text = out.getvalue()
    assert str(pull(SCHNELL, offline=True)) in text and "flux-schnell" in text
    assert "low 1, medium 2, high 4" in text and f"imageforge serve --model {SCHNELL}" in text


def test_prepare_models_offline(hub: Path) -> None:
    out = io.StringIO()
    prepare_models(Settings(models=[SD], offline=True), Console(file=out, width=200))
    assert "Stable Diffusion 1.x" in out.getvalue()
    with pytest.raises(ConfigurationError, match="not cached"):
        prepare_models(Settings(models=["org/absent"], offline=True), Console(file=out))
