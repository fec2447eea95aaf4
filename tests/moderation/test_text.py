"""Normalisation: the spellings an evasion uses are read as the word they hide."""

from __future__ import annotations

import pytest

from imageforge.moderation.text import lookup_forms, normalise, words


def _forms(text: str) -> set[str]:
    return {f for w in words(text) for form in w.forms for f in lookup_forms(form)}


@pytest.mark.parametrize(
    ("written", "hidden"),
    [
        ("N4K3D", "naked"),
        ("pr0n", "pron"),
        ("$ex", "sex"),
        ("s3xy", "sexy"),
        ("sexxx", "sex"),
        ("nuuude", "nude"),
        ("nüde", "nude"),  # accents
        ("ｎｕｄｅ", "nude"),  # full-width letters (NFKC)
        ("nudе", "nude"),  # the last letter is Cyrillic
        ("nu\u200bde", "nude"),  # a zero-width space inside
        ("nudes", "nude"),  # plural
        ("bodies", "body"),
    ],
)
def test_evasive_spellings_are_read(written: str, hidden: str) -> None:
    assert hidden in _forms(written)


@pytest.mark.parametrize("written", ["p o r n", "p.o.r.n", "p-o-r-n", "P O R N"])
def test_spelled_out_letters_are_joined(written: str) -> None:
    joined = [w for w in words(written) if w.joined]
    assert [w.text for w in joined] == ["porn"]


def test_ordinary_words_and_numbers_are_left_alone() -> None:
    assert normalise("Café  CRÈME") == "cafe  creme"
    seq = words("a 1024x1024 photo of 3 apples")
    assert [w.text for w in seq] == ["a", "1024x1024", "photo", "of", "3", "apples"]
    assert not any(w.joined for w in seq)  # one single letter is not a spelled-out word
    assert words("3")[0].forms == ("3",)  # pure numbers get no leetspeak reading
