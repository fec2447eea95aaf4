"""The user documentation names what exists: every link, and every file or folder it names in backticks; and what
the README's commands leave behind is ignored by git."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.docs import DOCUMENTS, ROOT

# A path in backticks: folders end with "/", files have an extension; hub ids (org/name) have neither.
_PATH = re.compile(r"`([\w.\-]+(?:/[\w.\-]+)*(?:/|\.[A-Za-z0-9]+))`")
# Files the examples write (outputs, not parts of the repository).
_OUTPUTS = {"apple.png", "heart.png", "star.png", "blue-heart.png", "edited-heart.png", "mask.png", "models.toml"}


def _exists(name: str, doc: Path) -> bool:
    return any((base / name).exists() for base in (ROOT, ROOT / "src" / "imageforge", doc.parent))


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda d: d.name)
def test_every_link_and_named_path_exists(doc: Path) -> None:
    text = doc.read_text()
    missing = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if not target.startswith(("http://", "https://", "#")) and not (doc.parent / target.split("#")[0]).exists():
            missing.append(f"link {target}")
    for name in _PATH.findall(text):
        if "/" not in name and not name.endswith(".md"):
            continue  # a bare file name (heart.png) is an example's output unless it is a document
        if name in _OUTPUTS or name.startswith(("v1/", "http")):
            continue
        if not _exists(name, doc):
            missing.append(f"`{name}`")
    assert not missing, f"{doc.name} names what does not exist: {missing}"


def test_docs_reach_nothing_outside_the_repository() -> None:
    for doc in DOCUMENTS:
        assert "../shared" not in doc.read_text() and "DESIGN.md" not in doc.read_text(), doc.name


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout")
def test_what_the_readme_commands_leave_is_ignored() -> None:
    """`imageforge generate ... -o apple.png && imageforge serve` in the checkout: the image and the data directory."""
    paths = ["apple.png", "imageforge-data/url-signing.key", "imageforge-data/images/x.png", "star.webp"]
    ignored = subprocess.run(["git", "check-ignore", *paths], cwd=ROOT, capture_output=True, text=True).stdout
    assert sorted(ignored.split()) == sorted(paths)


def test_the_family_table_is_the_family_data() -> None:
    """docs/models.md shows what `--model` really runs (rewrite it with `python -m tests.family_table`)."""
    from tests.family_table import table

    assert table() in (ROOT / "docs" / "models.md").read_text()
