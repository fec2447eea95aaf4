"""GPU tests: run with ``pytest -m gpu tests/gpu`` on a machine with CUDA; anywhere else they skip and say why.

The default run deselects them (``-m 'not gpu'`` in pyproject.toml). The skip is decided at setup, before any
fixture runs, so a machine without a GPU never builds the toy pipeline.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from tests.gpu.pipelines import save_sd_turbo_small


@functools.cache
def _no_cuda_reason() -> str | None:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return "needs a CUDA GPU: torch is not installed"
    if not torch.cuda.is_available():
        return f"needs a CUDA GPU: torch.cuda.is_available() is False (torch {torch.__version__})"
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("gpu") is not None:
        reason = _no_cuda_reason()
        if reason is not None:
            pytest.skip(reason)


@pytest.fixture(scope="session")
def sd_turbo_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy SD-Turbo-shaped pipeline, built once per session (on the CPU, in fp32, as users' files are)."""
    return save_sd_turbo_small(tmp_path_factory.mktemp("gpu-pipelines"))
