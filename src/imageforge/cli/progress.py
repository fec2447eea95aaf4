"""The CLI's progress bar (rich): denoising steps in-process, the server's events with ``--server``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

__all__ = ["Bar", "step_progress"]


class Bar:
    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task

    def advance_to(self, done: int, total: int | None = None) -> None:
        # refresh: every state is drawn (a stream has few events, and each is worth showing), not 10 a second.
        self._progress.update(self._task, completed=done, total=total, refresh=True)

    def describe(self, text: str) -> None:
        self._progress.update(self._task, description=text)


@contextmanager
def step_progress(console: Console, description: str, total: int | None, unit: str = "steps") -> Iterator[Bar]:
    """A transient bar of ``total`` ``unit``; ``total=None`` pulses until the first ``advance_to`` gives one."""
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn(f"{{task.completed}}/{{task.total}} {unit}"),
        TimeElapsedColumn(), console=console, transient=True,
    ) as progress:  # fmt: skip
        yield Bar(progress, progress.add_task(description, total=total))
