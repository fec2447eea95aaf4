"""Hermetic tests: no network, no GPU, no settings leaking in from the environment."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator

import pytest

# The real PostgreSQL and Redis servers of the shared-store tests, started only by the tests that use them.
from tests.services import postgres_dsn, postgres_server, redis_server, redis_uri  # noqa: F401

# Any attempt to reach a model hub fails fast instead of hanging (set before diffusers/transformers import).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith("IMAGEFORGE_"):
            monkeypatch.delenv(key)
    yield


@pytest.fixture(autouse=True, scope="module")
def _collect_garbage_per_module() -> Iterator[None]:
    """Anything a test module leaks (an unclosed socket, say) is found when that module ends, so the warning
    fails the module that leaked it instead of whichever later test the garbage collector happens to run in."""
    yield
    gc.collect()
