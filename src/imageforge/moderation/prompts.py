"""Scores a prompt per category from the lexicon, the way ``lexicon.toml``'s header describes.

1. Exception phrases are matched; a term entirely inside one does not count ("naked eye" leaves nothing for
   "naked"), nor does a word whose innocent sense a neighbour reveals (``[senses]``: "faggots in gravy"). The
   prompt is read twice, with leetspeak symbols inside words and with them as separators (``text.words``), and
   the terms of both readings count.
2. Every other term found adds its tier's weight to its category, combined as a noisy-OR over distinct terms
   (``1 - prod(1 - w)``): one moderate term gives 0.6, two weak ones 0.44, three 0.58.
3. An intensifier ("explicit", "how to", "step by step") counts only where its category already scores at least
   ``intensifier_min``: it turns "nude" into severe, and leaves "how to draw a cat" alone.
4. Hate without slurs: a group of people next to a dehumanising or eliminationist phrase is severe.
5. Minor context (a minor term, or an age under 18) with *any* sexual signal, even a weak one such as "sexy",
   makes the prompt ``sexual/minors`` at full score.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from functools import partial

from imageforge.moderation.lexicon import Lexicon, Match
from imageforge.moderation.text import Word, normalise, segment, words

__all__ = ["PromptClassifier", "PromptScores"]

_NUMBER_WORDS = {w: i for i, w in enumerate((
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
))}  # fmt: skip
_NUM = r"(\d{1,2}|" + "|".join(_NUMBER_WORDS) + r")"
# "12 year old", "12-year-old", "12 years old", "12 yrs old", "12yo", "12 y/o", "aged 12", "age: 12"; not
# "5 years later", and not the "five" of "twenty-five year old" (checked in _has_minor_age).
_AGES = (
    re.compile(rf"(?<![\d.,])\b{_NUM}\s*-?\s*(?:years?|yrs?)\s*-?\s*old\b"),
    re.compile(rf"(?<![\d.,])\b{_NUM}\s*(?:yo|y\s*/\s*o|y\.o\.?)(?![a-z])"),
    re.compile(rf"\bage(?:d|\s*:)?\s*{_NUM}\b"),
)
_TENS = re.compile(r"(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred)[\s-]*$")


def _age(token: str) -> int:
    return int(token) if token.isdigit() else _NUMBER_WORDS[token]


@dataclass(frozen=True)
class PromptScores:
    scores: dict[str, float]  # category -> 0..1
    minor: bool  # a minor is in the prompt (used by the output check too)
    terms: dict[str, list[str]] = field(default_factory=dict)  # category -> lexicon phrases found (for DEBUG logs)


class PromptClassifier:
    """The lexicon classifier; thread-safe (no state after construction)."""

    name = "lexicon"

    def __init__(self, lexicon: Lexicon | None = None) -> None:
        self.lexicon = lexicon or Lexicon.load()

    def classify(self, text: str) -> PromptScores:
        lex = self.lexicon
        split = partial(segment, vocabulary=lex.vocabulary)
        readings = [words(text, split=split), words(text, symbols=False, split=split)]
        excepted = [lex.exceptions.find(seq) for seq in readings]
        matches = [m for seq, exc in zip(readings, excepted, strict=True) for m in lex.terms.find(seq, exc)
                   if not lex.innocent(seq, m)]  # fmt: skip

        # 2-3. Noisy-OR per category over distinct phrases; intensifiers apply last.
        found: dict[str, dict[str, float]] = defaultdict(dict)
        boosts: dict[str, float] = {}
        minor = any(m.label == "minor" for m in matches) or self._has_minor_age(text)
        for m in matches:
            if m.label == "minor":
                continue
            category, tier = m.label.rsplit(":", 1)
            if tier == "intensifier":
                boosts[category] = lex.weights.intensifier
            else:
                found[category][m.phrase] = max(found[category].get(m.phrase, 0.0), lex.weight(tier))
        scores = {c: 0.0 for c in lex.categories}
        for category, phrases in found.items():
            keep = 1.0
            for w in phrases.values():
                keep *= 1.0 - w
            score = 1.0 - keep
            if category in boosts and score >= lex.weights.intensifier_min:
                score = 1.0 - (1.0 - score) * (1.0 - boosts[category])
            scores[category] = score

        # 4. Hate without slurs.
        hate_terms = [t for seq, exc in zip(readings, excepted, strict=True) for t in self._hate_patterns(seq, exc)]
        if hate_terms:
            scores["hate"] = 1.0
            found["hate"].update(dict.fromkeys(hate_terms, 1.0))

        # 5. A minor with any sexual signal.
        if minor and scores.get("sexual", 0.0) > 0.0:
            scores["sexual/minors"] = 1.0
        terms = {c: sorted(p) for c, p in found.items()}
        return PromptScores(scores=scores, minor=minor, terms=terms)

    @staticmethod
    def _has_minor_age(text: str) -> bool:
        norm = normalise(text)
        for pattern in _AGES:
            for m in pattern.finditer(norm):
                if _age(m.group(1)) < 18 and not (not m.group(1).isdigit() and _TENS.search(norm[: m.start(1)])):
                    return True
        return False

    def _hate_patterns(self, seq: list[Word], excepted: list[Match]) -> list[str]:
        """Rule 4: the phrases that made a group's mention hateful ("group ... vermin"), if any."""
        sets = self.lexicon.hate
        groups = sets["groups"].find(seq, excepted)
        if not groups:
            return []

        def starting(name: str) -> dict[int, list[Match]]:
            by_start: dict[int, list[Match]] = defaultdict(list)
            for m in sets[name].find(seq, excepted):
                by_start[m.start].append(m)
            return by_start

        copulas, after_copula, after = starting("copulas"), starting("after_copula"), starting("after")
        near, before = sets["near"].find(seq, excepted), sets["before"].find(seq, excepted)
        hits = []
        for g in groups:
            # "<group> are <dehumanising>" and "<group> must die"
            for c in copulas.get(g.end, []):
                for gap in (0, 1):  # "are all vermin": one word may sit between
                    hits += [f"{g.phrase} {c.phrase} {d.phrase}" for d in after_copula.get(c.end + gap, [])]
            hits += [f"{g.phrase} {a.phrase}" for a in after.get(g.end, [])]
            # "subhuman <group>", "<group> vermin"
            hits += [f"{n.phrase} ~ {g.phrase}" for n in near if (n.end <= g.start and g.start - n.end <= 2)
                     or (n.start >= g.end and n.start - g.end <= 2)]  # fmt: skip
            # "exterminate (the|all) <group>"
            for b in before:
                between = [w.text for w in seq[b.end : g.start]]
                if b.end == g.start or between in (["the"], ["all"], ["all", "the"], ["these"], ["those"]):
                    hits.append(f"{b.phrase} {g.phrase}")
        return hits
