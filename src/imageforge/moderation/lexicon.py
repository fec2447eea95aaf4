"""The prompt lexicon (``lexicon.toml``): phrases per category and tier, and a matcher over normalised words.

A phrase matches where each of its words equals one of the prompt word's readings (``text.Word.forms``, each
also de-pluralised by ``text.lookup_forms``), or, for a phrase word ending in ``*``, starts with it. A term found
entirely inside a matched *exception* phrase ("naked eye", "chicken breast") does not count; one that reaches
outside it does ("having sex" still counts in "having sex on the beach cocktails").
"""

from __future__ import annotations

import tomllib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from imageforge.moderation.text import Word, lookup_forms, words

__all__ = ["Lexicon", "Match", "PhraseSet"]


@dataclass(frozen=True)
class Match:
    label: str  # what the phrase stands for: "sexual:moderate", "minor", "exception", ...
    phrase: str  # the lexicon's phrase (never the prompt's text)
    start: int  # word positions in the prompt, end exclusive
    end: int


def _keys(word: Word) -> frozenset[str]:
    return frozenset(base for form in word.forms for base in lookup_forms(form))


class PhraseSet:
    """Phrases with a label each, matched at every position of a word sequence."""

    def __init__(self, phrases: Iterable[tuple[str, str]]) -> None:
        self._by_first: dict[str, list[tuple[tuple[str, ...], str, str]]] = defaultdict(list)
        self._prefixed: list[tuple[tuple[str, ...], str, str]] = []
        self.vocabulary: set[str] = set()  # every word of every phrase (for splitting spelled-out runs)
        for phrase, label in phrases:
            stem = phrase.rstrip("*")
            tokens = tuple(w.text for w in words(stem) if not w.joined)
            if not tokens:
                continue
            self.vocabulary.update(tokens)
            if stem != phrase:  # "decapitat*": the last word is a prefix
                tokens = (*tokens[:-1], tokens[-1] + "*")
            entry = (tokens, label, phrase)
            if tokens[0].endswith("*"):
                self._prefixed.append(entry)
            else:
                self._by_first[tokens[0]].append(entry)

    @staticmethod
    def _word_matches(token: str, keys: frozenset[str]) -> bool:
        if token.endswith("*"):
            stem = token[:-1]
            return any(k.startswith(stem) for k in keys)
        return token in keys

    def find(self, seq: Sequence[Word], within: Sequence[Match] = ()) -> list[Match]:
        """Every match in ``seq``, except those entirely inside one of the ``within`` spans (exceptions)."""
        keys = [_keys(w) for w in seq]
        out: list[Match] = []
        for i in range(len(seq)):
            candidates = [e for k in keys[i] for e in self._by_first.get(k, ())] + self._prefixed
            for tokens, label, phrase in candidates:
                end = i + len(tokens)
                if end > len(seq) or any(x.start <= i and end <= x.end for x in within):
                    continue
                if all(self._word_matches(t, keys[i + n]) for n, t in enumerate(tokens)):
                    out.append(Match(label, phrase, i, end))
        return out


@dataclass(frozen=True)
class Weights:
    severe: float
    moderate: float
    weak: float
    intensifier: float
    intensifier_min: float


class Lexicon:
    """Everything ``lexicon.toml`` holds, compiled into phrase sets."""

    TIERS = ("severe", "moderate", "weak")

    def __init__(self, data: dict[str, Any]) -> None:
        self.weights = Weights(**data["weights"])
        self.categories: tuple[str, ...] = tuple(data["categories"])
        self.exceptions = PhraseSet((p, "exception") for p in data["exceptions"]["phrases"])
        self.senses: dict[str, frozenset[str]] = {w: frozenset(ctx) for w, ctx in data.get("senses", {}).items()}
        terms: list[tuple[str, str]] = [(p, "minor") for p in data["minor"]["terms"]]
        for category, tiers in data["categories"].items():
            for tier, phrases in tiers.items():
                if tier not in (*self.TIERS, "intensifier"):
                    raise ValueError(f"lexicon: unknown tier {tier!r} in {category!r}")
                terms += [(p, f"{category}:{tier}") for p in phrases]
        self.terms = PhraseSet(terms)
        hate = data["hate_patterns"]
        self.hate = {name: PhraseSet((p, name) for p in hate[name])
                     for name in ("groups", "after_copula", "copulas", "near", "after", "before")}  # fmt: skip
        self.vocabulary = frozenset(self.terms.vocabulary.union(*(s.vocabulary for s in self.hate.values())) - {"*"})

    @classmethod
    def load(cls, path: Path | None = None) -> Lexicon:
        """The shipped lexicon, or an operator's own file in the same format."""
        if path is None:
            raw = resources.files("imageforge.moderation").joinpath("lexicon.toml").read_text(encoding="utf-8")
        else:
            raw = Path(path).read_text(encoding="utf-8")
        return cls(tomllib.loads(raw))

    def innocent(self, seq: Sequence[Word], match: Match, window: int = 6) -> bool:
        """A one-word match whose word's innocent sense a neighbour reveals (``[senses]``)."""
        if match.end - match.start != 1:
            return False
        context = self.senses.get(match.phrase)
        if not context:
            return False
        lo, hi = max(0, match.start - window), min(len(seq), match.end + window)
        return any(_keys(seq[j]) & context for j in range(lo, hi) if j != match.start)

    def weight(self, tier: str) -> float:
        return float(getattr(self.weights, tier))
