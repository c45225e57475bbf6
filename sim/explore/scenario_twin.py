"""The twin of a scenario run: the in-process twin, seeded with the reports made before
the run's start, that tells the run (the operator watching the hub) of every report as it
reaches the hub (:attr:`ScenarioTwin.on_report`). A run whose channel breaks uses
:class:`sim.explore.channel.ChannelTwin`, the same twin behind the fault vocabulary.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agent.twin import merge_patch
from sim.cloud.twin import InProcessTwin


class ScenarioTwin(InProcessTwin):
    """The in-process twin of a run, seeded with the reports made before its start."""

    def __init__(self, reports: list[dict[str, Any]] | None = None) -> None:
        super().__init__()
        self.reported_log = [dict(patch) for patch in reports or ()]
        for patch in self.reported_log:
            self.reported = merge_patch(self.reported, patch)
        self.on_report: Callable[[dict[str, Any]], None] | None = None

    async def report(self, patch: dict[str, Any]) -> None:
        await super().report(patch)
        if self.on_report is not None:
            self.on_report(patch)
