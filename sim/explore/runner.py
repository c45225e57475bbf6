"""The scenario runner: one :class:`~sim.explore.scenario.Scenario` on one simulated device.

:func:`run_scenario` plays a scenario in named phases that read top-down:

1. **stage**: the field state (:mod:`sim.explore.stage`) and the blobs, the scenario's
   fault plan on the server (its request windows counted from the scenario's start);
2. **assemble**: chip, MCU, twin and device, as found in the field or as a cut left them
   (an explorer's :class:`StartState`), with the ports that aim cuts and log the trace;
3. **watch**: the byte counts at which the newer version is published and the image rots;
4. **run**: publish, boot and run until the final version settles; every boot arms that
   boot's cuts, and the device reboots after each cut (:meth:`sim.device.SimDevice.run_until`);
5. **follow up**: the redelivery or the stale instruction after ``applied``;
6. **check**: mount the flash as a booting agent would and read back the old files, then
   return the :class:`~sim.explore.result.ScenarioResult` the invariants judge.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.engine import Agent
from agent.errors import PowerLoss
from agent.protocol import AgentFactory, Board, OtaAgent
from agent.staging import CURRENT_PATH
from agent.storage import Storage, StorageError
from sim.chip.w25q128 import W25Q128, ChipSnapshot
from sim.clock import VirtualClock
from sim.cloud.blobserver import BlobServer
from sim.cloud.faults.plan import FaultPlan
from sim.cloud.faulty_twin import FaultyTwin
from sim.device import SIM_SPI_HZ, SimDevice, reported_status
from sim.explore.channel import break_channel
from sim.explore.flash_faults import rot_image_bits, stick_bits
from sim.explore.records import look
from sim.explore.rejoin import (
    Checkpoint,
    Rejoined,
    RejoinPlan,
    splice,
    watch_records,
)
from sim.explore.result import FsCheck, RecordCheck, ScenarioResult
from sim.explore.scenario import BASE_VERSION, Cut, Scenario, sha256_hex
from sim.explore.scenario_twin import ScenarioTwin
from sim.explore.stage import (
    CONTAINER,
    SETTINGS,
    SETTINGS_PATH,
    Base,
    Stage,
    agent_config,
    blob_name,
    settled,
)
from sim.explore.trace import PowerMarks, trace_lines
from sim.explore.wire import Wire
from sim.mcu import InstallRecord, SimMcuTarget
from sim.ports.aimed_cut import AimedCut, AimedCutPort
from sim.ports.memory import MemoryFlash
from sim.ports.memory_spi import MemorySpiPort
from sim.ports.model import SimSpiPort

MALFORMED_SHA256 = "not a digest"  # what a broken operator tool might publish
WALL_LIMIT_S = 120.0  # a run that takes longer than this in real time has hung
SETTLED = ("applied", "error", "invalid")

PortWrap = Callable[[Any, Any], Any]


@dataclass
class StartState:
    """Where a run starts instead of the field state: a chip state mid-OTA (the explorer's
    snapshot after a cut), the MCU then, and the reports made before it."""

    snapshot: ChipSnapshot
    target_image: bytes
    target_version: int
    installs: tuple[InstallRecord, ...]
    reports: list[dict[str, Any]]
    boot_marks: list[int]
    requests: list[dict[str, Any]]
    boots: int = 1
    cuts_fired: int = 1
    fast: bool = True  # continue on :class:`sim.ports.memory.MemoryFlash` (no further cuts)
    record_before: bool = False  # a progress record was on flash before the cut


async def run_scenario(
    scenario: Scenario,
    *,
    agent_factory: AgentFactory | None = None,
    stage: Stage | None = None,
    start: StartState | None = None,
    chip: W25Q128 | None = None,
    trace: bool = False,
    wrap_port: PortWrap | None = None,
    rejoin: RejoinPlan | None = None,
) -> ScenarioResult:
    """Play ``scenario`` and return its record for :mod:`sim.explore.invariants`.

    ``agent_factory`` builds each boot's agent (a mutant, say); ``stage`` reuses a blob
    server and what was prepared on it (its plan is replaced by the scenario's); without
    one the run gets a fresh server. ``start`` continues from a chip state instead of the
    field state (the explorer); ``trace`` logs every SPI transaction and keeps the ones
    around each cut in :attr:`ScenarioResult.trace`; ``wrap_port(run, port)`` puts a port
    in front of the chip's (the explorer's recorder). ``rejoin`` lets a continuation stop
    where its state re-joins the clean run's (:mod:`sim.explore.rejoin`).
    """
    if stage is None:
        async with BlobServer(seed=scenario.seed) as server:  # the plan: stage_blobs
            return await run_scenario(
                scenario,
                agent_factory=agent_factory,
                stage=Stage(server),
                start=start,
                chip=chip,
                trace=trace,
                wrap_port=wrap_port,
                rejoin=rejoin,
            )
    run = Run(
        scenario, stage, agent_factory or Agent.from_board, start=start, chip=chip, trace=trace
    )
    run.rejoin = rejoin
    if wrap_port is not None:
        run.port_wrapper = lambda port: wrap_port(run, port)
    return await asyncio.wait_for(run.play(), WALL_LIMIT_S)


class Run:
    """One scenario on one device, phase by phase (see the module doc)."""

    def __init__(
        self,
        scenario: Scenario,
        stage: Stage,
        agent_factory: AgentFactory,
        *,
        start: StartState | None = None,
        chip: W25Q128 | None = None,
        trace: bool = False,
    ) -> None:
        s = self.s = scenario
        self.stage = stage
        self.agent_factory = agent_factory
        self.start = start
        self.chip = chip or W25Q128(VirtualClock(), seed=s.chip_seed, timing=s.timing)
        self.trace = trace
        self.port_wrapper: Callable[[Any], Any] | None = None
        self.wire = Wire()
        self.images = {v: s.image(v) for v in (BASE_VERSION, s.version, s.version + 1)}
        self.memory: MemoryFlash | None = None
        self.marks: PowerMarks | None = None
        self.newer_published = False
        self.fixed_at: int | None = None  # report count when a malformed instruction was fixed
        self.fixed_for: dict[str, Any] = {}  # the ``invalid`` report that prompted the fix
        self.rot_landed = 0
        self.boot_marks: list[int] = list(start.boot_marks) if start else []
        self.boots_before = start.boots if start else 0
        self.cuts_before = start.cuts_fired if start else 0
        self.first_event = 0
        self.record_checks: list[RecordCheck] = []
        self.record_before = start.record_before if start else False
        self._looked_at_cuts = -1
        self.sas = ""
        self.t0 = 0.0
        # the re-join shortcut (sim/explore/rejoin.py): a cut run's plan, a clean run's log
        self.rejoin: RejoinPlan | None = None
        self.checkpoints: list[Checkpoint] | None = None
        self.op_count: Callable[[], int] = lambda: 0

    async def play(self) -> ScenarioResult:
        base = await self.stage_blobs()
        self.assemble(base)
        self.watch_wire()
        reached, crash = False, None
        t0 = self.t0 = self.chip.clock.monotonic()
        try:
            reached = await self.run_to_final()
            if reached and (self.s.redeliver or self.s.stale):
                reached = await self.follow_up()
        except Rejoined as joined:
            assert self.rejoin is not None
            return splice(self, joined.checkpoint, self.rejoin.clean)
        except Exception as exc:  # an agent crash is a finding, not a harness failure
            crash = f"{type(exc).__name__}: {exc}"
        finally:
            if isinstance(self.twin, FaultyTwin):
                self.twin.cancel_wakers()  # what the channel still owed can no longer arrive
        return self.check(reached, crash, t0)

    # -- 1. stage ------------------------------------------------------------------------

    async def stage_blobs(self) -> Base:
        """The field state, every image on the server, the scenario's plan on it."""
        s, stage = self.s, self.stage
        base = await stage.base(s)
        # loopback waits in virtual time (sim/loopback.py), unless the agents run outside
        # this event loop (another process), whose quiet this loop cannot see
        shares_loop = getattr(self.agent_factory, "shares_loop", True)
        stage.server.service.network = self.chip.clock.attach_network() if shares_loop else None
        # request windows count from here: requests received, not those answered so far
        # (a stalled request of the field state's OTA may still be held)
        self.first_event = stage.server.service.requests_received
        rules = [_shifted(rule, self.first_event) for rule in s.plan().to_dict()["rules"]]
        for version, data in self.images.items():
            if s.late_upload_at_request is None or version != s.version:
                stage.upload(blob_name(version), data)
        if s.late_upload_at_request is not None:
            rules.append(self._late_upload())
        stage.server.plan = FaultPlan.from_dict({"rules": rules})
        self.sas = stage.sas()
        return base

    def _late_upload(self) -> dict[str, Any]:
        """Other bytes under the main blob's name until the scenario's request N, where an
        ``etag_change`` fault puts the real image in place (the operator's late upload)."""
        s, main = self.s, self.images[self.s.version]
        name = blob_name(s.version)
        self.stage.replace(name, random.Random(f"late:{s.image_seed}").randbytes(len(main)))
        at = self.first_event + (s.late_upload_at_request or 0)
        return {
            "id": "late-upload",
            "fault": "etag_change",
            "params": {"content_b64": base64.b64encode(main).decode()},
            "blob": f"{CONTAINER}/{name}",
            "requests": [at, at],
        }

    # -- 2. assemble -----------------------------------------------------------------------

    def assemble(self, base: Base) -> None:
        """Chip, MCU, twin and device as the run starts, with the ports in front of the chip."""
        s, start, chip = self.s, self.start, self.chip
        if start is None:
            chip.restore(base.snapshot)  # else the caller left the chip as the cut did
        if s.stuck_bits:
            stick_bits(chip, s.stuck_bits)
        src = start or base
        self.target = SimMcuTarget(chip.clock)
        self.target.set_state(src.target_version, src.target_image)
        self.target.installs = list(src.installs)
        if s.mcu_cut_after_bytes is not None and start is None:
            self.target.cut_after_bytes = s.mcu_cut_after_bytes
        self.twin = ScenarioTwin(start.reports if start else None)
        self.device = SimDevice(
            chip=chip,
            twin=self.twin,
            target=self.target,
            seed=s.seed,
            timing=s.timing,
            config=agent_config(s),
            agent_factory=self._agent,
        )
        if self.trace:
            self.marks = PowerMarks(SimSpiPort(chip, frequency=SIM_SPI_HZ, log=True))
            self.device.port = self.marks
        self.cutter = AimedCutPort(self.device.port, chip)
        self.device.port = self.cutter
        if self.port_wrapper is not None:
            self.device.port = self.port_wrapper(self.device.port)
        if start is not None and start.fast:
            self.memory = MemoryFlash.from_sectors(chip.snapshot().sectors)
        self.wire.requests = [dict(r) for r in start.requests] if start else []
        break_channel(self)  # the scenario's twin-channel faults, if it has any

    def _agent(self, board: Board) -> OtaAgent:
        if self.memory is not None:
            board = dataclasses.replace(board, flash=self.memory, spi=MemorySpiPort(self.memory))
        agent = self.agent_factory(
            dataclasses.replace(board, session_factory=self.wire.session_factory)
        )
        if self.rejoin is not None or self.checkpoints is not None:
            watch_records(self, agent)
        return agent

    # -- 3. watch --------------------------------------------------------------------------

    def watch_wire(self) -> None:
        """Publish the newer version, and rot the image, at the byte counts the scenario says."""
        s = self.s
        if s.newer_at_bytes is not None:
            at = s.newer_at_bytes

            def newer_due(entry: dict[str, Any], total: int) -> bool:
                if total < at:
                    return False
                self._publish_newer()
                return True

            self.wire.watchers.append(newer_due)
        if s.invalid_at_bytes is not None:
            bad_at = s.invalid_at_bytes

            def invalid_due(entry: dict[str, Any], total: int) -> bool:
                if total < bad_at:
                    return False
                self.twin.patch_desired({"extFwInfo": {"sha256": MALFORMED_SHA256}})
                self.twin.on_report = self._fix_malformed
                return True

            self.wire.watchers.append(invalid_due)
        if s.rot_bits:
            main = self.images[s.version]
            url = self.stage.server.blob_url(CONTAINER, blob_name(s.version)).split("?", 1)[0]

            def received(entry: dict[str, Any], total: int) -> bool:
                if entry["url"] != url or entry["start"] + entry["consumed"] < len(main):
                    return False
                array = self.memory.memory if self.memory is not None else self.chip.array
                self.rot_landed = rot_image_bits(array, main, s.rot_bits)
                return True

            self.wire.watchers.append(received)

    def _fix_malformed(self, patch: dict[str, Any]) -> None:
        """The operator sees ``invalid`` and publishes the valid instruction again."""
        if reported_status(patch).get("Status") != "invalid":
            return
        self.twin.on_report = None
        self.fixed_at = len(self.twin.reported_log)
        self.fixed_for = dict(patch)
        self._publish(self.s.version + 1 if self.newer_published else self.s.version)

    def _publish_newer(self) -> None:
        self.newer_published = True
        self._publish(self.s.version + 1)
        for cut in self.s.cuts:
            if cut.anchor == "newer":
                self._arm(cut)

    def _publish(self, version: int) -> None:
        self.stage.publish(self.twin, version, self.images[version], self.sas)

    # -- 4. run ----------------------------------------------------------------------------

    async def run_to_final(self) -> bool:
        """Publish the scenario's version and run until the final version settles."""
        s = self.s
        self._publish(s.version)
        goal = settled(s.final_version) if s.invalid_at_bytes is None else self._after_fix()
        done = await self.device.run_until(
            goal,
            max_boots=s.max_boots,
            max_device_time_s=self.chip.clock.monotonic() + s.max_device_time_s,
            on_boot=self._on_boot,
        )
        info = reported_status(self.twin.reported)
        return (
            done.reached
            and info.get("Status") == "applied"
            and info.get("Version") == s.final_version
        )

    def _after_fix(self) -> Callable[[Any], bool]:
        """A malformed instruction mid-job: settled only by a report after the operator
        published the valid one again (on the agent's ``invalid``, which comes once the
        job in hand ends, or at once after a reboot). The ``invalid`` sent again word for
        word (its acknowledgement was lost on a broken channel) is not such a report."""
        done = settled(self.s.final_version)

        def check(reported: dict[str, Any]) -> bool:
            if self.fixed_at is None:
                return False
            later = self.twin.reported_log[self.fixed_at :]
            return any(p != self.fixed_for for p in later) and done(reported)

        return check

    def _on_boot(self, device: SimDevice) -> None:
        """A boot began: note where its reports start, look at the progress record (the
        run's first boot, and every boot after a cut), arm the cuts aimed at it."""
        boot = self.boots_before + device.boots
        self.wire.boot = boot
        self.boot_marks.append(len(self.twin.reported_log))
        cuts = self.cuts_before + device.cuts
        if device.boots == 1 or cuts > self._looked_at_cuts:
            self._looked_at_cuts = cuts
            memory = self.memory.memory if self.memory is not None else self.chip.array
            self.record_checks.append(look(boot, array=memory, geometry=device.config.geometry))
        for cut in self.s.cuts:
            if cut.anchor == "boot" and cut.boot == boot and (self.start is None or boot > 1):
                self._arm(cut)

    def _arm(self, cut: Cut) -> None:
        if self.memory is not None:
            raise ValueError("a fast continuation cannot be cut; start with fast=False")
        if cut.after_ops is not None:
            self.chip.schedule_cut(after_ops=cut.after_ops, fraction=cut.fraction)
        else:
            assert cut.op is not None and cut.nth is not None
            self.cutter.arm(AimedCut(cut.op, cut.nth, cut.fraction))

    # -- 5. follow up ----------------------------------------------------------------------

    async def follow_up(self) -> bool:
        """After ``applied``: reboot into the same instruction again (``redeliver``), or
        publish the older base version (``stale``), and run until that settles too."""
        s = self.s
        if s.stale:
            self._publish(BASE_VERSION)
        mark = len(self.twin.reported_log)
        again = await self.device.run_until(
            self._settled_after(mark, BASE_VERSION if s.stale else None),
            max_boots=self.device.boots + 3,
            max_device_time_s=self.chip.clock.monotonic() + s.max_device_time_s,
            on_boot=self._on_boot,
        )
        return again.reached

    def _settled_after(self, mark: int, version: int | None) -> Callable[[Any], bool]:
        """Done at the first settled report after ``mark`` (about ``version``, if given)."""

        def check(reported: dict[str, Any]) -> bool:
            for patch in self.twin.reported_log[mark:]:
                info = reported_status(patch)
                status = info.get("Status")
                if status not in SETTLED:
                    continue
                about = info.get("Version") if status == "applied" else info.get("TargetVersion")
                if version is None or about == version:
                    return True
            return False

        return check

    # -- 6. check --------------------------------------------------------------------------

    def check(self, reached: bool, crash: str | None, t0: float) -> ScenarioResult:
        """The flash's health and everything the run saw, as one record."""
        s, target, chip = self.s, self.target, self.chip
        events = [e for e in self.stage.server.events if e.request > self.first_event]
        images = self.images
        return ScenarioResult(
            scenario=s,
            images={v: (sha256_hex(b), len(b)) for v, b in images.items()},
            reached=reached and crash is None,
            boots=self.boots_before + self.device.boots,
            cuts_fired=self.cuts_before + self.device.cuts,
            device_time_s=chip.clock.monotonic() - t0,
            reports=[reported_status(p) for p in self.twin.reported_log],
            boot_marks=self.boot_marks,
            final_reported=reported_status(self.twin.reported),
            installs=list(target.installs),
            target_version=target.current_version(),
            target_sha256=target.image_sha256().upper(),
            requests=self.wire.records(),
            faulted_requests=sum(1 for e in events if e.faults),
            fs=self.check_fs(),
            newer_published=self.newer_published,
            rot_landed=self.rot_landed,
            crash=crash,
            trace=trace_lines(self.marks) if self.marks is not None else [],
            record_checks=list(self.record_checks),
            record_before=self.record_before,
        )

    def check_fs(self) -> FsCheck:
        """Mount without formatting and read back the files that predate the scenario."""
        if self.memory is not None:
            flash: Any = self.memory  # mounting and reading write nothing: no copy needed
        else:
            chip = self.chip
            if not chip.powered:
                chip.power_on()
            chip.cancel_cut()
            flash = MemoryFlash.from_sectors(chip.snapshot().sectors)
        try:
            storage = Storage.mount(flash, format_blank=False)
        except (StorageError, PowerLoss) as exc:
            return FsCheck(False, False, f"{type(exc).__name__}: {exc}", {})
        try:
            intact = {SETTINGS_PATH: _read(storage, SETTINGS_PATH) == SETTINGS}
            versions = (BASE_VERSION, self.s.version, self.s.version + 1)
            intact[CURRENT_PATH] = _read(storage, CURRENT_PATH) in [
                self.images[v] for v in versions
            ]
            return FsCheck(True, storage.formatted, None, intact)
        finally:
            with contextlib.suppress(Exception):
                storage.unmount()


def _read(storage: Storage, path: str) -> bytes | None:
    try:
        return storage.read_file(path)
    except FileNotFoundError:
        return None


def _shifted(rule: dict[str, Any], offset: int) -> dict[str, Any]:
    """``rule`` with its request window moved past the ``offset`` requests made before
    the scenario (the base OTA): scenario plans count requests from the scenario's start."""
    first, last = rule.get("requests", [1, None])
    rule = dict(rule)
    rule["requests"] = [first + offset, None if last is None else last + offset]
    return rule


__all__ = ["Run", "StartState", "run_scenario"]
