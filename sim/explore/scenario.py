"""A power-loss and network-fault scenario as data, and the runner that plays it.

A :class:`Scenario` says everything a run depends on, so a failing one replays
exactly from its JSON (``python -m sim replay scenario.json``): the image (seed and
size), the cuts (by state-changing operation index or by command kind and ordinal,
a fraction of the way through it, on which boot; the torn bits follow the chip's
seed), the blob server's fault plan (:meth:`sim.cloud.faults.plan.FaultPlan.to_dict`),
the instruction sequence (a newer version published mid-download, a re-delivery
after ``applied``, a stale version), faults of the flash itself (bits stuck at 0, bits
that rot between the last write and the verify) and the chip timing mode.

:func:`run_scenario` prepares a device as it would be in the field (littlefs holding
``config/settings.json`` and a previous image applied as version 1 through a first
OTA, kept as ``ota/current.bin``), plays the scenario and returns a
:class:`ScenarioResult`: the record :mod:`sim.explore.invariants` judges.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from agent.download import DownloadPolicy
from agent.engine import Agent, AgentConfig
from agent.errors import PowerLoss
from agent.flash import SpiFlash
from agent.hosts import LOOPBACK_HOSTS
from agent.storage import Storage, StorageError
from sim.chip.w25q128 import W25Q128, ChipSnapshot
from sim.clock import VirtualClock
from sim.cloud.blobserver import BlobServer
from sim.cloud.faults.plan import FaultPlan
from sim.cloud.twin import InProcessTwin, publish_ota
from sim.device import SimDevice, reported_status
from sim.mcu import InstallRecord, SimMcuTarget
from sim.ports.aimed_cut import OPCODES, OpCut, OpCutPort
from sim.ports.memory import MemoryFlash
from sim.ports.model import SimSpiPort, SpiTransaction
from sim.ports.wrapper import PortWrapper

CONTAINER = "ota"
TIMINGS = ("typical", "max", "random")
ANCHORS = ("boot", "newer")
BASE_VERSION = 1
SETTINGS_PATH = "config/settings.json"
SETTINGS = b'{"sampling_s": 30, "site": "bench-7", "note": "kept across every OTA"}\n'
CURRENT_PATH = "ota/current.bin"
WALL_LIMIT_S = 120.0  # a run that takes longer than this in real time has hung
SIM_SPI_HZ = 8e6


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"Scenario.{name} must be an int >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class Cut:
    """One power cut: during the ``after_ops``-th state-changing flash operation (or the
    ``nth`` command of kind ``op``), counted from ``anchor`` (``boot``: the start of boot
    number ``boot``; ``newer``: the moment the newer version is published), ``fraction``
    of the way through it (1.0 = just after it completes: littlefs's runner and MCUboot's
    simulator cut only there; below 1.0 the operation is torn, datasheet 8.2.13/8.2.15)."""

    after_ops: int | None = None
    op: str | None = None
    nth: int | None = None
    fraction: float = 1.0
    boot: int = 1
    anchor: str = "boot"

    def __post_init__(self) -> None:
        if (self.after_ops is None) == (self.op is None):
            raise ValueError("Cut needs exactly one of after_ops or op (+ nth)")
        if self.after_ops is not None:
            _check_int("cut.after_ops", self.after_ops, 1)
        if self.op is not None:
            if self.op not in OPCODES:
                raise ValueError(f"Cut.op must be one of {sorted(OPCODES)}, got {self.op!r}")
            _check_int("cut.nth", self.nth, 1)
        f = self.fraction
        if isinstance(f, bool) or not isinstance(f, int | float) or not 0.0 <= f <= 1.0:
            raise ValueError(f"Cut.fraction must lie in [0, 1], got {f!r}")
        _check_int("cut.boot", self.boot, 1)
        if self.anchor not in ANCHORS:
            raise ValueError(f"Cut.anchor must be one of {ANCHORS}, got {self.anchor!r}")

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Cut:
        unknown = set(data) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise ValueError(f"cut: unknown keys {sorted(unknown)}")
        return cls(**data)

    def describe(self) -> str:
        where = (
            f"state-changing op #{self.after_ops}"
            if self.after_ops is not None
            else f"{self.op} #{self.nth}"
        )
        start = f"boot {self.boot}" if self.anchor == "boot" else "the newer version's publish"
        return f"{where} after {start}, {self.fraction:.0%} through it"


@dataclass(frozen=True)
class Scenario:
    """Everything one run depends on; see the module doc. Round-trips through JSON."""

    image_size: int = 64 * 1024
    image_seed: int = 1
    version: int = 2
    base_image_size: int = 4096  # the image applied as version 1 before the scenario
    checkpoint_bytes: int = 16 * 1024
    cuts: tuple[Cut, ...] = ()
    fault_plan: dict[str, Any] = field(default_factory=dict)
    late_upload_at_request: int | None = None  # blob holds other bytes until this request
    newer_at_bytes: int | None = None  # publish version+1 once the device read this many bytes
    redeliver: bool = False  # after applied: reboot, the same instruction is delivered again
    stale: bool = False  # after applied: the older base version is published again
    stuck_bits: tuple[int, ...] = ()  # chip bit addresses (byte * 8 + bit) stuck at 0
    rot_bits: tuple[int, ...] = ()  # image bit offsets that flip on flash before the verify
    mcu_cut_after_bytes: int | None = None  # power cut inside the first MCU install
    timing: str = "typical"
    chip_seed: int = 0  # seeds the chip's torn bits and random timing
    seed: int = 0  # seeds the device's and the server's random choices
    max_boots: int = 40
    max_device_time_s: float = 6 * 3600.0
    mutant: str | None = None

    def __post_init__(self) -> None:
        _check_int("image_size", self.image_size, 1)
        _check_int("image_seed", self.image_seed, 0)
        _check_int("version", self.version, BASE_VERSION + 1)
        _check_int("base_image_size", self.base_image_size, 1)
        _check_int("checkpoint_bytes", self.checkpoint_bytes, 1)
        _check_int("chip_seed", self.chip_seed, 0)
        _check_int("seed", self.seed, 0)
        _check_int("max_boots", self.max_boots, 1)
        for name in ("late_upload_at_request", "mcu_cut_after_bytes"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), 1)
        if self.newer_at_bytes is not None:
            _check_int("newer_at_bytes", self.newer_at_bytes, 0)
        cuts = tuple(c if isinstance(c, Cut) else Cut.from_dict(c) for c in self.cuts)
        object.__setattr__(self, "cuts", cuts)
        if any(c.anchor == "newer" for c in cuts) and self.newer_at_bytes is None:
            raise ValueError("Scenario.cuts: an anchor='newer' cut needs newer_at_bytes")
        object.__setattr__(self, "stuck_bits", tuple(self.stuck_bits))
        for bit in self.stuck_bits:
            _check_int("stuck_bits[]", bit, 0)
        object.__setattr__(self, "rot_bits", tuple(self.rot_bits))
        for bit in self.rot_bits:
            _check_int("rot_bits[]", bit, 0)
            if bit >= self.image_size * 8:
                raise ValueError(
                    f"Scenario.rot_bits: bit {bit} lies past the {self.image_size}-byte image"
                )
        if self.timing not in TIMINGS:
            raise ValueError(f"Scenario.timing must be one of {TIMINGS}, got {self.timing!r}")
        FaultPlan.from_dict(self.fault_plan or {"rules": []})  # names a bad rule now
        if self.max_device_time_s <= 0:
            raise ValueError(
                f"Scenario.max_device_time_s must be > 0, got {self.max_device_time_s}"
            )

    # -- what gets published -------------------------------------------------------------

    @property
    def final_version(self) -> int:
        """The version that must end up applied."""
        return self.version + 1 if self.newer_at_bytes is not None else self.version

    def image(self, version: int | None = None) -> bytes:
        """The image published as ``version`` (the base, the main or the newer one)."""
        version = self.version if version is None else version
        if version == BASE_VERSION:
            return random.Random(f"base:{self.image_seed}").randbytes(self.base_image_size)
        return random.Random(f"image:{self.image_seed}:{version}").randbytes(self.image_size)

    def plan(self) -> FaultPlan:
        return FaultPlan.from_dict(self.fault_plan or {"rules": []})

    # -- JSON ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cuts"] = [c.to_dict() for c in self.cuts]
        data["stuck_bits"] = list(self.stuck_bits)
        data["rot_bits"] = list(self.rot_bits)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scenario:
        if not isinstance(data, Mapping):
            raise ValueError(f"a scenario must be a JSON object, got {type(data).__name__}")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"scenario: unknown keys {sorted(unknown)}")
        data = dict(data)
        data["cuts"] = tuple(Cut.from_dict(c) for c in data.get("cuts", ()))
        data["stuck_bits"] = tuple(data.get("stuck_bits", ()))
        data["rot_bits"] = tuple(data.get("rot_bits", ()))
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Scenario:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_json() + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        return cls.from_json(Path(path).read_text())


# -- the record of a finished run ------------------------------------------------------------


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


@dataclass(frozen=True)
class FsCheck:
    """File-system health after the run: mounted without formatting, old files intact."""

    mounted: bool
    formatted: bool
    error: str | None
    intact: dict[str, bool]


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

    def expected_outcome(self) -> str:
        """``applied`` (the final version) or ``invalid`` (a stale instruction last)."""
        return "invalid" if self.scenario.stale else "applied"


# -- the device's side: counting what the agent reads -------------------------------------------


class _Counted:
    """Proxy for a response's ``content`` that counts the bytes the agent reads."""

    def __init__(self, inner: Any, on_read: Callable[[int], None]) -> None:
        self._inner = inner
        self._on_read = on_read

    async def readany(self) -> bytes:
        data = await self._inner.readany()
        self._on_read(len(data))
        return data

    async def read(self, n: int = -1) -> bytes:
        data = await self._inner.read(n)
        self._on_read(len(data))
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _Wire:
    """Per-run request log, fed by a counting ``ClientResponse`` class."""

    def __init__(self) -> None:
        self.boot = 0
        self.requests: list[dict[str, Any]] = []
        self.total = 0
        # called after every read with (request entry, total bytes); True: done, drop it
        self.watchers: list[Callable[[dict[str, Any], int], bool]] = []

    def session_factory(self) -> aiohttp.ClientSession:
        wire = self

        class CountingResponse(aiohttp.ClientResponse):
            async def start(self, connection: Any) -> Any:
                result = await super().start(connection)
                entry = wire._open(self)
                counted = _Counted(self.content, lambda n: wire._read(entry, n))
                self.content = counted  # type: ignore[assignment]
                return result

        return aiohttp.ClientSession(response_class=CountingResponse)

    def _open(self, response: aiohttp.ClientResponse) -> dict[str, Any]:
        start = 0
        crange = response.headers.get("Content-Range", "")
        if response.status == 206 and crange.startswith("bytes ") and "-" in crange:
            with contextlib.suppress(ValueError):
                start = int(crange[6:].split("-", 1)[0])
        entry = {
            "boot": self.boot,
            "url": str(response.url).split("?", 1)[0],
            "status": response.status,
            "start": start,
            "consumed": 0,
            "max_read": 0,
            "etag": response.headers.get("ETag"),
        }
        self.requests.append(entry)
        return entry

    def _read(self, entry: dict[str, Any], n: int) -> None:
        entry["consumed"] += n
        entry["max_read"] = max(entry["max_read"], n)
        self.total += n
        if self.watchers:
            self.watchers = [w for w in self.watchers if not w(entry, self.total)]

    def records(self) -> list[RequestRecord]:
        return [RequestRecord(**e) for e in self.requests]


# -- the field state before a scenario ----------------------------------------------------------


@dataclass(frozen=True)
class Base:
    """A device as found in the field: a chip snapshot and the MCU running version 1."""

    snapshot: ChipSnapshot
    target_image: bytes
    target_version: int
    installs: tuple[InstallRecord, ...]


_BASES: dict[tuple[Any, ...], Base] = {}


def _blob_name(version: int) -> str:
    return f"fw-v{version}.bin"


async def prepare_base(scenario: Scenario, server: BlobServer) -> Base:
    """A formatted littlefs with ``config/settings.json``, then version 1 applied by a
    clean OTA (so ``ota/current.bin`` holds it). Cached per process."""
    key = (scenario.image_seed, scenario.base_image_size, scenario.timing, scenario.chip_seed)
    if key in _BASES:
        return _BASES[key]
    clock = VirtualClock()
    chip = W25Q128(clock, seed=scenario.chip_seed, timing=scenario.timing)
    storage = Storage.mount(SpiFlash(SimSpiPort(chip, frequency=SIM_SPI_HZ), clock))
    storage.makedirs("config")
    storage.write_atomic(SETTINGS_PATH, SETTINGS)
    storage.unmount()
    device = SimDevice(chip=chip, seed=scenario.seed, config=_config(scenario))
    image = scenario.image(BASE_VERSION)
    server.put_blob(CONTAINER, _blob_name(BASE_VERSION), image)
    publish_ota(
        device.twin,
        version=BASE_VERSION,
        image=image,
        url=server.blob_url(CONTAINER, _blob_name(BASE_VERSION)),
        sas=server.make_sas(CONTAINER),
    )
    done = await device.run_until(_settled(BASE_VERSION), max_boots=3)
    if not done.reached or device.target.current_version() != BASE_VERSION:
        raise RuntimeError(f"the base OTA (version 1) did not apply: {done}")
    base = Base(
        chip.snapshot(),
        bytes(device.target.image),
        device.target.current_version(),
        tuple(device.target.installs),
    )
    _BASES[key] = base
    return base


def _config(scenario: Scenario) -> AgentConfig:
    return AgentConfig(
        allow_http_loopback=True,
        storage_hosts=LOOPBACK_HOSTS,
        download=DownloadPolicy(checkpoint_bytes=scenario.checkpoint_bytes),
    )


def _settled(version: int) -> Callable[[dict[str, Any]], bool]:
    """Done when ``version`` is applied, or the device gave up with error / invalid."""

    def check(reported: dict[str, Any]) -> bool:
        info = reported_status(reported)
        if info.get("Status") == "applied" and info.get("Version") == version:
            return True
        return info.get("Status") in ("error", "invalid")

    return check


def _after(
    mark: int, twin: InProcessTwin, version: int | None = None
) -> Callable[[dict[str, Any]], bool]:
    """Done at the first settled report (applied / error / invalid) after ``mark``;
    with ``version``, only one about that version."""

    def check(reported: dict[str, Any]) -> bool:
        for patch in twin.reported_log[mark:]:
            info = reported_status(patch)
            status = info.get("Status")
            if status not in ("applied", "error", "invalid"):
                continue
            about = info.get("Version") if status == "applied" else info.get("TargetVersion")
            if version is None or about == version:
                return True
        return False

    return check


# -- the run ---------------------------------------------------------------------------------


@dataclass
class StartState:
    """Where a run starts instead of the base: a chip state mid-OTA (the explorer's
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


AgentFactory = Callable[..., Agent]


async def run_scenario(
    scenario: Scenario,
    *,
    agent_factory: AgentFactory | None = None,
    server: BlobServer | None = None,
    start: StartState | None = None,
    chip: W25Q128 | None = None,
    trace: bool = False,
    wrap_port: Callable[[Any, Any], Any] | None = None,
) -> ScenarioResult:
    """Play ``scenario`` and return its record for :mod:`sim.explore.invariants`.

    ``agent_factory`` builds each boot's agent (a mutant, say); ``server`` reuses a
    running blob server (its plan is replaced by the scenario's, so pass one only
    for scenarios without request-numbered faults); ``start`` continues from a chip
    state instead of the base (the explorer); ``trace`` logs every SPI transaction
    and keeps the ones around each cut in :attr:`ScenarioResult.trace`;
    ``wrap_port(run, port)`` puts a port in front of the chip's (the explorer's recorder).
    """
    if server is None:
        async with BlobServer(plan=scenario.plan(), seed=scenario.seed) as own:
            return await run_scenario(
                scenario,
                agent_factory=agent_factory,
                server=own,
                start=start,
                chip=chip,
                trace=trace,
                wrap_port=wrap_port,
            )
    run = _Run(scenario, server, agent_factory or Agent, start, chip, trace)
    if wrap_port is not None:
        run.port_wrapper = lambda port: wrap_port(run, port)
    return await asyncio.wait_for(run.play(), WALL_LIMIT_S)


class _Run:
    """One scenario on one device; a class only to share the wiring between phases."""

    def __init__(
        self,
        scenario: Scenario,
        server: BlobServer,
        agent_factory: AgentFactory,
        start: StartState | None,
        chip: W25Q128 | None,
        trace: bool,
    ) -> None:
        self.s = scenario
        self.server = server
        self.agent_factory = agent_factory
        self.start = start
        self.chip = chip
        self.trace = trace
        self.wire = _Wire()
        self.memory: MemoryFlash | None = None
        self.newer_published = False
        self.rot_landed = 0
        self.trace_lines: list[str] = []
        self.marks: _PowerMarks | None = None
        self.port_wrapper: Callable[[Any], Any] | None = None
        self.boot_marks: list[int] = []

    async def play(self) -> ScenarioResult:
        s, server = self.s, self.server
        base = await prepare_base(s, server)
        first_event = len(server.events)
        images = {v: s.image(v) for v in (BASE_VERSION, s.version, s.version + 1)}
        main = images[s.version]
        rules = [_shifted(rule, first_event) for rule in s.plan().to_dict()["rules"]]
        uploaded = _UPLOADED.setdefault(id(server), {})
        for version, data in images.items():
            if s.late_upload_at_request is not None and version == s.version:
                continue
            name = _blob_name(version)
            digest = hashlib.sha256(data).digest()
            if uploaded.get(name) != digest:  # same bytes keep their ETag across runs
                server.put_blob(CONTAINER, name, data)
                uploaded[name] = digest
        if s.late_upload_at_request is not None:
            name = _blob_name(s.version)
            server.put_blob(
                CONTAINER, name, random.Random(f"late:{s.image_seed}").randbytes(len(main))
            )
            uploaded.pop(name, None)
            at = first_event + s.late_upload_at_request
            rules.append(
                {
                    "id": "late-upload",
                    "fault": "etag_change",
                    "params": {"content_b64": _b64(main)},
                    "blob": f"{CONTAINER}/{name}",
                    "requests": [at, at],
                }
            )
        server.plan = FaultPlan.from_dict({"rules": rules})

        chip = self.chip or W25Q128(VirtualClock(), seed=s.chip_seed, timing=s.timing)
        start = self.start
        if start is None:
            chip.restore(base.snapshot)  # else the caller left the chip as the cut did
        self._stick(chip)
        target = SimMcuTarget(chip.clock)
        src = start or base
        target.set_state(src.target_version, src.target_image)  # the MCU at the start
        target.installs = list(src.installs)
        if s.mcu_cut_after_bytes is not None and start is None:
            target.cut_after_bytes = s.mcu_cut_after_bytes
        twin = _ScenarioTwin()
        if start is not None:
            twin.reported_log = [dict(p) for p in start.reports]
            for patch in twin.reported_log:
                twin.reported = _merge(twin.reported, patch)
        device = SimDevice(
            chip=chip,
            twin=twin,
            target=target,
            seed=s.seed,
            timing=s.timing,
            config=_config(s),
            agent_factory=self._factory,
        )
        if self.trace:
            self.marks = _PowerMarks(SimSpiPort(chip, frequency=SIM_SPI_HZ, log=True))
            device.port = self.marks
        cutter = OpCutPort(device.port, chip)
        device.port = cutter
        if self.port_wrapper is not None:
            device.port = self.port_wrapper(device.port)
        self.device, self.twin, self.target = device, twin, target
        if start is not None and start.fast:
            self.memory = MemoryFlash(b"".join(chip.snapshot().sectors))
        boot_marks = self.boot_marks = list(start.boot_marks) if start else []
        self.wire.requests = [dict(r) for r in start.requests] if start else []
        boots_before = start.boots if start else 0
        cuts_before = start.cuts_fired if start else 0
        sas = server.make_sas(CONTAINER)

        def publish(version: int) -> None:
            publish_ota(
                twin,
                version=version,
                image=images[version],
                url=server.blob_url(CONTAINER, _blob_name(version)),
                sas=sas,
            )

        def on_newer() -> None:
            self.newer_published = True
            publish(s.version + 1)
            for cut in s.cuts:
                if cut.anchor == "newer":
                    self._arm(cut, chip, cutter)

        if s.newer_at_bytes is not None:
            at = s.newer_at_bytes

            def newer_due(entry: dict[str, Any], total: int) -> bool:
                if total < at:
                    return False
                on_newer()
                return True

            self.wire.watchers.append(newer_due)
        if s.rot_bits:
            main_url = server.blob_url(CONTAINER, _blob_name(s.version)).split("?", 1)[0]

            def received(entry: dict[str, Any], total: int) -> bool:
                if entry["url"] != main_url or entry["start"] + entry["consumed"] < len(main):
                    return False
                array = self.memory.memory if self.memory is not None else chip.array
                self.rot_landed = rot_image_bits(array, main, s.rot_bits)
                return True

            self.wire.watchers.append(received)

        def on_boot(dev: SimDevice) -> None:
            boot = boots_before + dev.boots
            self.wire.boot = boot
            boot_marks.append(len(twin.reported_log))
            for cut in s.cuts:
                if cut.anchor == "boot" and cut.boot == boot and (start is None or boot > 1):
                    self._arm(cut, chip, cutter)

        publish(s.version)
        crash: str | None = None
        t0 = chip.clock.monotonic()
        limit = t0 + s.max_device_time_s
        reached = False
        try:
            done = await device.run_until(
                _settled(s.final_version),
                max_boots=s.max_boots,
                max_device_time_s=limit,
                on_boot=on_boot,
            )
            info = reported_status(twin.reported)
            reached = (
                done.reached
                and info.get("Status") == "applied"
                and info.get("Version") == s.final_version
            )
            if reached and (s.redeliver or s.stale):
                if s.stale:
                    publish(BASE_VERSION)
                mark = len(twin.reported_log)
                again = await device.run_until(
                    _after(mark, twin, BASE_VERSION if s.stale else None),
                    max_boots=device.boots + 3,
                    max_device_time_s=chip.clock.monotonic() + s.max_device_time_s,
                    on_boot=on_boot,
                )
                reached = again.reached
        except Exception as exc:  # an agent crash is a finding, not a harness failure
            crash = f"{type(exc).__name__}: {exc}"
        if self.marks is not None:
            self.trace_lines = _trace_lines(self.marks)
        fs = self._check_fs(chip)
        events = server.events[first_event:]
        return ScenarioResult(
            scenario=s,
            images={v: (hashlib.sha256(b).hexdigest().upper(), len(b)) for v, b in images.items()},
            reached=reached and crash is None,
            boots=boots_before + device.boots,
            cuts_fired=cuts_before + device.cuts,
            device_time_s=chip.clock.monotonic() - t0,
            reports=[reported_status(p) for p in twin.reported_log],
            boot_marks=boot_marks,
            final_reported=reported_status(twin.reported),
            installs=list(target.installs),
            target_version=target.current_version(),
            target_sha256=hashlib.sha256(bytes(target.image)).hexdigest().upper(),
            requests=self.wire.records(),
            faulted_requests=sum(1 for e in events if e.faults),
            fs=fs,
            newer_published=self.newer_published,
            rot_landed=self.rot_landed,
            crash=crash,
            trace=self.trace_lines,
        )

    def _factory(self, **kwargs: Any) -> Agent:
        if self.memory is not None:
            kwargs["flash"] = self.memory
        return self.agent_factory(session_factory=self.wire.session_factory, **kwargs)

    def _arm(self, cut: Cut, chip: W25Q128, cutter: OpCutPort) -> None:
        if self.memory is not None:
            raise ValueError("a fast continuation cannot be cut; start with fast=False")
        if cut.after_ops is not None:
            chip.schedule_cut(after_ops=cut.after_ops, fraction=cut.fraction)
        else:
            assert cut.op is not None and cut.nth is not None
            cutter.arm(OpCut(cut.op, cut.nth, cut.fraction))

    def _stick(self, chip: W25Q128) -> None:
        if self.s.stuck_bits:
            stick_bits(chip, self.s.stuck_bits)

    def _check_fs(self, chip: W25Q128) -> FsCheck:
        """Mount without formatting and read back the files that predate the scenario."""
        if self.memory is not None:
            flash: Any = MemoryFlash(self.memory.memory)
        else:
            if not chip.powered:
                chip.power_on()
            chip.cancel_cut()
            flash = MemoryFlash(b"".join(chip.snapshot().sectors))
        try:
            storage = Storage.mount(flash, format_blank=False)
        except (StorageError, PowerLoss) as exc:
            return FsCheck(False, False, f"{type(exc).__name__}: {exc}", {})
        try:
            intact = {SETTINGS_PATH: _read(storage, SETTINGS_PATH) == SETTINGS}
            current = _read(storage, CURRENT_PATH)
            versions = [self.s.image(BASE_VERSION), *(self.s.image(v) for v in self._applied())]
            intact[CURRENT_PATH] = current in versions
            return FsCheck(True, storage.formatted, None, intact)
        finally:
            with contextlib.suppress(Exception):
                storage.unmount()

    def _applied(self) -> list[int]:
        return [self.s.version, self.s.version + 1]


def stick_bits(chip: W25Q128, bits: tuple[int, ...] | list[int]) -> None:
    """Stick chip bits (``byte * 8 + bit``, bit 0 = MSB) at 0: erases leave them 0, as a
    cell worn past its endurance does (datasheet 9.6: 100,000 program/erase cycles)."""
    store = chip._store  # the model keeps stuck bits per sector; it has no setter of its own
    for bit in bits:
        byte, mask = bit >> 3, 0x80 >> (bit & 7)
        sector = store.stuck.setdefault(byte // 4096, {})
        sector[byte % 4096] = sector.get(byte % 4096, 0) | mask


ROT_NEEDLE = 48  # bytes of image either side of a rotting bit that locate it on the chip


def rot_image_bits(array: bytearray, image: bytes, bits: tuple[int, ...]) -> int:
    """Flip image bits (``byte * 8 + bit`` offsets into ``image``, bit 0 = MSB) wherever the
    flash ``array`` (:attr:`sim.chip.w25q128.W25Q128.array`, the model's test backdoor: no
    program or erase is counted) holds that stretch of the image; returns how many flash
    bits flipped.

    A retention or read-disturb error (datasheet 9.6 data retention; JEDEC JESD22-A117):
    the cell changes after it was programmed and verified, with no program or erase, so
    nothing but reading the image back before use can see it. littlefs checks its
    metadata with CRCs but not file data, so the file system stays healthy. The image
    is found by content (a run of bytes around the bit) because littlefs decides where
    file data goes; a stretch that crosses a block's skip-list pointers is tried from
    the other side.
    """
    flipped = 0
    for bit in bits:
        byte, mask = bit >> 3, 0x80 >> (bit & 7)
        for lo in (max(0, byte - ROT_NEEDLE + 1), byte):
            needle = image[lo : lo + ROT_NEEDLE]
            where, hits = array.find(needle), 0
            while where >= 0:
                array[where + byte - lo] ^= mask
                hits += 1
                where = array.find(needle, where + len(needle))
            if hits:
                flipped += hits
                break
    return flipped


class _ScenarioTwin(InProcessTwin):
    """The in-process twin (a subclass only so a run can tell its own apart)."""


def _read(storage: Storage, path: str) -> bytes | None:
    try:
        return storage.read_file(path)
    except FileNotFoundError:
        return None


def _merge(doc: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    from agent.twin import merge_patch

    return merge_patch(doc, patch)


_UPLOADED: dict[int, dict[str, bytes]] = {}  # id(server) -> blob name -> sha256 uploaded


def _shifted(rule: dict[str, Any], offset: int) -> dict[str, Any]:
    """``rule`` with its request window moved past the ``offset`` requests made before
    the scenario (the base OTA): scenario plans count requests from the scenario's start."""
    first, last = rule.get("requests", [1, None])
    rule = dict(rule)
    rule["requests"] = [first + offset, None if last is None else last + offset]
    return rule


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


class _PowerMarks(PortWrapper):
    """A logging :class:`sim.ports.model.SimSpiPort` wrapper that marks where in its log each
    power loss was first seen (the first transaction the dead chip refused), so a trace
    shows the operations around the cut itself rather than the next boot's."""

    def __init__(self, port: SimSpiPort) -> None:
        super().__init__(port)
        self.port = port
        self.marks: list[tuple[int, float]] = []  # (log length, device time) per loss
        self._dead = False

    @property
    def log(self) -> list[SpiTransaction]:
        return self.port.log or []

    def exchange(
        self,
        out: bytes | bytearray = b"",
        readlen: int = 0,
        start: bool = True,
        stop: bool = True,
        duplex: bool = False,
        droptail: int = 0,
    ) -> bytes:
        try:
            got = super().exchange(out, readlen, start, stop, duplex, droptail)
        except PowerLoss:
            if not self._dead:
                self._dead = True
                self.marks.append((len(self.log), self.port.chip.clock.monotonic()))
            raise
        self._dead = False
        return got


_NAMES = {v: k for k, v in OPCODES.items()} | {
    0x03: "read",
    0x0B: "fast_read",
    0x05: "read_status1",
    0x06: "write_enable",
    0x9F: "read_jedec_id",
    0x5A: "read_sfdp",
    0xAB: "release_power_down",
    0x66: "enable_reset",
    0x99: "reset",
}


def _trace_lines(
    marks: _PowerMarks, fired: list[OpCut] | None = None, around: int = 12
) -> list[str]:
    """For each power loss: the ``around`` SPI transactions before it (the state-changing
    one it tore is flagged), the loss, and the first few transactions of the next boot."""
    log = marks.log
    lines: list[str] = []

    def line(i: int, flag: str = "") -> str:
        tx = log[i]
        op = tx.opcode
        name = _NAMES.get(op, f"{op:#04x}") if op is not None else "?"
        addr = "" if tx.address is None else f" @ {tx.address:#08x}"
        return f"  [{tx.time_s:12.6f} s] #{i:7d} {name}{addr} out={tx.out_len} in={tx.in_len}{flag}"

    for n, (end, when) in enumerate(marks.marks, 1):
        start = max(0, end - around)
        torn = max((i for i in range(start, end) if log[i].opcode in _STATE_CHANGING), default=None)
        lines.append(f"-- power cut {n}: the last {end - start} transactions before it --")
        lines += [
            line(i, "   <- cut during/after this" if i == torn else "") for i in range(start, end)
        ]
        lines.append(f"  <power lost; first refused transaction at {when:.6f} s (device time)>")
        nxt = marks.marks[n][0] if n < len(marks.marks) else len(log)
        after = list(range(end, min(end + 3, nxt)))
        if after:
            lines.append("  next boot:")
            lines += [line(i) for i in after]
    return lines


_STATE_CHANGING = frozenset((0x02, 0x20, 0x52, 0xD8, 0xC7, 0x60, 0x01, 0x31, 0x11))


__all__ = [
    "Base",
    "Cut",
    "FsCheck",
    "RequestRecord",
    "Scenario",
    "ScenarioResult",
    "StartState",
    "prepare_base",
    "rot_image_bits",
    "run_scenario",
    "stick_bits",
]
