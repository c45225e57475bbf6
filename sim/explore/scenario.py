"""A power-loss and network-fault scenario as data, and the runner that plays it.

A :class:`Scenario` says everything a run depends on, so a failing one replays
exactly from its JSON (``python -m sim replay scenario.json``): the image (seed and
size), the cuts (by state-changing operation index or by command kind and ordinal,
a fraction of the way through it, on which boot; the torn bits follow the chip's
seed), the blob server's fault plan (:meth:`sim.cloud.faults.plan.FaultPlan.to_dict`),
the twin-channel faults (:class:`ChannelFault`: the vocabulary of
:mod:`sim.cloud.twin_faults`, each armed at the start of one boot), the instruction
sequence (a newer version published mid-download, a malformed instruction mid-job, a
re-delivery after ``applied``, a stale version), faults of the flash itself (bits stuck
at 0, bits that rot between the last write and the verify) and the chip timing mode.

:func:`sim.explore.runner.run_scenario` plays one and returns a
:class:`sim.explore.result.ScenarioResult`, the record :mod:`sim.explore.invariants`
judges.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from sim.cloud.faults.plan import FaultPlan
from sim.cloud.twin_faults import TwinFault
from sim.ports.aimed_cut import OPCODES

TIMINGS = ("typical", "max", "random")
ANCHORS = ("boot", "newer")
BASE_VERSION = 1  # the version the device runs before every scenario


@functools.lru_cache(maxsize=16)
def _image(seed: str, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


@functools.lru_cache(maxsize=32)
def sha256_hex(data: bytes) -> str:
    """SHA-256 of an image, upper-case hex as the cloud contract writes it; computed once
    per image object (``bytes`` keep their hash, so the cache lookup is cheap)."""
    return hashlib.sha256(data).hexdigest().upper()


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
class ChannelFault:
    """A twin-channel fault in a scenario: armed at the first connect of boot ``boot``
    (``at_s`` and message counts run from there) and disarmed when that boot ends, as a
    cut is aimed at one boot, so an explorer's run from a cut plays the next boots
    exactly as a run from zero does. JSON: the fault's own (``{"fault": KIND, ...}``,
    :meth:`TwinFault.from_json`) plus ``"boot"``."""

    fault: TwinFault
    boot: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.fault, TwinFault):
            raise ValueError(f"ChannelFault.fault must be a TwinFault, got {self.fault!r}")
        if self.fault.device is not None:
            raise ValueError("twin_faults: a scenario has one device; leave 'device' out")
        _check_int("twin_faults[].boot", self.boot, 1)

    def to_dict(self) -> dict[str, Any]:
        """``{"boot": N, "fault": KIND}`` and every parameter that is not its default."""
        out: dict[str, Any] = {"boot": self.boot, "fault": self.fault.kind}
        for f in fields(TwinFault):
            value = getattr(self.fault, f.name)
            if f.name not in ("kind", "device") and value != f.default:
                out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChannelFault:
        if not isinstance(data, Mapping):
            raise ValueError(f"twin_faults: each must be a JSON object, got {data!r}")
        rest = {k: v for k, v in data.items() if k != "boot"}
        try:
            fault = TwinFault.from_json(rest)
        except ValueError as exc:
            raise ValueError(f"twin_faults: {exc}") from None
        return cls(fault, data.get("boot", 1))

    def describe(self) -> str:
        params = {k: v for k, v in self.to_dict().items() if k not in ("boot", "fault")}
        args = ", ".join(f"{k}={v}" for k, v in params.items())
        return f"{self.fault.kind}({args}) in boot {self.boot}"


def _channel_fault(item: Any) -> ChannelFault:
    if isinstance(item, ChannelFault):
        return item
    if isinstance(item, TwinFault):
        return ChannelFault(item)
    return ChannelFault.from_dict(item)


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
    twin_faults: tuple[ChannelFault, ...] = ()
    late_upload_at_request: int | None = None  # blob holds other bytes until this request
    newer_at_bytes: int | None = None  # publish version+1 once the device read this many bytes
    invalid_at_bytes: int | None = None  # a malformed instruction (fixed on 'invalid') mid-job
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
        for name in ("newer_at_bytes", "invalid_at_bytes"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), 0)
        cuts = tuple(c if isinstance(c, Cut) else Cut.from_dict(c) for c in self.cuts)
        object.__setattr__(self, "cuts", cuts)
        if any(c.anchor == "newer" for c in cuts) and self.newer_at_bytes is None:
            raise ValueError("Scenario.cuts: an anchor='newer' cut needs newer_at_bytes")
        object.__setattr__(self, "twin_faults", tuple(_channel_fault(f) for f in self.twin_faults))
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
        """The image published as ``version`` (the base, the main or the newer one);
        made once per seed and size (an explorer asks for it in every cut run)."""
        version = self.version if version is None else version
        if version == BASE_VERSION:
            return _image(f"base:{self.image_seed}", self.base_image_size)
        return _image(f"image:{self.image_seed}:{version}", self.image_size)

    def plan(self) -> FaultPlan:
        return FaultPlan.from_dict(self.fault_plan or {"rules": []})

    # -- JSON ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cuts"] = [c.to_dict() for c in self.cuts]
        data["twin_faults"] = [f.to_dict() for f in self.twin_faults]
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
        data["twin_faults"] = tuple(_channel_fault(f) for f in data.get("twin_faults", ()))
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
