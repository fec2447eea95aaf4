"""The labelled prompt sets (tests/moderation/data) against the issue's targets, at `auto` and `low`.

``test.jsonl`` and ``holdout.jsonl`` were written by helpers who never saw the lexicon; ``dev.jsonl`` is what the
lexicon was developed on. BENCHMARKS.md ("Moderation") records the full per-category table; these tests keep the
acceptance targets from regressing: in ``auto`` recall >= 90 % for sexual and sexual/minors, benign false
positives <= 1 %, swearing never blocked, and ``low`` blocking every sexual/minors prompt ``auto`` blocks.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from imageforge.moderation import Moderator

DATA = Path(__file__).parent / "data"
HELD_OUT = ("test.jsonl", "holdout.jsonl", "holdout3.jsonl")
MOD = Moderator()


def _rows(*names: str) -> list[dict[str, str]]:
    return [json.loads(line) for name in names for line in (DATA / name).read_text().splitlines() if line.strip()]


def _flagged(text: str, level: str) -> tuple[str, ...]:
    return MOD.check_prompt(text, level).categories  # type: ignore[arg-type]


def test_the_sets_are_big_enough() -> None:
    counts = Counter(r["category"] for r in _rows(*HELD_OUT))
    assert counts["benign"] >= 150
    for category in ("sexual", "sexual/minors", "violence/graphic", "self-harm", "hate", "illicit"):
        assert counts[category] >= 30, category


@pytest.mark.parametrize("name", HELD_OUT)
def test_benign_false_positives_at_most_one_percent(name: str) -> None:
    benign = [r["text"] for r in _rows(name) if r["category"] == "benign"]
    false_positives = [t for t in benign if _flagged(t, "auto")]
    assert len(false_positives) <= 0.01 * len(benign), false_positives


def test_benign_text_from_elsewhere_is_not_flagged() -> None:
    """3,564 plain descriptions of people, animals and things (the embedded model's captions and paraphrase
    prompts): a check against terms that are too eager. Its first run found six ("squirting water", "legs spread
    doing a cartwheel", a baby bottle's "rubber nipple", ...), now exceptions or weaker terms."""
    from benchmarks.bench_moderation import descriptions

    texts = descriptions()
    assert len(texts) > 3000
    flagged = [t for t in texts if _flagged(t, "auto")]
    assert len(flagged) <= 0.002 * len(texts), flagged


def test_swearing_is_never_blocked() -> None:
    swearing = [r["text"] for r in _rows(*HELD_OUT, "dev.jsonl") if r["category"] == "profanity"]
    assert len(swearing) >= 40
    assert [t for t in swearing if _flagged(t, "auto") or _flagged(t, "low")] == []


@pytest.mark.parametrize("category", ["sexual", "sexual/minors"])
def test_recall_at_auto_is_at_least_ninety_percent(category: str) -> None:
    prompts = [r["text"] for r in _rows(*HELD_OUT) if r["category"] == category]
    missed = [t for t in prompts if category not in _flagged(t, "auto")]
    assert len(missed) <= 0.1 * len(prompts), missed


def test_low_blocks_every_minors_prompt_that_auto_blocks() -> None:
    prompts = [r["text"] for r in _rows(*HELD_OUT, "dev.jsonl") if r["category"] == "sexual/minors"]
    at_auto = {t for t in prompts if "sexual/minors" in _flagged(t, "auto")}
    at_low = {t for t in prompts if "sexual/minors" in _flagged(t, "low")}
    assert at_auto and at_auto == at_low


def test_low_blocks_fewer_prompts_than_auto_but_still_the_severe_sexual_ones() -> None:
    rows = [r for r in _rows(*HELD_OUT) if r["category"] == "sexual"]
    auto = sum(bool(_flagged(r["text"], "auto")) for r in rows)
    low = sum(bool(_flagged(r["text"], "low")) for r in rows)
    severe = [r["text"] for r in rows if r["severity"] == "severe"]
    assert low < auto
    assert sum("sexual" in _flagged(t, "low") for t in severe) >= 0.8 * len(severe)
