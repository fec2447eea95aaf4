"""Where the CLI's images go: the output format from ``--format`` and the file name, one file per image, and the
previews' names. Files are written atomically, so an interrupted run never leaves half an image."""

from __future__ import annotations

from pathlib import Path

from imageforge.errors import InvalidRequestError

__all__ = ["SUFFIX_FORMATS", "output_target", "partial_path", "result_paths"]

SUFFIX_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}


def output_target(output: Path | None, output_format: str | None, default_stem: str) -> tuple[str, Path]:
    """(format, file) from ``-o`` and ``--format``: either names the other, and they must agree."""
    out = output if output is not None else Path(default_stem)
    from_suffix = SUFFIX_FORMATS.get(out.suffix.lower())
    fmt = output_format or from_suffix or "png"
    if out.suffix == "":
        out = out.with_suffix("." + ("jpg" if fmt == "jpeg" else fmt))
    elif from_suffix is None:
        raise InvalidRequestError(f"cannot tell the format of {out.name}; use .png, .jpg or .webp", param="output")
    elif from_suffix != fmt:
        raise InvalidRequestError(f"--format {fmt} does not match the file name {out.name}", param="output_format")
    return fmt, out


def result_paths(out: Path, n: int) -> list[Path]:
    if n == 1:
        return [out]
    return [out.with_name(f"{out.stem}-{i}{out.suffix}") for i in range(1, n + 1)]


def partial_path(directory: Path, out: Path, image: int, n: int, index: int) -> Path:
    """``DIR/<stem>-partial-<index>.<ext>`` (``<stem>-<image>-partial-...`` when a request makes several images);
    ``index`` counts from 0, as ``partial_image_index`` does."""
    stem = out.stem if n == 1 else f"{out.stem}-{image + 1}"
    return directory / f"{stem}-partial-{index}{out.suffix}"
