"""URL paths the API serves that other parts of the API refer to."""

from __future__ import annotations

__all__ = ["FILES_PATH", "files_url"]

FILES_PATH = "/v1/images/files"  # where url-format images are served (routes/files.py)


def files_url(base_url: str, name: str, signature: str) -> str:
    """The signed URL of a stored image (``serving/delivery.py`` calls it through its ``link``)."""
    return f"{base_url.rstrip('/')}{FILES_PATH}/{name}?sig={signature}"
