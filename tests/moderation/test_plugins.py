"""Plug-ins (entry points in the `imageforge.moderation` group) join the built-in classifiers' scores."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import EntryPoint
from typing import Literal

import pytest
from PIL import Image

from imageforge.errors import ConfigurationError
from imageforge.moderation import Moderator, service
from imageforge.moderation.images import NsfwClassifier


class KeywordPlugin:
    """A prompt plug-in that knows one word the lexicon does not."""

    kind: Literal["prompt"] = "prompt"
    name = "keyword"

    def classify(self, text: str) -> Mapping[str, float]:
        return {"violence/graphic": 0.95 if "zorblax" in text else 0.0, "not-a-category": 1.0}


class RedImagePlugin:
    """An image plug-in that calls pure red images hateful (standing in for a real detector)."""

    kind: Literal["image"] = "image"
    name = "red"

    def score(self, image: Image.Image) -> Mapping[str, float]:
        return {"hate": 1.0 if image.convert("RGB").getpixel((0, 0)) == (255, 0, 0) else 0.0}


def test_plugin_scores_join_ours() -> None:
    m = Moderator(plugins=[KeywordPlugin(), RedImagePlugin()], images=NsfwClassifier())
    assert m.check_prompt("a zorblax in the woods", "low").categories == ("violence/graphic",)
    assert m.check_prompt("a fox in the woods", "auto").categories == ()
    assert "not-a-category" not in m.check_prompt("x", "auto").scores  # unknown categories are ignored
    assert m.check_output([Image.new("RGB", (64, 64), (255, 0, 0))], "auto").categories == ("hate",)
    assert m.check_output([Image.new("RGB", (64, 64), (0, 0, 255))], "auto").categories == ()


def test_plugins_load_by_entry_point_name(monkeypatch: pytest.MonkeyPatch) -> None:
    ep = EntryPoint(name="keyword", value=f"{__name__}:KeywordPlugin", group=service.PLUGIN_GROUP)
    monkeypatch.setattr(service, "entry_points", lambda group: [ep] if group == service.PLUGIN_GROUP else [])
    [plugin] = service.load_plugins(["keyword"])
    assert isinstance(plugin, KeywordPlugin)
    with pytest.raises(ConfigurationError, match="not installed"):
        service.load_plugins(["nudenet"])
