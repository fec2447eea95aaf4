"""Thresholds per level; sexual/minors is never relaxed."""

from __future__ import annotations

import math

import pytest

from imageforge.errors import ConfigurationError
from imageforge.moderation import Policy


def test_defaults_are_the_documented_ones() -> None:
    p = Policy.build()
    assert p.thresholds["auto"]["sexual"] == 0.5
    assert p.thresholds["low"]["sexual"] == 0.9
    assert p.thresholds["low"]["sexual/minors"] == p.thresholds["auto"]["sexual/minors"] == 0.5
    assert (p.thresholds["auto"]["image"], p.thresholds["low"]["image"]) == (0.5, 0.8)
    assert p.thresholds["low"]["image/minors"] == p.thresholds["auto"]["image/minors"] == 0.3


def test_low_cannot_relax_minors_and_auto_tunes_both() -> None:
    with pytest.raises(ConfigurationError, match="never relaxed"):
        Policy.build(low={"sexual/minors": 0.99})
    with pytest.raises(ConfigurationError, match="never relaxed"):
        Policy.build(low={"image/minors": 0.99})
    with pytest.raises(ConfigurationError, match="cannot be switched off"):
        Policy.build(auto={"sexual/minors": "off"})
    p = Policy.build(auto={"sexual/minors": 0.2, "image/minors": 0.1})
    assert p.thresholds["low"]["sexual/minors"] == 0.2
    assert p.thresholds["low"]["image/minors"] == 0.1


@pytest.mark.parametrize("bad", [{"sexy": 0.5}, {"sexual": 0}, {"sexual": 1.5}, {"sexual": "high"}])
def test_bad_overrides_are_configuration_errors(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        Policy.build(auto=bad)  # type: ignore[arg-type]


def test_off_disables_one_check() -> None:
    p = Policy.build(low={"hate": "off", "image": "off"})
    assert p.thresholds["low"]["hate"] == math.inf
    assert p.prompt_categories({"hate": 1.0}, "low") == []
    assert p.image_categories(0.99, "low", minor=False) == []
    assert p.image_categories(0.99, "low", minor=True) == ["sexual/minors"]  # still judged


def test_image_categories() -> None:
    p = Policy.build()
    assert p.image_categories(0.6, "auto", minor=False) == ["sexual"]
    assert p.image_categories(0.6, "low", minor=False) == []
    assert p.image_categories(0.35, "low", minor=True) == ["sexual/minors"]
    assert p.image_categories(0.25, "auto", minor=True) == []
