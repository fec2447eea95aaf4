"""Prompt text as the lexicon sees it: normalised words, each with the spellings an evasion might hide.

1. NFKC (full-width letters, ligatures), look-alike letters from Cyrillic and Greek mapped to Latin, accents
   removed (NFKD without combining marks), case folded; zero-width characters and soft hyphens dropped.
2. Words are runs of letters, digits and the symbols leetspeak uses (``@ $ ! | + €``); everything else
   separates them.
3. Each word carries its *forms*: itself; its leetspeak reading (``n4k3d`` -> ``naked``, ``pr0n``, ``$ex``);
   squeezed repeats (``sexxx`` -> ``sex``, ``nuuude`` -> ``nude``). The lexicon matches any form.
4. Runs of single letters (``s e x``, ``p.o.r.n``, ``n-u-d-e``) are also read joined, as one word.

The lexicon stores singular base words; ``lookup_forms`` adds de-pluralised and de-inflected candidates so that
``nudes``, ``pornos``, ``bodies`` find ``nude``, ``porno``, ``body``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = ["Word", "lookup_forms", "normalise", "words"]

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
_LETTERS = re.compile(r"[a-z]+")
_TRIPLE = re.compile(r"([a-z])\1{2,}")
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
        for squeezed in (_TRIPLE.sub(r"\1", base), _DOUBLE.sub(r"\1", base)):
            if squeezed not in out:
                out.append(squeezed)
    return tuple(f for f in out if f)


def words(text: str) -> list[Word]:
    """The prompt's words (step 2-4); a joined single-letter run follows the letters it was read from."""
    out: list[Word] = []
    run: list[str] = []

    def close_run() -> None:
        if len(run) >= 3:
            joined = "".join(run)
            out.append(Word(joined, _forms(joined), joined=True))
        run.clear()

    for raw in _WORD.findall(normalise(text)):
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
