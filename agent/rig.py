"""The rig file: one bench (or one gateway's wiring) described in TOML, validated when loaded.

A rig names the FTDI adapter, the SPI settings, which GPIO drives what (the flash
supply's load switch, WP#, HOLD#/RESET#), the capabilities tests may rely on, and
the flash region destructive tests may use. ``fixtures/rigs/ft232h-example.toml``
documents every key; ``fixtures/rigs/virtual.toml`` runs the same code on a
virtual FT232H. Every error names the file and the ``[section] key`` at fault.
"""

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.w25q128jv import SECTOR, SIZE

CAPABILITIES = frozenset({"power_cut", "write_protect"})
_DEFAULT_TEST_REGION = (SIZE - 1024 * 1024, SIZE)  # the top 1 MiB
FT232H_MAX_SCK_HZ = 30_000_000  # 60 MHz master clock / 2 (FT232H datasheet 4.4)
TIMINGS = ("typical", "max", "random")  # sim.chip.timing.MODES

_KEYS: dict[str, set[str]] = {
    "rig": {"name"},
    "ftdi": {"url", "virtual"},
    "spi": {"cs", "frequency_hz", "mode"},
    "gpio": {"power", "wp", "hold"},
    "power": {"off_time_s", "settle_time_s"},
    "capabilities": set(CAPABILITIES),
    "flash": {"test_region"},
    "virtual": {"seed", "timing"},
}


class RigError(ValueError):
    """A rig file is missing, unreadable or wrong; the message names the bad field."""


@dataclass(frozen=True)
class GpioRole:
    """A GPIO bit of the adapter (4-15: AD4-AD7 then AC0-AC7) and its active level."""

    pin: int
    active_high: bool

    @property
    def mask(self) -> int:
        return 1 << self.pin

    def level(self, active: bool) -> int:
        """The bit pattern that makes the role ``active`` (or inactive)."""
        return self.mask if active == self.active_high else 0


@dataclass(frozen=True)
class Rig:
    """One bench. Build it with :meth:`load` or :meth:`from_mapping`."""

    name: str
    url: str
    virtual: bool = False
    cs: int = 0
    frequency_hz: float = 8_000_000.0  # the reference design's SCK (w25q128jv notes)
    mode: int = 0
    power: GpioRole | None = None  # load switch on the chip's VCC; active = powered
    wp: GpioRole | None = None  # WP#: active = protecting (low)
    hold: GpioRole | None = None  # HOLD#/RESET#: active = holding (low)
    off_time_s: float = 0.1  # supply held off, so VCC falls below VPWD (bench-specific)
    settle_time_s: float = 0.01  # tPUW: VCC(min) to first write, 10 ms max (datasheet 9.1)
    capabilities: frozenset[str] = frozenset()
    test_region: tuple[int, int] = _DEFAULT_TEST_REGION
    seed: int = 0
    timing: str = "typical"
    source: str = field(default="<rig>", compare=False)

    def __post_init__(self) -> None:
        def bad(key: str, why: str) -> RigError:
            return RigError(f"{self.source}: {key}: {why}")

        if not self.name:
            raise bad("[rig] name", "must not be empty")
        if not self.url.startswith("ftdi://"):
            raise bad("[ftdi] url", f"{self.url!r} is not an ftdi:// URL (ftdi://ftdi:232h/1)")
        if not 0 <= self.cs <= 4:
            raise bad("[spi] cs", f"{self.cs} is not a /CS line 0-4 (AD3-AD7)")
        if not 0 < self.frequency_hz <= FT232H_MAX_SCK_HZ:
            raise bad("[spi] frequency_hz", f"{self.frequency_hz} is not in (0, 30 MHz]")
        if self.mode not in (0, 3):
            raise bad("[spi] mode", f"{self.mode}: the W25Q128JV supports SPI modes 0 and 3")
        used: dict[int, str] = {}
        for key in ("power", "wp", "hold"):
            role = getattr(self, key)
            if role is None:
                continue
            if not 4 + self.cs <= role.pin <= 15:
                raise bad(
                    f"[gpio] {key}",
                    f"pin {role.pin} is not a free GPIO (AD{4 + self.cs}-AD7 = "
                    f"{4 + self.cs}-7, AC0-AC7 = 8-15; AD0-AD{3 + self.cs} are SPI and /CS)",
                )
            if role.pin in used:
                raise bad(f"[gpio] {key}", f"pin {role.pin} is already {used[role.pin]}")
            used[role.pin] = key
        for key in ("off_time_s", "settle_time_s"):
            if not 0 <= getattr(self, key) <= 60:
                raise bad(f"[power] {key}", f"{getattr(self, key)} is not 0-60 s")
        unknown = self.capabilities - CAPABILITIES
        if unknown:
            raise bad("[capabilities]", f"unknown {sorted(unknown)}; known: {sorted(CAPABILITIES)}")
        if "power_cut" in self.capabilities and self.power is None:
            raise bad("[capabilities] power_cut", "needs [gpio] power (the supply switch)")
        if "write_protect" in self.capabilities and self.wp is None:
            raise bad("[capabilities] write_protect", "needs [gpio] wp (the WP# line)")
        start, end = self.test_region
        if not (0 <= start < end <= SIZE and start % SECTOR == 0 and end % SECTOR == 0):
            raise bad(
                "[flash] test_region",
                f"[0x{start:X}, 0x{end:X}] must be 4 KiB-aligned, start < end <= 0x{SIZE:X}",
            )
        if self.timing not in TIMINGS:
            raise bad("[virtual] timing", f"{self.timing!r} is not one of {TIMINGS}")

    @property
    def cs_count(self) -> int:
        """/CS lines pyftdi must reserve so that ``cs`` exists (AD3 up to AD3 + cs)."""
        return self.cs + 1

    def lacks(self, capability: str) -> str | None:
        """Why a test needing ``capability`` cannot run on this rig, or None if it can."""
        if capability not in CAPABILITIES:
            raise ValueError(f"unknown capability {capability!r}; known: {sorted(CAPABILITIES)}")
        if capability in self.capabilities:
            return None
        return f"rig {self.name!r} ({self.source}) does not declare [capabilities] {capability}"

    @classmethod
    def load(cls, path: str | Path) -> "Rig":
        """Read and validate a rig file."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise RigError(f"{path}: cannot read rig file: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise RigError(f"{path}: not valid TOML: {exc}") from None
        return cls.from_mapping(data, source=str(path))

    @classmethod
    def from_mapping(cls, data: dict[str, Any], *, source: str = "<rig>") -> "Rig":
        """Validate a parsed rig file (sections as in the example file)."""

        def bad(key: str, why: str) -> RigError:
            return RigError(f"{source}: {key}: {why}")

        for section, body in data.items():
            if section not in _KEYS:
                raise bad(f"[{section}]", f"unknown section; known: {sorted(_KEYS)}")
            if not isinstance(body, dict):
                raise bad(f"[{section}]", "must be a table")
            for key in body:
                if key not in _KEYS[section]:
                    raise bad(f"[{section}] {key}", f"unknown key; known: {sorted(_KEYS[section])}")

        def get(section: str, key: str, kind: type | tuple[type, ...], default: Any) -> Any:
            value = data.get(section, {}).get(key, default)
            kinds = kind if isinstance(kind, tuple) else (kind,)
            if value is not default and (
                not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds)
            ):
                names = " or ".join(k.__name__ for k in kinds)
                raise bad(f"[{section}] {key}", f"{value!r} is not a {names}")
            return value

        def role(key: str, *, active_high: bool) -> GpioRole | None:
            value = data.get("gpio", {}).get(key)
            if value is None:
                return None
            if isinstance(value, int) and not isinstance(value, bool):
                return GpioRole(value, active_high)
            if isinstance(value, dict) and set(value) <= {"pin", "active_high"}:
                pin, high = value.get("pin"), value.get("active_high", active_high)
                if isinstance(pin, int) and not isinstance(pin, bool) and isinstance(high, bool):
                    return GpioRole(pin, high)
            raise bad(f"[gpio] {key}", f"{value!r} is not a pin number or {{pin, active_high}}")

        if "url" not in data.get("ftdi", {}):
            raise bad("[ftdi] url", "is required (e.g. ftdi://ftdi:232h/1)")
        region = get("flash", "test_region", list, None)
        if region is not None and (
            len(region) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in region)
        ):
            raise bad("[flash] test_region", f"{region!r} is not [start, end]")
        caps = data.get("capabilities", {})
        for key, value in caps.items():
            if not isinstance(value, bool):
                raise bad(f"[capabilities] {key}", f"{value!r} is not true/false")
        defaults = cls.__dataclass_fields__
        return cls(
            name=get("rig", "name", str, Path(source).stem),
            url=get("ftdi", "url", str, None),
            virtual=get("ftdi", "virtual", bool, False),
            cs=get("spi", "cs", int, 0),
            frequency_hz=float(
                get("spi", "frequency_hz", (int, float), defaults["frequency_hz"].default)
            ),
            mode=get("spi", "mode", int, 0),
            power=role("power", active_high=True),
            wp=role("wp", active_high=False),
            hold=role("hold", active_high=False),
            off_time_s=float(
                get("power", "off_time_s", (int, float), defaults["off_time_s"].default)
            ),
            settle_time_s=float(
                get("power", "settle_time_s", (int, float), defaults["settle_time_s"].default)
            ),
            capabilities=frozenset(k for k, v in caps.items() if v),
            test_region=(region[0], region[1]) if region is not None else _DEFAULT_TEST_REGION,
            seed=get("virtual", "seed", int, 0),
            timing=get("virtual", "timing", str, "typical"),
            source=source,
        )
