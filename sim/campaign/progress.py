"""The live view of a campaign: one bar per status with its count on a terminal (rich),
one plain line per second of wall time when the output is not a terminal.

Counts are of targeted devices by their latest reported status; ``waiting`` are those
that have reported nothing yet (a later wave, or still booting).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from typing import Any, TextIO

from sim.campaign.metrics import STATUSES, WAITING
from sim.campaign.probe import Report

PLAIN_EVERY_S = 1.0


class LiveStatus:
    """Feed it every report (:meth:`on_report`); it draws while the campaign runs."""

    def __init__(self, *, targeted: int, stream: TextIO | None = None, live: bool = True) -> None:
        self.stream = stream or sys.stdout
        self.targeted = targeted
        self.tty = self.stream.isatty()
        self.live = live
        self.latest: dict[str, str] = {}
        self._started = time.perf_counter()
        self._rich: Any = None
        self._tasks: dict[str, Any] = {}
        self._printer: asyncio.Task[None] | None = None
        self._last_line = ""

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in (WAITING, *STATUSES)}
        for status in self.latest.values():
            out[status] += 1
        out[WAITING] = self.targeted - len(self.latest)
        return out

    def on_report(self, device_id: str, report: Report) -> None:
        if report.status in STATUSES:
            self.latest[device_id] = report.status
        if self._rich is not None:
            counts = self.counts()
            for status, task in self._tasks.items():
                self._rich.update(task, completed=counts[status], count=counts[status])

    def line(self) -> str:
        counts = self.counts()
        body = "  ".join(f"{s} {counts[s]}" for s in (WAITING, *STATUSES))
        return f"[{time.perf_counter() - self._started:6.1f} s] {body}"

    async def __aenter__(self) -> LiveStatus:
        if not self.live:
            return self
        if self.tty:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn

            self._rich = Progress(
                TextColumn("{task.description:<12}"),
                BarColumn(bar_width=50),
                TextColumn("{task.fields[count]:>6} / {task.total}"),
                console=Console(file=self.stream),
                refresh_per_second=8,
            )
            for status in (WAITING, *STATUSES):
                self._tasks[status] = self._rich.add_task(status, total=self.targeted, count=0)
            self._rich.update(self._tasks[WAITING], completed=self.targeted, count=self.targeted)
            self._rich.start()
        else:
            self._printer = asyncio.ensure_future(self._plain())
        return self

    async def _plain(self) -> None:
        while True:
            await asyncio.sleep(PLAIN_EVERY_S)
            self._print_if_changed()

    def _print_if_changed(self) -> None:
        counts = self.line().split("] ", 1)[1]
        if counts != self._last_line:
            self._last_line = counts
            print(self.line(), file=self.stream, flush=True)

    async def __aexit__(self, *exc: object) -> None:
        if self._rich is not None:
            self._rich.stop()
        if self._printer is not None:
            self._printer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._printer
            self._print_if_changed()
