"""The services of a real app, in-process, on the fake engine (no moderation of outputs, no warm-up): for tests
of the serving layer's own logic, with faults injected."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from imageforge.api.app import build_state
from imageforge.api.state import AppState
from imageforge.config import Catalogue, ModelEntry, Settings


@pytest.fixture
def state(tmp_path: Path) -> Iterator[AppState]:
    catalogue = Catalogue({"gpt-image-1": ModelEntry(engine="fake", profile="gpt-image-1")})
    s = build_state(Settings(data_dir=tmp_path, moderation_output=False, warmup=False), catalogue)
    yield s
    s.engines.close()
    s.pipeline.delivery.encoder.close()
