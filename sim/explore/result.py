"""The record of a finished scenario run: what :mod:`sim.explore.invariants` judges."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sim.explore.scenario import Scenario
from sim.mcu import InstallRecord


@dataclass(frozen=True)
class RequestRecord:
    """One GET as the device saw it: which boot, where its body started, bytes consumed."""

    boot: int
    url: str
    status: int
    start: int  # blob offset of the first body byte (0 for a 200)
    consumed: int  # body bytes the agent read
    max_read: int  # the largest single read: what can be in hand when the power goes
    etag: str | None
    asked: int | None = None  # the offset the agent's Range asked for (None: no Range)

    @property
    def resumed_at(self) -> int:
        """Where the agent chose to resume: what it asked for, even when the server
        ignored the Range and sent the blob from 0 (the agent then skips the prefix)."""
        return self.start if self.asked is None else self.asked


@dataclass(frozen=True)
class FsCheck:
    """File-system health after the run: mounted without formatting, old files intact."""

    mounted: bool
    formatted: bool
    error: str | None
    intact: dict[str, bool]


@dataclass(frozen=True)
class RecordCheck:
    """The progress record as a boot found it (:mod:`sim.explore.records`): readable or
    not (``problem`` says why), and whether there was one."""

    boot: int
    readable: bool
    present: bool
    problem: str | None = None


@dataclass
class ScenarioResult:
    """What happened: reports, installs, requests, cuts and the flash's final health."""

    scenario: Scenario
    images: dict[int, tuple[str, int]]  # version -> (sha256 upper hex, size)
    reached: bool
    boots: int
    cuts_fired: int
    device_time_s: float
    reports: list[dict[str, Any]]  # the extFwInfo section of each reported patch, in order
    boot_marks: list[int]  # index in ``reports`` at which each boot began
    final_reported: dict[str, Any]
    installs: list[InstallRecord]
    target_version: int
    target_sha256: str
    requests: list[RequestRecord]
    faulted_requests: int
    fs: FsCheck
    newer_published: bool = False
    rot_landed: int = 0  # flash bits flipped by ``Scenario.rot_bits``
    crash: str | None = None
    trace: list[str] = field(default_factory=list)
    rejoined_at: int | None = None  # the clean run's op count where a cut run re-joined it
    record_checks: list[RecordCheck] = field(default_factory=list)  # first boot, after cuts
    record_before: bool = False  # a record was on flash before the run's first look

    def expected_outcome(self) -> str:
        """``applied`` (the final version) or ``invalid`` (a stale instruction last)."""
        return "invalid" if self.scenario.stale else "applied"
