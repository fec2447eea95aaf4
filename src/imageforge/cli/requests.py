"""The request a ``generate`` or ``edit`` command line makes: the same fields a client sends to the API, read from
the flags, and the input files of an edit. In-process and ``--server`` runs start from the same fields, so both
are refused (or served) alike."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imageforge.errors import InvalidRequestError
from imageforge.imaging.uploads import UploadedFile

__all__ = ["EditFiles", "preview_count", "read_edit_files", "request_fields"]

_FLAG_FIELDS = ("size", "quality", "background", "complexity", "output_compression", "n")


def request_fields(ns: argparse.Namespace, model: str, fmt: str, *, gpt: bool) -> dict[str, Any]:
    """The API fields the flags set. DALL·E models take no ``output_format`` (png is their format)."""
    fields: dict[str, Any] = {"prompt": ns.prompt, "model": model}
    for name in _FLAG_FIELDS:
        if getattr(ns, name) is not None:
            fields[name] = getattr(ns, name)
    if gpt:
        fields["output_format"] = fmt
    elif fmt != "png":
        raise InvalidRequestError(f"{model} produces png only", param="output_format")
    if getattr(ns, "input_fidelity", None) is not None:
        fields["input_fidelity"] = ns.input_fidelity
    return fields


def preview_count(ns: argparse.Namespace, *, default: int) -> int:
    """How many previews to take: ``--partial-images``, else 2 when ``--partials`` asks for them, else ``default``.
    The API's own bound (0-3) is checked here too, so an in-process run refuses what a server would."""
    k = ns.partial_images
    if k is None:
        return 2 if ns.partials is not None else default
    if not 0 <= k <= 3:
        raise InvalidRequestError(f"Invalid 'partial_images': {k}. Expected a value between 0 and 3.",
                                  param="partial_images")  # fmt: skip
    return int(k)


@dataclass(frozen=True)
class EditFiles:
    images: list[UploadedFile]
    mask: UploadedFile | None
    names: list[str]  # file names, for multipart parts
    mask_name: str | None


def _read(path: Path, param: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidRequestError(f"cannot read {path}: {exc.strerror or exc}", param=param) from None


def read_edit_files(images: list[Path], mask: Path | None) -> EditFiles:
    """The files of ``--image`` (named as the API names them: ``image``, then ``image[1]``, ...) and ``--mask``."""
    params = ["image"] if len(images) == 1 else [f"image[{i}]" for i in range(len(images))]
    files = [UploadedFile(_read(p, param), param) for p, param in zip(images, params, strict=True)]
    mask_file = UploadedFile(_read(mask, "mask"), "mask") if mask is not None else None
    return EditFiles(files, mask_file, [p.name for p in images], mask.name if mask is not None else None)
