"""Progress of the long commands (import, export, check, sweep): a bar drawn by rich
while standard output is a terminal, nothing at all otherwise, so that a command run
from cron or a pipe prints only what it is asked for."""

from __future__ import annotations

import sys
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def on_terminal() -> bool:
    """Whether standard output is a terminal a person watches."""
    return sys.stdout.isatty()


def plural(count: int, word: str) -> str:
    """``1 session``, ``2 sessions``, ``0 sessions``."""
    return f"{count:,} {word}" if count == 1 else f"{count:,} {word}s"


class Bar:
    """A progress bar of ``description`` counted in ``unit``\\ s, shown only when
    ``shown``; ``total`` None draws a bar without an end (the count still shows)."""

    def __init__(self, description: str, unit: str, *, shown: bool) -> None:
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        if shown:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(unit + "s"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(file=sys.stdout),
                # The summary line replaces the bar: a finished command leaves one line.
                transient=True,
            )
            self._task = self._progress.add_task(description, total=None)

    def __enter__(self) -> Bar:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, completed: int, total: int | None = None) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=completed, total=total)
