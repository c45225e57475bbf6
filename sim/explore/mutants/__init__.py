"""The mutant registry: agent variants with one known bug each, and how to kill each.

``MUTANTS[name]`` is a :class:`Mutant`: ``factory()`` gives a fresh agent factory
for :class:`sim.device.SimDevice` / :func:`sim.explore.runner.run_scenario` (fresh, because
a mutant may keep state outside the flash), ``kill`` the cheapest deterministic
exploration that should make it break an invariant (and that the correct agent
passes). ``python -m sim fuzz --mutant NAME`` and ``tests/property/test_mutants.py``
use it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agent.engine import Agent
from agent.protocol import AgentFactory
from sim.explore.mutants import agents as m
from sim.explore.mutants.kills import Kill, kill_for

EXPLAIN = {
    "no_sync": "no sync during download: a cut loses everything since the start (weakness 1)",
    "no_etag": "resume by file size, no ETag / If-Match: a replaced blob is spliced (weakness 2)",
    "record_outside": "record outside the file system, written before the flash (weakness 7)",
    "range_200_appends": "a 200 answer to a Range request appended as resumed data (weakness 4)",
    "no_416_check": "a 416 on resume taken as complete, length never checked (weakness 5)",
    "reapply": "apply not idempotent: every delivery reinstalls (weakness 8)",
    "rollback": "an older version accepted (versions must only increase)",
    "record_before_sync": "the checkpoint record written before the data is synced",
    "stream_sha": "SHA-256 over the downloaded stream, not over what flash holds",
    "page_off_by_one": "a write ending on a 256-byte page boundary loses its last byte",
    "drop_failed_report": "a report whose send failed is dropped: the hub keeps a stale status",
    "record_in_place": "the progress record overwritten in place, not written aside and renamed",
}


@dataclass(frozen=True)
class Mutant:
    """One buggy agent: its name, the bug, a factory of agent factories, its kill."""

    name: str
    bug: str
    factory: Callable[[], AgentFactory]
    kill: Kill


def _fixed(cls: type[Agent]) -> Callable[[], AgentFactory]:
    return lambda: cls.from_board


_FACTORIES: dict[str, Callable[[], AgentFactory]] = {
    "no_sync": _fixed(m.staging_mutant("NoSyncAgent", m.NoSyncStaging)),
    "no_etag": _fixed(m.staging_mutant("NoEtagAgent", m.NoEtagStaging)),
    "record_outside": m.record_outside_factory,
    "range_200_appends": _fixed(m.downloader_mutant("RangeAppendAgent", m.RangeIgnoredAppends)),
    "no_416_check": _fixed(m.downloader_mutant("No416Agent", m.No416LengthCheck)),
    "reapply": _fixed(m.ReapplyAgent),
    "rollback": _fixed(m.RollbackAgent),
    "record_before_sync": _fixed(m.staging_mutant("RecordFirstAgent", m.RecordFirstStaging)),
    "stream_sha": _fixed(m.StreamShaAgent),
    "page_off_by_one": _fixed(m.staging_mutant("OffByOneAgent", m.PageOffByOneStaging)),
    "drop_failed_report": _fixed(m.DropFailedReportAgent),
    "record_in_place": _fixed(m.RecordInPlaceAgent),
}

MUTANTS: dict[str, Mutant] = {
    name: Mutant(name, EXPLAIN[name], factory, kill_for(name))
    for name, factory in _FACTORIES.items()
}

__all__ = ["MUTANTS", "Kill", "Mutant"]
