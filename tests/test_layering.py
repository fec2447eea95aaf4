"""Import direction (DESIGN.md §2): checked from the source, so a wrong import fails here, not in review."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "imageforge"

# package -> modules it must never import (at module level or inside functions)
FORBIDDEN = {
    "engines": ("imageforge.protocol", "imageforge.api", "imageforge.serving", "imageforge.cli", "fastapi"),
    "imaging": ("imageforge.engines", "imageforge.protocol", "imageforge.api", "fastapi", "torch"),
    "params.py": ("imageforge.engines", "imageforge.api", "torch", "fastapi"),
    "errors.py": ("imageforge.", "fastapi", "torch", "PIL"),
    "profiles.py": ("imageforge.engines", "imageforge.api", "torch", "PIL", "fastapi"),
    "validation.py": ("imageforge.engines", "imageforge.api", "imageforge.serving", "torch", "fastapi"),
    "validation_edits.py": ("imageforge.engines", "imageforge.api", "imageforge.serving", "torch", "fastapi", "PIL"),
    "protocol": ("imageforge.engines", "imageforge.api", "imageforge.serving", "fastapi", "starlette", "torch", "PIL"),
    "serving": ("imageforge.api", "fastapi", "starlette", "torch", "PIL"),
    "storage": ("imageforge.engines", "imageforge.api", "fastapi", "starlette", "torch", "PIL"),
    "scheduler": ("imageforge.api", "imageforge.serving", "fastapi", "starlette"),
    "moderation": (
        "imageforge.api",
        "imageforge.serving",
        "imageforge.scheduler",
        "imageforge.engines",
        "imageforge.protocol",
        "fastapi",
        "starlette",
        "torch",
    ),
}
HEAVY_AT_IMPORT = ("torch", "diffusers", "transformers")


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module, at_module_level) for every import in the file."""
    tree = ast.parse(path.read_text())
    top = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, id(node) in top))
    return out


def _files(target: str) -> list[Path]:
    p = SRC / target
    return sorted(p.rglob("*.py")) if p.is_dir() else [p]


@pytest.mark.parametrize("target", sorted(FORBIDDEN))
def test_import_direction(target: str) -> None:
    for path in _files(target):
        for module, _ in _imports(path):
            for bad in FORBIDDEN[target]:
                assert not (module == bad.rstrip(".") or module.startswith(bad)), f"{path.name} imports {module}"


def test_heavy_libraries_are_imported_lazily() -> None:
    """torch/diffusers/transformers load inside the engines that need them, so the CLI and server start without."""
    # only imported by the engine's load()
    allowed = {SRC / "engines" / "embedded" / name for name in ("sampler.py", "upscaler.py", "colours.py")}
    for path in SRC.rglob("*.py"):
        if path in allowed:
            continue
        for module, top_level in _imports(path):
            if top_level and module.split(".")[0] in HEAVY_AT_IMPORT:
                pytest.fail(f"{path.relative_to(SRC)} imports {module} at module level")


def test_ray_stays_inside_the_distributed_backend() -> None:
    """The single-process server never loads Ray: only ``imageforge.distributed`` imports it, inside functions,
    and only ``serve --backend ray`` reaches that package."""
    for path in SRC.rglob("*.py"):
        inside = path.is_relative_to(SRC / "distributed")
        for module, top_level in _imports(path):
            root = module.split(".")[0]
            if root == "ray":
                assert inside and not top_level, f"{path.relative_to(SRC)} imports {module}"
            if module.startswith("imageforge.distributed") and not inside:
                assert path == SRC / "cli" / "serve.py" and not top_level, f"{path.relative_to(SRC)} imports {module}"
