"""What a campaign is: the fleet, its groups (one rollout wave each), the faults, the cuts.

Device time is each device's own virtual clock (:mod:`sim.campaign.clock`); every clock
starts at 0 when the campaign does, so "device time t" is t seconds into the rollout on
every device at once, as if they all ran side by side in real time.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from agent.engine import AgentConfig
from agent.hosts import LOOPBACK_HOSTS
from sim.campaign.twin_channel import FleetTwinFault
from sim.cloud.faults.plan import FaultPlan

PRODUCT = "washer"  # every targeted device's tags.productType
CONTROL_PRODUCT = "dryer"  # control devices: no configuration targets them
MAX_DEVICES = 5000
MiB = 1024 * 1024
_GROUP_NAME = re.compile(r"[A-Za-z0-9_\-]{1,64}")


@dataclass(frozen=True)
class Group:
    """A device group (``tags.deviceGroup``) and its share of the targeted fleet; each group
    is one wave of the rollout, in the order given."""

    name: str
    share: float  # a fraction of the targeted devices, (0, 1]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _GROUP_NAME.fullmatch(self.name):
            raise ValueError(f"group name must be 1-64 letters, digits, - or _, got {self.name!r}")
        if not (isinstance(self.share, int | float) and 0 < self.share <= 1):
            raise ValueError(f"group {self.name}: share must be in (0, 1], got {self.share!r}")


@dataclass(frozen=True)
class Outage:
    """The storage account unreachable from device time ``start`` for ``length`` seconds:
    every request a device sends in that window has its connection reset."""

    start: float
    length: float

    def __post_init__(self) -> None:
        for name in ("start", "length"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"outage {name} must be a number of seconds >= 0, got {value!r}")
        if self.length <= 0:
            raise ValueError(f"outage length must be > 0 s, got {self.length!r}")

    @property
    def end(self) -> float:
        return self.start + self.length

    def covers(self, t: float) -> bool:
        return self.start <= t < self.end


@dataclass(frozen=True, kw_only=True)
class CampaignPlan:
    """A campaign's parameters, validated on construction (errors name the field)."""

    devices: int = 100
    image_size: int = 256 * 1024
    groups: tuple[Group, ...] = (Group("canary", 0.1), Group("field", 0.9))
    control: int = 1  # devices of another product, never targeted
    # wave k is published at hub time k * this; IoT Hub evaluates a configuration when it
    # is created (then every EVALUATION_INTERVAL_S), so the operator's gap sets the pace
    wave_interval_s: float = 60.0
    faults: FaultPlan = field(default_factory=FaultPlan)
    twin_faults: tuple[FleetTwinFault, ...] = ()  # the plan file's "twin" section
    cut_rate: float = 0.0  # power cuts per device-hour of device time (Poisson, per device)
    outage: Outage | None = None
    seed: int = 0
    io_time_scale: float = 0.05  # real seconds waited per device second of a socket timeout
    max_device_time_s: float = 3 * 3600.0  # per device: the liveness bound
    max_boots: int = 200  # per device
    agent: AgentConfig = field(
        default_factory=lambda: AgentConfig(allow_http_loopback=True, storage_hosts=LOOPBACK_HOSTS)
    )

    def __post_init__(self) -> None:
        _int(self, "devices", 1, MAX_DEVICES)
        _int(self, "image_size", 1, 8 * MiB)
        _int(self, "control", 0, MAX_DEVICES)
        _int(self, "seed", -(2**63), 2**63)
        _int(self, "max_boots", 1, 10_000)
        if self.control >= self.devices:
            raise ValueError(
                f"control ({self.control}) must leave devices to target (devices = {self.devices})"
            )
        groups = tuple(self.groups)
        if not groups or not all(isinstance(g, Group) for g in groups):
            raise ValueError("groups must be a non-empty sequence of Group")
        if len({g.name for g in groups}) != len(groups):
            raise ValueError(f"group names must differ, got {[g.name for g in groups]}")
        if abs(sum(g.share for g in groups) - 1.0) > 1e-6:
            raise ValueError(
                f"group shares must add up to 100%, got {sum(g.share for g in groups):.4g}"
            )
        if len(groups) > self.devices - self.control:
            raise ValueError(f"{len(groups)} groups need at least as many targeted devices")
        object.__setattr__(self, "groups", groups)
        if not isinstance(self.faults, FaultPlan):
            raise ValueError(f"faults must be a FaultPlan, got {type(self.faults).__name__}")
        _number(self, "wave_interval_s", low=0.0)
        _number(self, "cut_rate", low=0.0)
        _number(self, "max_device_time_s", low=1.0)
        _number(self, "io_time_scale", low=1e-6)
        if self.io_time_scale > 1:
            raise ValueError(f"io_time_scale must be in (0, 1], got {self.io_time_scale}")
        if not isinstance(self.agent, AgentConfig):
            raise ValueError(f"agent must be an AgentConfig, got {type(self.agent).__name__}")
        if self.outage is not None and not isinstance(self.outage, Outage):
            raise ValueError(f"outage must be an Outage, got {type(self.outage).__name__}")
        self._check_twin_faults()

    def _check_twin_faults(self) -> None:
        rules = tuple(self.twin_faults)
        if not all(isinstance(r, FleetTwinFault) for r in rules):
            raise ValueError("twin_faults must be a sequence of FleetTwinFault")
        object.__setattr__(self, "twin_faults", rules)
        named = {r.fault.device for r in rules if r.fault.device is not None}
        if named:
            layout = self.layout()
            fleet = {d.device_id for d in layout}
            for device in sorted(d for d in named if d not in fleet):
                raise ValueError(
                    f"twin fault names device {device!r}, not one of this fleet's "
                    f"{layout[0].device_id} .. {layout[-1].device_id}"
                )

    @property
    def targeted(self) -> int:
        return self.devices - self.control

    def group_sizes(self) -> list[int]:
        """Devices per group (largest remainder, at least one each), in wave order."""
        n = self.targeted
        raw = [g.share * n for g in self.groups]
        sizes = [max(1, math.floor(r)) for r in raw]
        order = sorted(range(len(raw)), key=lambda i: raw[i] - math.floor(raw[i]), reverse=True)
        i = 0
        while sum(sizes) < n:
            sizes[order[i % len(order)]] += 1
            i += 1
        while sum(sizes) > n:
            biggest = max(range(len(sizes)), key=lambda j: sizes[j])
            sizes[biggest] -= 1
        return sizes

    def layout(self) -> list[DeviceSpec]:
        """Every device: its id, tags and wave (None for control devices)."""
        width = max(3, len(str(self.devices - 1)))
        specs: list[DeviceSpec] = []
        index = 0
        for wave, (group, size) in enumerate(zip(self.groups, self.group_sizes(), strict=True)):
            for _ in range(size):
                tags = {"productType": PRODUCT, "deviceGroup": group.name}
                specs.append(DeviceSpec(index, f"gw-{index:0{width}d}", tags, wave))
                index += 1
        for _ in range(self.control):
            tags = {"productType": CONTROL_PRODUCT, "deviceGroup": self.groups[0].name}
            specs.append(DeviceSpec(index, f"gw-{index:0{width}d}", tags, None))
            index += 1
        return specs

    def wave_time(self, wave: int) -> float:
        """Hub time at which wave ``wave``'s configuration is created and evaluated."""
        return wave * self.wave_interval_s


@dataclass(frozen=True)
class DeviceSpec:
    index: int
    device_id: str
    tags: dict[str, str]
    wave: int | None  # None: a control device


# --- command-line forms ----------------------------------------------------------------


def parse_groups(text: str) -> tuple[Group, ...]:
    """``canary=10%,field=90%`` (or fractions ``0.1``, or bare names for equal shares)."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise ValueError("--groups: give at least one group, e.g. canary=10%,field=90%")
    named = [p.partition("=") for p in parts]
    if all(not sep for _, sep, _ in named):
        return tuple(Group(name, 1 / len(named)) for name, _, _ in named)
    groups = []
    for name, sep, share in named:
        if not sep:
            raise ValueError(f"--groups: {name!r} has no share (give every group one, or none)")
        groups.append(Group(name.strip(), _share(share.strip(), name)))
    return tuple(groups)


def _share(text: str, name: str) -> float:
    try:
        return float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise ValueError(
            f"--groups: share of {name!r} must be N% or a fraction, got {text!r}"
        ) from None


def parse_outage(text: str) -> Outage:
    """``START:LENGTH`` in seconds of device time, e.g. ``30:120``."""
    start, sep, length = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return Outage(float(start), float(length))
    except ValueError as exc:
        detail = f": {exc}" if str(exc) else ""
        raise ValueError(
            f"--outage must be START:LENGTH in seconds, got {text!r}{detail}"
        ) from None


def _int(plan: CampaignPlan, name: str, low: int, high: int) -> None:
    value = getattr(plan, name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in {low}..{high}, got {value!r}")


def _number(plan: CampaignPlan, name: str, *, low: float) -> None:
    value = getattr(plan, name)
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < low:
        raise ValueError(f"{name} must be a number >= {low:g}, got {value!r}")
