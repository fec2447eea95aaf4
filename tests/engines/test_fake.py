"""The fake engine honours the same contract, so server tests built on it mean something."""

from __future__ import annotations

import pytest

from imageforge.engines.fake import FakeEngine
from imageforge.errors import EngineError
from imageforge.params import GenerationParams
from tests.engines.contract import EngineContract


@pytest.fixture
def engine() -> FakeEngine:
    e = FakeEngine()
    e.load()
    return e


class TestFakeContract(EngineContract):
    pass


def test_fails_on_demand_after_the_given_steps() -> None:
    engine = FakeEngine(fail_on="boom", fail_after_steps=2)
    seen: list[int] = []
    with pytest.raises(EngineError, match="on purpose"):
        engine.generate(
            [GenerationParams(prompt="boom", width=8, height=8, steps=5, seed=1)], on_step=lambda s: seen.append(s.step)
        )
    assert seen == [1, 2]


def test_records_its_batches() -> None:
    engine = FakeEngine()
    a = GenerationParams(prompt="a", width=8, height=8, steps=1, seed=1)
    b = GenerationParams(prompt="b", width=8, height=8, steps=1, seed=2)
    engine.generate([a, b])
    assert engine.calls == [[a, b]]


def test_img2img_needs_at_least_one_step() -> None:
    from PIL import Image

    with pytest.raises(ValueError, match="at least 1"):
        GenerationParams(
            prompt="x", width=8, height=8, steps=3, seed=1, init_image=Image.new("RGB", (8, 8)), strength=0.2
        )
