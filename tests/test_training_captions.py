"""The project's own descriptive captions (training/captions/descriptions.json, issue 5): well formed, and one
entry for every concept the shipped model knows."""

from __future__ import annotations

import json
from pathlib import Path

from imageforge.engines.embedded.config import WEIGHTS_DIR

DESCRIPTIONS = Path(__file__).resolve().parents[1] / "training" / "captions" / "descriptions.json"


def test_every_shipped_concept_has_two_plain_descriptions() -> None:
    descriptions = json.loads(DESCRIPTIONS.read_text())
    labels = json.loads((WEIGHTS_DIR / "references" / "index.json").read_text())["labels"]
    assert set(descriptions) == set(labels)
    for label, texts in descriptions.items():
        assert len(texts) == 2 and texts[0] != texts[1], label
        for text in texts:
            assert 4 <= len(text.split()) <= 12, (label, text)
            assert text.isascii() and not text.endswith("."), (label, text)
