"""The pytest plugin's port fixtures, shared by simulation and the bench (issue 6).

``flash_port`` / ``flash_clock`` are parametrised over ``sim`` (a fresh W25Q128 model
behind :class:`sim.ports.model.SimSpiPort`, on a virtual clock) and ``hil`` (the rig's own
pyftdi ``SpiPort``: a real adapter with real time, or the virtual FT232H on the
model's virtual clock). Each param carries its marker, so ``pytest -m sim`` runs
the simulator variant and ``pytest -m hil --rig FILE`` the bench variant of the
very same test. Destructive tests stay inside ``flash_scratch``, which on a bench
lies in the rig's ``[flash] test_region`` and is restored afterwards; the agent's OTA
tests put littlefs in ``ota_geometry``, likewise inside the test region and restored,
and cut power through ``flash_supply`` (the model's power, or the rig's supply GPIO).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from agent.clock import Clock
from agent.flash import SpiFlash
from agent.spi import SpiPort
from agent.storage import Geometry
from agent.w25q128jv import PAGE, SECTOR
from hil.raw import T_BE64_S, RawNor
from hil.rig import Rig

if TYPE_CHECKING:
    from hil.port import Bench

SCRATCH_SIZE = 4 * SECTOR  # four sectors: enough for every shared test, quick to restore
SIM_REGION = (0xF00000, 0x1000000)  # the virtual rig's test_region, used in simulation too
OTA_BLOCKS = 64  # 256 KiB of littlefs: two 64 KiB images, metadata and the agent's reserve


@dataclass(frozen=True)
class Scratch:
    """Sectors a test may erase and program: ``base`` up to ``base + size``."""

    base: int
    size: int


@dataclass
class FlashTarget:
    """One variant: its port and clock, the rig (None in simulation), the bench if any."""

    kind: str
    port: SpiPort
    clock: Clock
    rig: Rig | None = None
    bench: Bench | None = None
    chip: Any = None


def _sim_target() -> Iterator[FlashTarget]:
    from sim.chip.w25q128 import W25Q128
    from sim.clock import VirtualClock
    from sim.ports.model import SimSpiPort

    clock = VirtualClock()
    chip = W25Q128(clock=clock, seed=0, timing="typical")
    yield FlashTarget("sim", SimSpiPort(chip), clock, chip=chip)


def _hil_target(rig: Rig) -> Iterator[FlashTarget]:
    from hil.port import open_bench  # pyftdi: only when a bench test runs

    with open_bench(rig) as bench:
        yield FlashTarget("hil", bench.port, bench.clock, rig, bench, bench.chip)


@pytest.fixture(
    params=[pytest.param("sim", marks=pytest.mark.sim), pytest.param("hil", marks=pytest.mark.hil)]
)
def flash_target(request: pytest.FixtureRequest) -> Iterator[FlashTarget]:
    """One variant per param: the W25Q128 model (``sim``) or the rig (``hil``)."""
    if request.param == "sim":
        yield from _sim_target()
    else:
        yield from _hil_target(request.getfixturevalue("rig"))


@pytest.fixture
def flash_port(flash_target: FlashTarget) -> SpiPort:
    """The SPI port onto a W25Q128: simulated or on the bench."""
    return flash_target.port


@pytest.fixture
def flash_clock(flash_target: FlashTarget) -> Clock:
    """The clock that goes with ``flash_port`` (virtual, or real on a real rig)."""
    return flash_target.clock


@pytest.fixture
def flash_scratch(flash_target: FlashTarget) -> Iterator[Scratch]:
    """Four sectors the test may destroy; on a bench, saved first and restored after."""
    if flash_target.rig is None:
        yield Scratch(0xF00000, SCRATCH_SIZE)
        return
    base = flash_target.rig.test_region[0]
    nor = RawNor(flash_target.port, flash_target.clock, record=False)
    saved = nor.read(base, SCRATCH_SIZE)
    yield Scratch(base, SCRATCH_SIZE)
    nor.reset()  # leave no suspend or write enable behind (datasheet 8.2.43)
    nor.wait_idle(T_BE64_S)
    for offset in range(0, SCRATCH_SIZE, SECTOR):
        nor.erase(base + offset)
        nor.wait_idle(T_BE64_S)
    for offset in range(0, SCRATCH_SIZE, PAGE):
        page = saved[offset : offset + PAGE]
        if page != b"\xff" * PAGE:
            nor.program(base + offset, page)
            nor.wait_idle(T_BE64_S)
    if nor.read(base, SCRATCH_SIZE) != saved:
        pytest.fail(f"could not restore the test region at 0x{base:06X} after the test")


@pytest.fixture
def requires_capability(flash_target: FlashTarget) -> Callable[[str], None]:
    """Call with a capability name; skips the bench variant if the rig lacks it (the
    ``needs_<capability>`` markers do the same at collection, which is preferred)."""

    def check(capability: str) -> None:
        if flash_target.rig is not None:
            reason = flash_target.rig.lacks(capability)
            if reason:
                pytest.skip(reason)

    return check


class NoSupply:
    """A rig without a supply switch: always on, and it cannot cut."""

    powered = True

    def __init__(self, rig: Rig) -> None:
        self._rig = rig

    def power_off(self) -> None:
        raise RuntimeError(f"rig {self._rig.name!r} has no [gpio] power: it cannot cut the supply")

    def power_on(self) -> None:
        pass


@pytest.fixture
def flash_supply(flash_target: FlashTarget) -> Any:
    """The flash's power: the model itself in simulation, the rig's supply switch on a
    bench (tests that cut carry ``@pytest.mark.needs_power_cut``)."""
    if flash_target.rig is None:
        return flash_target.chip
    assert flash_target.bench is not None
    return flash_target.bench.power or NoSupply(flash_target.rig)


def _restore(port: SpiPort, clock: Clock, base: int, saved: bytes) -> list[int]:
    """Rewrite every sector that differs from ``saved``; returns their addresses."""
    nor = RawNor(port, clock, record=False)
    nor.reset()  # no suspend, write enable or power-down left behind (datasheet 8.2.43)
    nor.wait_idle(T_BE64_S)
    changed = []
    for offset in range(0, len(saved), SECTOR):
        want = saved[offset : offset + SECTOR]
        if nor.read(base + offset, SECTOR) == want:
            continue
        changed.append(base + offset)
        nor.erase(base + offset)
        nor.wait_idle(T_BE64_S)
        for page in range(0, SECTOR, PAGE):
            data = want[page : page + PAGE]
            if data != b"\xff" * PAGE:
                nor.program(base + offset + page, data)
                nor.wait_idle(T_BE64_S)
    return changed


@pytest.fixture
def ota_geometry(flash_target: FlashTarget) -> Iterator[Geometry]:
    """A blank littlefs region of ``OTA_BLOCKS`` blocks for the agent: at the start of the
    rig's ``[flash] test_region`` (saved first, restored after), or of ``SIM_REGION``."""
    start, end = SIM_REGION if flash_target.rig is None else flash_target.rig.test_region
    if (end - start) // SECTOR < OTA_BLOCKS:
        pytest.skip(
            f"the rig's [flash] test_region [0x{start:X}, 0x{end:X}] holds "
            f"{(end - start) // SECTOR} sectors; the OTA tests need {OTA_BLOCKS}"
        )
    geometry = Geometry(offset=start, block_count=OTA_BLOCKS)
    size = geometry.region_size
    flash = SpiFlash(flash_target.port, flash_target.clock)
    saved = flash.read(start, size) if flash_target.rig is not None else None
    flash.erase(start, size)  # blank, so the agent formats it (format_blank)
    yield geometry
    if saved is not None:
        _restore(flash_target.port, flash_target.clock, start, saved)
        if flash.read(start, size) != saved:
            pytest.fail(f"could not restore the test region at 0x{start:06X} after the test")
