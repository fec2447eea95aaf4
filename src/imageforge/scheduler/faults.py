"""Telling out-of-memory apart from other engine failures, and giving the memory back.

Out of memory is the one engine failure worth retrying: a smaller batch often fits. torch raises
``torch.cuda.OutOfMemoryError`` (a ``RuntimeError``) on GPUs and a ``RuntimeError`` naming the allocator on CPU;
Python raises ``MemoryError``. torch is only consulted if an engine already imported it, so the scheduler never
pulls torch into a process that serves without it.
"""

from __future__ import annotations

import gc
import sys

__all__ = ["free_memory", "is_out_of_memory"]

_OOM_WORDS = ("out of memory", "can't allocate memory", "cannot allocate memory", "failed to allocate")


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(exc, getattr(torch.cuda, "OutOfMemoryError", ())):
        return True
    return isinstance(exc, RuntimeError) and any(w in str(exc).lower() for w in _OOM_WORDS)


def free_memory() -> None:
    """Drop what the failed batch left behind: Python's garbage, then the CUDA caching allocator's blocks."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
