"""Prompt text as the lexicon sees it: normalised words, each with the spellings an evasion might hide.

1. NFKC (full-width letters, ligatures), look-alike letters from Cyrillic and Greek mapped to Latin, accents
   removed (NFKD without combining marks), case folded; zero-width characters and soft hyphens dropped.
2. Words are runs of letters, digits and the symbols leetspeak uses (``@ $ ! | + €``); everything else
   separates them. A second reading (``symbols=False``) splits at those symbols too, so that "nude!" and
   "sex+violence" are found; the lexicon matches both readings.
3. Each word carries its *forms*: itself; its leetspeak reading (``n4k3d`` -> ``naked``, ``pr0n``, ``$ex``);
   squeezed repeats (``sexxx`` -> ``sex``, ``nuuude`` -> ``nude``). The lexicon matches any form.
4. Runs of single letters (``s e x``, ``p.o.r.n``, ``n-u-d-e``) are also read joined, as one word, and, given a
   vocabulary, split into its words where it spells several (``c h i l d p o r n`` -> ``child porn``; never
   into pieces shorter than three letters, so ``G R A P E S`` stays ``grapes``).

The lexicon stores singular base words; ``lookup_forms`` adds de-pluralised and de-inflected candidates so that
``nudes``, ``pornos``, ``bodies`` find ``nude``, ``porno``, ``body``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Collection
from dataclasses import dataclass

__all__ = ["Word", "lookup_forms", "normalise", "segment", "words"]

# Latin look-alikes often used to dodge filters (Cyrillic and Greek letters that render like Latin ones).
_CONFUSABLES = str.maketrans({
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t",
    "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ɡ": "g", "α": "a", "β": "b", "ε": "e", "ι": "i",
    "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x",
})  # fmt: skip
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"), None)
_LEET = str.maketrans({"4": "a", "@": "a", "3": "e", "€": "e", "1": "i", "!": "i", "|": "i", "0": "o", "5": "s",
                       "$": "s", "7": "t", "+": "t", "8": "b", "9": "g"})  # fmt: skip
_WORD = re.compile(r"[a-z0-9@$!|+€]+")
_PLAIN_WORD = re.compile(r"[a-z0-9]+")
_LETTERS = re.compile(r"[a-z]+")
_TRIPLE = re.compile(r"([a-z])\1{2,}")  # three or more: read as two ("pussssy") and as one ("sexxx")
_DOUBLE = re.compile(r"([a-z])\1+")


def normalise(text: str) -> str:
    """Steps 1 of the module docstring: one canonical, lower-case, accent-free string."""
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE).lower().translate(_CONFUSABLES)
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return text.casefold()


@dataclass(frozen=True)
class Word:
    text: str  # as written (normalised)
    forms: tuple[str, ...]  # every reading the lexicon should try, the word itself first
    joined: bool = False  # read from a run of single letters (``s e x``)


def _forms(raw: str) -> tuple[str, ...]:
    out = [raw]
    if not raw.isdigit():
        leet = raw.translate(_LEET)
        if leet != raw and _LETTERS.fullmatch(leet):
            out.append(leet)
    for base in list(out):
        for squeezed in (_TRIPLE.sub(r"\1\1", base), _DOUBLE.sub(r"\1", base)):
            if squeezed not in out:
                out.append(squeezed)
    return tuple(f for f in out if f)


_MAX_RUN = 40  # longest spelled-out run that is split into words (the split is quadratic)


def segment(joined: str, vocabulary: Collection[str]) -> list[str] | None:
    """``joined`` as the fewest words of ``vocabulary`` (each of three letters or more, or "a"), if it is
    made of at least two; else None."""
    n = len(joined)
    if n > _MAX_RUN:
        return None
    best: list[list[str] | None] = [[]] + [None] * n  # best[i]: the split of joined[:i]
    for end in range(1, n + 1):
        for start in range(end):
            piece, before = joined[start:end], best[start]
            if before is None or (len(piece) < 3 and piece != "a"):
                continue
            if any(f in vocabulary for f in lookup_forms(piece)):
                current = best[end]
                if current is None or len(before) + 1 < len(current):
                    best[end] = [*before, piece]
    parts = best[n]
    return parts if parts is not None and len(parts) >= 2 else None


def words(text: str, *, symbols: bool = True, split: Callable[[str], list[str] | None] | None = None) -> list[Word]:
    """The prompt's words (step 2-4); a joined single-letter run follows the letters it was read from, then
    the words ``split`` finds in it."""
    pattern = _WORD if symbols else _PLAIN_WORD
    out: list[Word] = []
    run: list[str] = []

    def close_run() -> None:
        if len(run) >= 3:
            joined = "".join(run)
            out.append(Word(joined, _forms(joined), joined=True))
            for part in (split(joined) if split else None) or ():
                out.append(Word(part, _forms(part), joined=True))
        run.clear()

    for raw in pattern.findall(normalise(text)):
        letters = raw.translate(_LEET) if not raw.isdigit() else raw
        if len(letters) == 1 and letters.isalpha():
            run.append(letters)
        else:
            close_run()
        out.append(Word(raw, _forms(raw)))
    close_run()
    return out


def lookup_forms(form: str) -> tuple[str, ...]:
    """``form`` and its likely base words: plural and a few inflections stripped (``bodies`` -> ``body``)."""
    out = [form]
    if len(form) > 3:
        if form.endswith("ies"):
            out.append(form[:-3] + "y")
        if form.endswith("es"):
            out.append(form[:-2])
        if form.endswith("s") and not form.endswith("ss"):
            out.append(form[:-1])
    return tuple(out)
