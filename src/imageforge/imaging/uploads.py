"""What the multipart form of ``POST /v1/images/edits`` and ``/v1/images/variations`` holds, framework-free.

``api/uploads.py`` reads the request into these; services (``serving/``) take them without importing FastAPI,
Starlette or Pillow. The bytes are not checked here: :func:`imageforge.imaging.decode.decode_upload` sniffs,
bounds and decodes them, naming ``param`` in every refusal.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ImageForm", "UploadedFile"]


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """One uploaded file: its bytes, and the parameter that names it in errors (``image``, ``image[1]``, ``mask``).

    The client's file name and part ``Content-Type`` are deliberately not kept: the format is sniffed from the
    bytes.
    """

    data: bytes
    param: str

    def __repr__(self) -> str:  # never dump megabytes of image into a log line
        return f"UploadedFile(param={self.param!r}, {len(self.data)} bytes)"


@dataclass(frozen=True, slots=True)
class ImageForm:
    """The form, in the order the client sent it.

    ``images``: every part named ``image``, ``image[]`` or ``image[N]``, in order of appearance. ``fields``: the
    text fields, empty strings dropped (the SDKs send ``None`` as ``""``), nested objects under their bracket
    names (``svg[model]``, ``svg[reasoning][effort]``) as sent.
    """

    images: tuple[UploadedFile, ...]
    mask: UploadedFile | None
    markup: UploadedFile | None
    fields: dict[str, str]
