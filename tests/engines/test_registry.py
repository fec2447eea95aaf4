from __future__ import annotations

import pytest

from imageforge.engines.fake import FakeEngine
from imageforge.engines.registry import available_engines, create_engine, engine_factory
from imageforge.errors import ConfigurationError


def test_builtin_engines_are_registered_through_entry_points() -> None:
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group="imageforge.engines")}
    assert {"embedded", "diffusers", "fake"} <= names
    assert {"embedded", "diffusers", "fake"} <= set(available_engines())


def test_create_engine_passes_options() -> None:
    engine = create_engine("fake", {"step_delay": 0.5, "max_batch": 3})
    assert isinstance(engine, FakeEngine) and engine.step_delay == 0.5 and engine.capabilities.max_batch == 3
    assert engine_factory("fake") is FakeEngine


def test_unknown_engine_and_bad_options() -> None:
    with pytest.raises(ConfigurationError, match="unknown engine 'nope'"):
        create_engine("nope")
    with pytest.raises(ConfigurationError, match="bad options for engine 'fake'"):
        create_engine("fake", {"colour": "red"})


def test_settings_defaults_fill_only_what_an_engine_takes_and_the_entry_leaves_open() -> None:
    from imageforge.engines.diffusers import DiffusersEngine

    d = create_engine("diffusers", {"model": "/m", "dtype": "float16"}, {"device": "cpu", "dtype": "bfloat16"})
    assert isinstance(d, DiffusersEngine) and d.device == "cpu" and d.dtype == "float16"
    fake = create_engine("fake", {}, {"device": "cpu", "dtype": "bfloat16"})  # takes neither: not passed
    assert isinstance(fake, FakeEngine)
