"""How to kill each mutant: the cheapest deterministic exploration that breaks it.

A :class:`Kill` is either a list of scenarios run from zero (``scenarios``) or a
systematic explorer schedule over one scenario (``schedule``, ``stride``,
``first``..``last`` op window). :func:`execute` runs it against an agent factory and
returns the violations of the first failing run (none for a correct agent).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.protocol import AgentFactory
from sim.cloud.blobserver import BlobServer
from sim.cloud.twin_faults import TwinFault
from sim.explore.explorers import Explorer
from sim.explore.invariants import Violation, check_all
from sim.explore.runner import run_scenario
from sim.explore.scenario import ChannelFault, Cut, Scenario

KIB = 1024


@dataclass(frozen=True)
class Kill:
    """A budget of runs that should make a mutant break an invariant."""

    scenarios: tuple[Scenario, ...] = ()
    explore: Scenario | None = None
    schedule: str = "log"
    stride: int = 1
    first: int = 1
    last: int | None = None

    def budget(self) -> str:
        if self.explore is not None:
            window = f"ops {self.first}..{self.last or 'end'}"
            return f"{self.schedule} schedule (stride {self.stride}, {window}) over one scenario"
        return f"{len(self.scenarios)} scenario run(s) from zero"


def _plan(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"rules": list(rules)}


def _rule(fault: str, request: int, **params: Any) -> dict[str, Any]:
    return {
        "fault": fault,
        "params": params,
        "blob": "ota/fw-v2.bin",
        "requests": [request, request],
    }


SMALL = Scenario(image_size=64 * KIB, checkpoint_bytes=16 * KIB)
# The new job's start lies about 36 state-changing ops after the publish (the 8 KiB read
# before the stall is written, the old file closed, then removed); the window has slack
# for the agent's op counts to move a little.
RECORD_OUTSIDE_FIRST, RECORD_OUTSIDE_LAST = 28, 46

KILLS: dict[str, Kill] = {
    # a cut late in the download loses far more than one checkpoint
    "no_sync": Kill(explore=SMALL, schedule="log"),
    # the blob held other bytes of the same size until request 2 (a late upload)
    "no_etag": Kill(
        scenarios=(
            dataclasses.replace(
                SMALL,
                fault_plan=_plan(_rule("timeout", 1, timeout_s=0, after_bytes=20 * KIB)),
                late_upload_at_request=2,
            ),
        )
    ),
    # a newer version published while the download is stalled (the server holds the
    # connection after 40 KiB), then a cut in each operation around the new job's start:
    # the closing sync of the old partial image and the removal that follows the record
    "record_outside": Kill(
        scenarios=tuple(
            dataclasses.replace(
                SMALL,
                newer_at_bytes=40 * KIB,
                fault_plan=_plan(_rule("timeout", 1, timeout_s=0, after_bytes=40 * KIB)),
                cuts=(Cut(after_ops=k, fraction=0.5, anchor="newer"),),
            )
            for k in range(RECORD_OUTSIDE_FIRST, RECORD_OUTSIDE_LAST + 1)
        )
    ),
    "range_200_appends": Kill(
        scenarios=(
            dataclasses.replace(
                SMALL,
                fault_plan=_plan(
                    _rule("timeout", 1, timeout_s=0, after_bytes=20 * KIB), _rule("ignore_range", 2)
                ),
            ),
        )
    ),
    "no_416_check": Kill(
        scenarios=(
            dataclasses.replace(
                SMALL,
                fault_plan=_plan(
                    _rule("timeout", 1, timeout_s=0, after_bytes=20 * KIB),
                    _rule("status", 2, status=416),
                ),
            ),
        )
    ),
    "reapply": Kill(scenarios=(dataclasses.replace(SMALL, image_size=4 * KIB, redeliver=True),)),
    "rollback": Kill(scenarios=(dataclasses.replace(SMALL, image_size=4 * KIB, stale=True),)),
    # cut inside the sync that follows the early record: every op of the 2nd..3rd checkpoint
    "record_before_sync": Kill(explore=SMALL, schedule="linear", first=120, last=270),
    # a bit of the staged image rots after it was written and read back, before the verify
    # (littlefs reads every program back, so a stuck bit alone is caught on write)
    "stream_sha": Kill(scenarios=(dataclasses.replace(SMALL, rot_bits=(32 * KIB * 8 + 3,)),)),
    # a cut in the first record save (the new job's): the truncation is committed, the
    # new bytes are not, and the next boot finds an empty record (readable-record)
    "record_in_place": Kill(explore=SMALL, schedule="linear", first=1, last=9),
    "page_off_by_one": Kill(scenarios=(dataclasses.replace(SMALL, image_size=4 * KIB),)),
    # the hub goes down 1 s into the download (the whole run takes about 3 s of device
    # time) for 10 minutes: every report made meanwhile fails, ``applied`` among them
    "drop_failed_report": Kill(
        scenarios=(
            dataclasses.replace(
                SMALL,
                twin_faults=(
                    ChannelFault(TwinFault("drop_connection", at_s=1.0)),
                    ChannelFault(TwinFault("refuse_connect", at_s=1.0, for_s=600.0)),
                ),
            ),
        )
    ),
}


def kill_for(name: str) -> Kill:
    return KILLS[name]


async def execute(kill: Kill, factory: Callable[[], AgentFactory] | None) -> list[Violation]:
    """Run ``kill`` with agents from ``factory`` (None: the correct agent); the violations
    of the first run that breaks an invariant, or [] when every run passes."""
    if kill.explore is not None:
        async with BlobServer() as server:
            explorer = Explorer(kill.explore, server, agent_factory=factory() if factory else None)
            clean = await explorer.prepare()
            violations = check_all(clean.result)
            if violations:
                return violations
            last = min(kill.last or len(clean.ops), len(clean.ops))
            for i in range(kill.first, last + 1, kill.stride):
                if kill.schedule == "log" and i & (i - 1):
                    continue
                _, result = await explorer.cut_run(i)
                violations = check_all(result)
                if violations:
                    return violations
        return []
    for scenario in kill.scenarios:
        result = await run_scenario(scenario, agent_factory=factory() if factory else None)
        violations = check_all(result)
        if violations:
            return violations
    return []
