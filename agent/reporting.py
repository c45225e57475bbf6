"""What the agent tells the cloud as it works: reports on change, progress by steps.

The original reports ``extFwInfo`` when its state changes (``docs/reference-design.md``,
"Reported properties"); here every report goes through :meth:`Reporter._emit`, which
drops a repeat of the last one and queues the rest for the twin in order, and download
progress is reported once per ``progress_step_percent`` (and at 100). :class:`Reporter`
is mixed into :class:`agent.engine.Agent`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from agent.record import Record
from agent.report import ErrorText, Report, Status, percent, to_reported

if TYPE_CHECKING:
    from agent.config import AgentConfig
    from agent.staging import Journal

log = logging.getLogger("agent.engine")  # the agent's log, as it always was


class Reporter:
    """The reporting half of the agent; the state it uses."""

    config: AgentConfig
    journal: Journal | None
    reports: list[Report]
    _progress_sent: int
    _last_report: Report | None
    _outbox: asyncio.Queue[Report]

    def _on_progress(self, done: int, total: int) -> None:
        step = self.config.progress_step_percent
        pct = percent(done, total)
        if pct // step != self._progress_sent // step or pct == 100:
            self._progress_sent = pct
            self._emit_progress(done, total)

    async def _report_progress(self, done: int, total: int, *, force: bool = False) -> None:
        if force:
            self._progress_sent = percent(done, total)
        self._emit_progress(done, total)

    def _emit_progress(self, done: int, total: int) -> None:
        assert self.journal is not None
        job = self.journal.record.job
        if job is None:
            return
        self._emit(
            Report(
                Status.DOWNLOADING,
                target_version=job.version,
                progress=percent(done, total),
                downloaded=done,
            )
        )

    async def _report_applied(self, version: int) -> None:
        await self._report(Report(Status.APPLIED, installed_version=version, progress=100))

    async def _report_failed(self, record: Record, detail: str | None = None) -> None:
        assert record.job is not None
        await self._report(
            Report(
                Status.ERROR,
                ErrorText(record.error),
                target_version=record.job.version,
                detail=detail,
            )
        )

    async def _report(self, report: Report) -> None:
        self._emit(report)
        await asyncio.sleep(0)  # let the sender run

    def _emit(self, report: Report) -> None:
        """Queue ``report`` for the twin if it differs from the last one (report on change)."""
        if report == self._last_report:
            return
        self._last_report = report
        self.reports.append(report)
        log.info("report: %s", to_reported(report)["extFwInfo"])
        self._outbox.put_nowait(report)
