"""The re-join shortcut: a cut run stops once its state provably equals the clean run's.

A **checkpoint** is a moment of the clean run at which the agent has just saved its
progress record (``agent/staging.py``'s journal). At each one the clean run notes the
record, the file system's logical content (every file's SHA-256, read from a
copy-on-write copy of the flash mounted without formatting), the MCU's state, and how
far the reports, requests, boots and device time had got.

A cut run (an explorer's continuation after its last cut) is watched the same way:
when its agent saves a record equal to that of a clean checkpoint reached after the
cut, and its file system's content and the MCU's state equal the clean run's there,
the two runs are in the same state, so from there the clean run already shows what
follows. The cut run stops (:class:`Rejoined`) and its record is its own prefix
spliced to the clean run's suffix (:func:`splice`), which the invariants judge as
they judge a full run. Nothing that counts bytes or requests may still be pending
(the newer version's publish, a rot waiting for its bytes): the two runs have read
different amounts, so such a run is never shortened. A configurable sample of cut
runs always runs to the end (``sim/explore/explorers.py``), and
``tests/property/test_rejoin.py`` shows both give the same verdicts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

from agent.engine import Agent
from agent.record import Record
from agent.twin import merge_patch
from agent.w25q128jv import SECTOR
from sim.device import reported_status
from sim.explore.fs_state import FlashState, flash_state
from sim.explore.result import RecordCheck, ScenarioResult

if TYPE_CHECKING:
    from sim.chip.w25q128 import W25Q128
    from sim.device import SimDevice
    from sim.explore.scenario import Scenario
    from sim.explore.wire import Wire
    from sim.mcu import SimMcuTarget
    from sim.ports.memory import MemoryFlash


class Run(Protocol):
    """What the shortcut reads and records of a :class:`sim.explore.runner.Run`."""

    s: Scenario
    chip: W25Q128
    device: SimDevice
    target: SimMcuTarget
    twin: Any
    wire: Wire
    memory: MemoryFlash | None
    boot_marks: list[int]
    record_checks: list[RecordCheck]
    record_before: bool
    boots_before: int
    cuts_before: int
    t0: float
    checkpoints: list[Checkpoint] | None
    rejoin: RejoinPlan | None

    def op_count(self) -> int: ...


@dataclass(frozen=True)
class Checkpoint:
    """The clean run just after its agent saved ``record`` (see the module doc)."""

    ops: int  # state-changing flash operations the clean run had latched by then
    record: Record
    site: Site  # where in the agent's code the record was saved
    flash: FlashState
    target: tuple[int, str, int]  # MCU version, SHA-256 of its image, installs so far
    reports: int
    requests: int
    boots: int
    device_time_s: float


class Rejoined(BaseException):
    """Raised inside a cut run's agent at the record save that re-joins ``checkpoint``.

    A ``BaseException`` so that no ``except Exception`` in the agent under test can
    swallow it; the runner catches it around the whole run.
    """

    def __init__(self, checkpoint: Checkpoint) -> None:
        super().__init__(f"re-joined the clean run at op {checkpoint.ops}")
        self.checkpoint = checkpoint


@dataclass(frozen=True)
class RejoinPlan:
    """What a cut run may re-join: the clean run's checkpoints from op ``after_ops`` on."""

    checkpoints: tuple[Checkpoint, ...]
    clean: ScenarioResult
    after_ops: int

    def candidates(self, record: Record) -> list[Checkpoint]:
        return [c for c in self.checkpoints if c.ops >= self.after_ops and c.record == record]


Site = tuple[tuple[Any, int], ...]
TAIL_SLACK = 4 * SECTOR  # beyond one checkpoint interval: the copied last block, odd chunks


def call_site(frame: FrameType | None) -> Site:
    """Where the agent is: (code, line) of every frame from ``frame`` up to the task's
    root. Equal records saved from different places (a boot's recovery against the
    first run's apply) are different states: what the agent does next differs."""
    site = []
    while frame is not None and frame.f_code.co_filename not in _LOOP_FILES:
        site.append((frame.f_code, frame.f_lineno))
        frame = frame.f_back
    return tuple(site)


_LOOP_FILES = frozenset((asyncio.events.__file__, asyncio.tasks.__file__))


def target_state(run: Run) -> tuple[int, str, int]:
    """The MCU's version, the SHA-256 of its image and its installs so far."""
    target = run.target
    return (target.current_version(), target.image_sha256(), len(target.installs))


def checkpoint(
    run: Run, record: Record, site: Site, ops: int, sectors: tuple[bytes, ...]
) -> Checkpoint | None:
    """The clean run's state at a record save, or None if its flash does not mount. Each
    file's last checkpoint interval and a few blocks are kept: a cut run re-joining here
    resumed at the checkpoint before, so it wrote again about that much
    (:mod:`sim.explore.fs_state`); files unchanged since the checkpoint before share its
    reading."""
    before = run.checkpoints[-1].flash if run.checkpoints else None
    keep = run.s.checkpoint_bytes + TAIL_SLACK
    state = flash_state(sectors, like=before, keep_tail=keep)
    if state is None:
        return None
    return Checkpoint(
        ops=ops,
        record=record,
        site=site,
        flash=state,
        target=target_state(run),
        reports=len(run.twin.reported_log),
        requests=len(run.wire.requests),
        boots=run.boots_before + run.device.boots,
        device_time_s=run.chip.clock.monotonic() - run.t0,
    )


def check_rejoin(
    run: Run,
    plan: RejoinPlan,
    record: Record,
    site: Site,
    sectors: Callable[[], tuple[bytes, ...]],
) -> None:
    """Raise :class:`Rejoined` if the cut run's state now equals a clean checkpoint's."""
    if run.wire.watchers:
        return  # something still counts bytes: the runs' futures differ
    candidates = [c for c in plan.candidates(record) if c.site == site]
    if not candidates:
        return
    target = target_state(run)
    state = flash_state(sectors(), like=candidates[0].flash)
    for cp in candidates:
        if state is not None and state == cp.flash and target == cp.target:
            raise Rejoined(cp)


def splice(run: Run, cp: Checkpoint, clean: ScenarioResult) -> ScenarioResult:
    """The cut run's record up to the re-join, then the clean run's from ``cp`` on."""
    s = run.s
    prefix = [reported_status(p) for p in run.twin.reported_log]
    suffix = clean.reports[cp.reports :]
    document = dict(run.twin.reported)
    for report in suffix:
        document = merge_patch(document, {"extFwInfo": report})
    boot = run.boots_before + run.device.boots
    marks = list(run.boot_marks) + [
        len(prefix) + m - cp.reports for m in clean.boot_marks if m > cp.reports
    ]
    requests = run.wire.records() + [
        dataclasses.replace(r, boot=r.boot - cp.boots + boot) for r in clean.requests[cp.requests :]
    ]
    boots = boot + clean.boots - cp.boots
    device_time = run.chip.clock.monotonic() - run.t0 + clean.device_time_s - cp.device_time_s
    reached = clean.reached and boots <= s.max_boots and device_time <= s.max_device_time_s
    return ScenarioResult(
        scenario=s,
        images=clean.images,
        reached=reached,
        boots=boots,
        cuts_fired=run.cuts_before + run.device.cuts,
        device_time_s=device_time,
        reports=prefix + suffix,
        boot_marks=marks,
        final_reported=reported_status(document),
        installs=list(run.target.installs) + list(clean.installs[cp.target[2] :]),
        target_version=clean.target_version,
        target_sha256=clean.target_sha256,
        requests=requests,
        faulted_requests=clean.faulted_requests,
        fs=clean.fs,  # the same files (checked at the re-join); the suffix is the clean run's
        newer_published=clean.newer_published,
        rot_landed=clean.rot_landed,
        crash=clean.crash,
        rejoined_at=cp.ops,
        record_checks=list(run.record_checks)
        + [
            dataclasses.replace(c, boot=c.boot - cp.boots + boot)
            for c in clean.record_checks
            if c.boot > cp.boots
        ],
        record_before=run.record_before,
    )


def watch_records(run: Run, agent: Any) -> None:
    """Note every record ``agent`` saves once it has booted: a clean run's checkpoints, or
    a cut run's chance to re-join. Only the project's agent (a mutant's included) keeps
    a journal to watch; an agent behind the seam alone runs every cut run to the end."""
    if not isinstance(agent, Agent):
        return
    boot = agent.boot

    def boot_and_watch() -> None:
        boot()
        journal = agent.journal
        if journal is None:
            return
        save = journal.save

        def save_and_note(record: Record) -> None:
            save(record)
            _saved(run, record, call_site(sys._getframe(1)))

        journal.save = save_and_note  # type: ignore[method-assign]

    agent.boot = boot_and_watch  # type: ignore[method-assign]


def _saved(run: Run, record: Record, site: Site) -> None:
    if run.checkpoints is not None and not run.wire.watchers:
        cp = checkpoint(run, record, site, run.op_count(), run.chip.snapshot().sectors)
        if cp is not None:
            run.checkpoints.append(cp)
    if run.rejoin is not None and run.memory is not None:
        check_rejoin(run, run.rejoin, record, site, run.memory.memory.freeze)
