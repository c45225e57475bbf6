"""What the commands print: events as lines, with a progress bar below them on a terminal.

Events go through :meth:`EventConsole.event` and always appear above the bar (rich's live
display), so the order on screen is the order things happened. Without a terminal (a pipe,
a file, CI) there is no bar and the events are plain lines, never wrapped or coloured.
"""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class RateColumn(ProgressColumn):
    """Items per second since the bar started (a long campaign's runs/s)."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        rate = task.completed / elapsed if elapsed > 0 else 0.0
        return Text(f"{rate:7.1f}/s")


class EventConsole:
    """``event(t, text)`` lines and one ``progress(done, total)`` bar."""

    def __init__(self, stream: TextIO | None = None, *, unit: str = "", rate: bool = False) -> None:
        """``unit`` labels the bar's count; ``rate`` adds items per second and the time left."""
        self.console = Console(file=stream or sys.stdout, highlight=False, soft_wrap=True)
        self.tty = self.console.is_terminal
        self.unit = unit
        self.rate = rate
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def event(self, t: float | None, text: str) -> None:
        """One line; ``t`` is the device time it happened at (None: no time column)."""
        line = text if t is None else f"[{t:9.3f} s] {text}"
        self.console.print(line, markup=False, emoji=False)

    def progress(self, done: int, total: int, label: str = "") -> None:
        """Move the bar (shown on a terminal only)."""
        if not self.tty or total <= 0:
            return
        if self._progress is None:
            columns: list[ProgressColumn] = [
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(self.unit),
                TimeElapsedColumn(),
            ]
            if self.rate:
                columns += [RateColumn(), TextColumn("ETA"), TimeRemainingColumn()]
            self._progress = Progress(*columns, console=self.console, transient=True)
            self._progress.start()
            self._task = self._progress.add_task(label, total=total)
        assert self._task is not None
        self._progress.update(self._task, completed=done, total=total, description=label)

    def close(self) -> None:
        """Remove the bar (the events stay)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __call__(self, done: int, total: int) -> None:
        """``progress`` as the explorers' callback."""
        self.progress(done, total, "cut runs")

    def end(self) -> None:
        self.close()
