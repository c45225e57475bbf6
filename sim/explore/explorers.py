"""Systematic power-loss explorers: linear, log, exhaustive pairs and torn cuts.

Like littlefs's test runner and MCUboot's simulator (``docs/peers.md``): one
clean run of a scenario counts its state-changing flash operations (page programs,
erases, status writes); then each cut run cuts after operation *i* (``linear``: every
*i*; ``log``: 1, 2, 4, 8...; ``exhaustive``: every pair *i*, *j* with the second cut
*j* operations into the next boot) or inside it at a fraction (``torn``: a torn
program or partial erase, which neither of those tools can reach), boots a new agent,
runs to the end and checks every invariant (:mod:`sim.explore.invariants`).

Speed: a cut run never replays the prefix. The clean run snapshots the chip before
every operation (copy-on-write per sector, :meth:`sim.chip.w25q128.W25Q128.snapshot`,
kept as what each operation changed: :mod:`sim.explore.snapshots`) together with the
MCU's state, the reports and the requests so far; a cut run
restores the snapshot before operation *i*, replays that one command with a cut
scheduled inside it, and continues from there. A single-cut continuation runs on
:class:`sim.ports.memory.MemoryFlash` (the same bytes, no SPI model: nothing can cut it
any more); exhaustive pairs continue on the chip so the second cut can land.
Findings carry a :class:`sim.explore.scenario.Scenario` that replays from zero.
"""

from __future__ import annotations

import dataclasses
import gc
import random
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

from agent.protocol import AgentFactory
from agent.w25q128jv import STATE_CHANGING, WRITE_STATUS, Op
from sim.chip.w25q128 import W25Q128, ChipSnapshot
from sim.cloud.blobserver import BlobServer
from sim.explore.invariants import Violation, check_all, checked
from sim.explore.rejoin import Checkpoint, RejoinPlan
from sim.explore.result import ScenarioResult
from sim.explore.runner import StartState, run_scenario
from sim.explore.scenario import Cut, Scenario
from sim.explore.snapshots import SnapshotLog
from sim.explore.stage import Stage
from sim.mcu import InstallRecord
from sim.ports.aimed_cut import KINDS
from sim.ports.wrapper import PortWrapper

SCHEDULES = ("linear", "log", "exhaustive", "torn")
_WREN = bytes([Op.WRITE_ENABLE])
DEFAULT_FULL_SAMPLE = 0.05  # cut runs that run to the end even where they re-join
SETTLE_S = 10.0  # longer than any single operation's datasheet maximum but chip erase


@dataclass(frozen=True, slots=True)
class OpPoint:
    """The state just before one state-changing operation of the clean run."""

    index: int  # 1-based
    command: bytes  # the whole command as sent (opcode, address, data)
    target_image: bytes
    target_version: int
    installs: tuple[InstallRecord, ...]
    reports: int  # reports made before it
    boot_marks: tuple[int, ...]
    requests: tuple[dict[str, Any], ...]

    @property
    def kind(self) -> str:
        opcode = self.command[0]
        return KINDS.get(
            opcode, "write_status" if opcode in WRITE_STATUS else Op(opcode).name.lower()
        )


@dataclass
class CleanRun:
    """The uninterrupted run: its operations (with snapshots), its record and its
    checkpoints (the states a cut run may re-join, :mod:`sim.explore.rejoin`)."""

    ops: list[OpPoint]
    result: ScenarioResult
    reports: list[dict[str, Any]]
    checkpoints: tuple[Checkpoint, ...] = ()
    snapshots: SnapshotLog = field(default_factory=SnapshotLog)

    def snapshot(self, index: int) -> ChipSnapshot:
        """The chip just before operation ``index`` (1-based)."""
        return self.snapshots.snapshot(index - 1)


@dataclass(frozen=True)
class Finding:
    """A cut run that broke an invariant, with the scenario that replays it."""

    scenario: Scenario
    violations: tuple[Violation, ...]

    def __str__(self) -> str:
        cuts = "; ".join(c.describe() for c in self.scenario.cuts) or "no cut"
        return f"{cuts}: " + "; ".join(str(v) for v in self.violations)


@dataclass
class Exploration:
    """What an explorer did: runs, findings, wall time."""

    schedule: str
    ops: int
    runs: int = 0
    findings: list[Finding] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def runs_per_s(self) -> float:
        return self.runs / self.wall_s if self.wall_s > 0 else 0.0


class _LastTuple:
    """A list as a tuple, the same tuple as last time while its items are unchanged (a
    clean run notes one per operation: tens of thousands)."""

    def __init__(self) -> None:
        self._last: tuple[Any, ...] = ()

    def __call__(self, items: list[Any]) -> tuple[Any, ...]:
        if len(self._last) != len(items) or list(self._last) != items:
            self._last = tuple(items)
        return self._last


class _Recorder(PortWrapper):
    """A port in front of the chip's that snapshots before each state-changing command."""

    def __init__(self, run: Any, port: Any, chip: W25Q128) -> None:
        super().__init__(port)
        self._run, self._chip = run, chip
        self.ops: list[OpPoint] = []
        self.snapshots = SnapshotLog()
        self._target_cache: tuple[tuple[int, int], bytes] | None = None
        self._requests: tuple[dict[str, Any], ...] = ()
        self._installs, self._marks = _LastTuple(), _LastTuple()

    def exchange(
        self,
        out: bytes | bytearray = b"",
        readlen: int = 0,
        start: bool = True,
        stop: bool = True,
        duplex: bool = False,
        droptail: int = 0,
    ) -> bytes:
        if start and out and out[0] in STATE_CHANGING:
            self._record(bytes(out))
        return super().exchange(out, readlen, start, stop, duplex, droptail)

    def _record(self, command: bytes) -> None:
        run, target = self._run, self._run.target
        key = (target.current_version(), len(target.installs))
        if self._target_cache is None or self._target_cache[0] != key:
            self._target_cache = (key, bytes(target.image))
        self.snapshots.append(self._chip.snapshot())
        self.ops.append(
            OpPoint(
                index=len(self.ops) + 1,
                command=command,
                target_image=self._target_cache[1],
                target_version=target.current_version(),
                installs=self._installs(target.installs),
                reports=len(run.twin.reported_log),
                boot_marks=self._marks(run.boot_marks),
                requests=self._requests_now(run.wire.requests),
            )
        )

    def _requests_now(self, requests: list[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
        """Copies of the request log, sharing those unchanged since the last operation."""
        before = self._requests
        now = tuple(
            before[i] if i < len(before) and before[i] == r else dict(r)
            for i, r in enumerate(requests)
        )
        self._requests = now
        return now


async def record_clean(
    scenario: Scenario,
    stage: Stage,
    chip: W25Q128,
    agent_factory: AgentFactory | None = None,
) -> CleanRun:
    """Run ``scenario`` without cuts, snapshotting before every state-changing op."""
    holder: dict[str, _Recorder] = {}
    checkpoints: list[Checkpoint] = []

    def wrap(run: Any, port: Any) -> _Recorder:
        recorder = holder["r"] = _Recorder(run, port, chip)
        run.checkpoints = checkpoints
        run.op_count = lambda: len(recorder.ops)
        return recorder

    clean = dataclasses.replace(scenario, cuts=())
    result = await run_scenario(
        clean, agent_factory=agent_factory, stage=stage, chip=chip, wrap_port=wrap
    )
    reports = [{"extFwInfo": r} for r in result.reports]
    recorder = holder["r"]
    return CleanRun(recorder.ops, result, reports, tuple(checkpoints), recorder.snapshots)


def cut_points(schedule: str, n_ops: int, *, stride: int = 1) -> list[int]:
    """Operation indices (1-based) a schedule cuts after."""
    if n_ops < 1:
        return []
    if schedule in ("linear", "torn", "exhaustive"):
        return list(range(1, n_ops + 1, max(1, stride)))
    if schedule == "log":
        points, i = [], 1
        while i <= n_ops:
            points.append(i)
            i *= 2
        if points[-1] != n_ops:
            points.append(n_ops)
        return points
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")


class Explorer:
    """Cut runs of one scenario from the snapshots of its clean run."""

    def __init__(
        self,
        scenario: Scenario,
        server: BlobServer | None = None,
        *,
        agent_factory: AgentFactory | None = None,
        full_sample: float = DEFAULT_FULL_SAMPLE,
        invariants: Collection[str] | None = None,
    ) -> None:
        """``server``: a blob server running on this event loop; without one, the explorer
        runs its own for the length of each :meth:`explore` (or of ``async with``). The
        server must share the runs' loop: loopback time is virtual (:mod:`sim.loopback`)
        and judges quiet by that loop alone. ``invariants``: the names of those to check
        (:data:`sim.explore.invariants.INVARIANTS`; all by default), e.g. without
        ``readable-record`` for an agent that keeps a record of its own format at this
        project's record path."""
        if not 0.0 <= full_sample <= 1.0:
            raise ValueError(f"full_sample must lie in [0, 1], got {full_sample!r}")
        self.invariants = None if invariants is None else checked(invariants)
        if scenario.fault_plan.get("rules") or scenario.late_upload_at_request:
            raise ValueError("the systematic explorers take scenarios without network faults")
        self.scenario = dataclasses.replace(scenario, cuts=())
        self.server = server
        self.stage = Stage(server) if server is not None else None
        self._owned: BlobServer | None = None
        self.agent_factory = agent_factory
        self.chip = W25Q128(seed=scenario.chip_seed, timing=scenario.timing)
        self.clean: CleanRun | None = None
        self.full_sample = full_sample

    async def __aenter__(self) -> Explorer:
        if self.stage is None:
            self._owned = BlobServer(seed=self.scenario.seed)
            await self._owned.start()
            self.stage = Stage(self._owned)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._owned is not None:
            await self._owned.close()
            self._owned = self.stage = None
            self.clean = None  # its snapshots hold that server's ETags

    async def prepare(self) -> CleanRun:
        """The clean run (once): the operation count and the snapshots."""
        if self.stage is None:
            raise RuntimeError("an Explorer without a server runs inside `async with explorer:`")
        if self.clean is None:
            self.clean = await record_clean(
                self.scenario, self.stage, self.chip, self.agent_factory
            )
        return self.clean

    async def cut_run(
        self, index: int, fraction: float = 1.0, second: int | None = None
    ) -> tuple[Scenario, ScenarioResult]:
        """Cut during op ``index`` at ``fraction``, optionally again ``second`` ops into
        the next boot, run to the end; returns the replayable scenario and the record."""
        clean = await self.prepare()
        op = clean.ops[index - 1]
        snapshot = clean.snapshot(index)
        chip = self.chip
        chip.restore(snapshot)
        chip.exchange(_WREN)
        chip.schedule_cut(after_ops=1, fraction=fraction)
        chip.exchange(op.command)
        chip.clock.advance(SETTLE_S)
        if chip.powered:
            raise RuntimeError(f"op #{index} ({op.kind}) did not latch when replayed")
        cuts = [Cut(after_ops=index, fraction=fraction)]
        if second is not None:
            cuts.append(Cut(after_ops=second, boot=2))
        scenario = dataclasses.replace(self.scenario, cuts=tuple(cuts))
        start = StartState(
            snapshot=snapshot,
            target_image=op.target_image,
            target_version=op.target_version,
            installs=op.installs,
            reports=clean.reports[: op.reports],
            boot_marks=list(op.boot_marks),
            requests=list(op.requests),
            fast=second is None,
            record_before=any(c.present for c in clean.result.record_checks[:1]),
        )
        plan = None
        if start.fast and not self.runs_full(index, fraction, second):
            plan = RejoinPlan(clean.checkpoints, clean.result, after_ops=index)
        result = await run_scenario(
            scenario,
            agent_factory=self.agent_factory,
            stage=self.stage,
            start=start,
            chip=chip,
            rejoin=plan,
        )
        # a run leaves reference cycles (device, agent, twin and port closures) holding its
        # flash and buffers; the young generations are cheap to collect, and a sweep's
        # memory then stays flat instead of waiting for the next full collection
        gc.collect(1)
        return scenario, result

    def runs_full(self, index: int, fraction: float, second: int | None) -> bool:
        """Whether this cut run is in the sample that always runs to the end: a seeded
        draw per cut point, the same in every process and on every machine."""
        if self.full_sample >= 1.0:
            return True
        s = self.scenario
        key = f"full:{s.image_seed}:{s.image_size}:{s.chip_seed}:{index}:{fraction}:{second}"
        return random.Random(key).random() < self.full_sample

    def points(
        self, schedule: str, *, stride: int = 1, fractions: tuple[float, ...] = (0.5,)
    ) -> Iterator[tuple[int, float, int | None]]:
        """The (index, fraction, second cut) triples a schedule visits."""
        assert self.clean is not None
        n = len(self.clean.ops)
        if schedule == "torn":
            for i in cut_points("linear", n, stride=stride):
                for f in fractions:
                    yield i, f, None
        elif schedule == "exhaustive":
            for i in cut_points("linear", n, stride=stride):
                for j in cut_points("linear", max(1, n - i), stride=stride):
                    yield i, 1.0, j
        else:
            for i in cut_points(schedule, n, stride=stride):
                yield i, 1.0, None

    async def explore(
        self,
        schedule: str,
        *,
        stride: int = 1,
        fractions: tuple[float, ...] = (0.5,),
        budget_s: float | None = None,
        max_runs: int | None = None,
        stop_at_first: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> Exploration:
        """Run the schedule's cut runs and check every invariant after each."""
        if self.stage is None:
            async with self:
                return await self.explore(
                    schedule,
                    stride=stride,
                    fractions=fractions,
                    budget_s=budget_s,
                    max_runs=max_runs,
                    stop_at_first=stop_at_first,
                    progress=progress,
                )
        clean = await self.prepare()
        found = Exploration(schedule, len(clean.ops))
        base = check_all(clean.result, self.invariants)
        if base:
            found.findings.append(Finding(self.scenario, tuple(base)))
            if stop_at_first:
                return found
        todo = list(self.points(schedule, stride=stride, fractions=fractions))
        if max_runs is not None:
            todo = todo[:max_runs]
        started = time.perf_counter()
        for n, (i, f, j) in enumerate(todo, 1):
            if budget_s is not None and time.perf_counter() - started > budget_s:
                break
            scenario, result = await self.cut_run(i, f, j)
            found.runs += 1
            violations = check_all(result, self.invariants)
            if violations:
                found.findings.append(Finding(scenario, tuple(violations)))
                if stop_at_first:
                    break
            if progress is not None:
                progress(n, len(todo))
        found.wall_s = time.perf_counter() - started
        return found
