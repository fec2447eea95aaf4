from __future__ import annotations

from collections.abc import Iterator

import pytest

from imageforge.engines.embedded.engine import EmbeddedEngine


@pytest.fixture(scope="session")
def embedded_engine() -> Iterator[EmbeddedEngine]:
    """The shipped embedded model, loaded once for every test that needs it."""
    e = EmbeddedEngine(device="cpu")
    e.load()
    yield e
    e.close()
