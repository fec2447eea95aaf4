"""The user documentation (README.md and docs/*.md) as the tests read it: its code blocks, run as written."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def code_block(lang: str, marker: str) -> str:
    """The first ```lang block of the README or docs/ that contains ``marker``."""
    for doc in DOCUMENTS:
        for body in re.findall(rf"```{lang}\n(.*?)```", doc.read_text(), flags=re.S):
            if marker in body:
                return str(body)
    raise AssertionError(f"no ```{lang} block containing {marker!r} in README.md or docs/")
