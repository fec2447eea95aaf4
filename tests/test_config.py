from __future__ import annotations

from pathlib import Path

import pytest

from imageforge.config import OPENAI_ALIASES, OPENAI_NAMES, Settings, load_catalogue
from imageforge.errors import ConfigurationError, ModelNotFoundError


def test_default_catalogue_serves_the_embedded_model_under_every_name() -> None:
    cat = load_catalogue(Settings())
    assert set(cat.models) == {"imageforge-emoji", *OPENAI_NAMES, *OPENAI_ALIASES}
    assert cat.profile("gpt-image-2-2026-04-21").name == "gpt-image-2"
    keys = {e.engine_key() for e in cat.models.values()}
    assert len(keys) == 1, "all default ids share one engine instance"
    assert cat.profile("dall-e-3").n_max == 1 and cat.profile("gpt-image-2").custom_sizes is not None
    with pytest.raises(ModelNotFoundError):
        cat.entry("gpt-9")


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("IMAGEFORGE_DEVICE", "cpu")
    monkeypatch.setenv("IMAGEFORGE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("IMAGEFORGE_DTYPE", "bfloat16")
    s = Settings()
    assert s.device == "cpu" and s.data_dir == tmp_path
    assert s.engine_defaults() == {"device": "cpu", "dtype": "bfloat16"}


def test_api_keys_from_environment_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEFORGE_API_KEYS", "sk-one, sk-two,,")
    assert Settings().api_keys == ["sk-one", "sk-two"]
    assert Settings(api_keys=["a"]).api_keys == ["a"]


def test_catalogue_file_adds_and_replaces(tmp_path: Path) -> None:
    cfg = tmp_path / "models.toml"
    cfg.write_text(
        """
[models."sd-turbo"]
engine = "diffusers"
profile = "gpt-image-1"
[models."sd-turbo".options]
model = "/models/sd-turbo"
guidance_scale = 0.0
quality_steps = { low = 1, medium = 2, high = 4 }

[models."dall-e-3"]
engine = "fake"
profile = "dall-e-3"
"""
    )
    cat = load_catalogue(Settings(config=cfg))
    assert cat.entry("sd-turbo").options["quality_steps"] == {"low": 1, "medium": 2, "high": 4}
    assert cat.entry("dall-e-3").engine == "fake" and "gpt-image-1" in cat.models


def test_catalogue_without_defaults(tmp_path: Path) -> None:
    cfg = tmp_path / "models.toml"
    cfg.write_text('include_defaults = false\n[models.only]\nengine = "fake"\n')
    assert set(load_catalogue(Settings(config=cfg)).models) == {"only"}


@pytest.mark.parametrize(
    "text,fragment",
    [
        ('[models.x]\nengine = "fake"\nprofile = "dall-e-9"\n', "unknown profile"),
        ('[models.x]\nengine = "fake"\ncolour = "red"\n', "colour"),
        ("[models.x\n", "cannot read"),
    ],
)
def test_bad_catalogue_files(tmp_path: Path, text: str, fragment: str) -> None:
    cfg = tmp_path / "models.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigurationError, match=fragment):
        load_catalogue(Settings(config=cfg))
