"""Server-made ids: random (``secrets``), never derived from time or client input (DESIGN.md §5)."""

from __future__ import annotations

import secrets

__all__ = ["new_id"]


def new_id(prefix: str, nbytes: int = 16) -> str:
    """``prefix_`` + 32 hex characters (128 random bits by default): unguessable and safe in paths and URLs."""
    return f"{prefix}_{secrets.token_hex(nbytes)}"
