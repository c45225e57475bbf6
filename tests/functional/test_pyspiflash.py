"""pyspiflash, a second client written against real chips, drives the simulated W25Q128JV.

pyspiflash (PyPI ``pyspiflash``, module ``spiflash.serialflash``) identifies a part by
its JEDEC ID and drives it through any object with pyftdi's ``exchange(out, readlen)``,
``set_frequency()`` and ``.frequency``: here :class:`sim.ports.model.SimSpiPort` (issue 2,
section 5). Its rules (Winbond table, erase planning, WEL before every program and
erase, polling SR1 BUSY) are the specification these tests hold the model to.

pyspiflash waits with ``time.sleep`` (0.2 s per 4 KiB erase, 1.5 ms per page) and
times out with ``time.time``. The ``virtual_time`` fixture replaces the ``time`` module
pyspiflash sees with one reading the chip's :class:`sim.clock.VirtualClock`: its
sleeps advance the chip's clock (the chip sees the wait pass) and cost no real time.
"""

import random

import pytest
from spiflash import serialflash
from spiflash.serialflash import SerialFlashManager, W25xFlashDevice

from sim.clock import VirtualClock

pytestmark = pytest.mark.sim


@pytest.fixture
def chip(w25q128):
    """The plugin's fresh W25Q128 model (typical timing, seed 0, virtual clock)."""
    return w25q128


@pytest.fixture
def clock(w25q128):
    return w25q128.clock


@pytest.fixture
def port(w25q128_port):
    """The chip behind pyftdi's ``SpiPort`` interface at 30 MHz SCK."""
    return w25q128_port


SIZE = 16 * 1024 * 1024


class VirtualTime:
    """The two functions of ``time`` pyspiflash calls, on a virtual clock."""

    def __init__(self, clock: VirtualClock) -> None:
        self._clock = clock
        self.slept_s = 0.0

    def time(self) -> float:
        return self._clock.monotonic()

    def sleep(self, seconds: float) -> None:
        self.slept_s += seconds
        self._clock.sleep(seconds)


@pytest.fixture
def virtual_time(monkeypatch, clock):
    fake = VirtualTime(clock)
    monkeypatch.setattr(serialflash, "time", fake)
    return fake


@pytest.fixture
def flash(port, virtual_time):
    """The device pyspiflash detects on the port, as ``get_flash_device`` would build it.

    ``get_flash_device(url)`` opens an FTDI adapter, then reads the JEDEC ID and picks
    the driver class with ``_get_flash``; without an adapter we call those two steps.
    """
    device = SerialFlashManager._get_flash(port, SerialFlashManager.read_jedec_id(port))
    device.set_spi_frequency()
    return device


def test_pyspiflash_reads_the_jedec_id_ef4018(port):
    """Datasheet 8.2.29 (9Fh): manufacturer EFh, memory type 40h, capacity 18h."""
    assert SerialFlashManager.read_jedec_id(port) == b"\xef\x40\x18"


def test_pyspiflash_detects_a_16_mib_winbond_w25q(flash):
    """pyspiflash's Winbond table: device 40h is a W25Q, capacity 18h is 16 MiB."""
    assert isinstance(flash, W25xFlashDevice)
    assert len(flash) == SIZE
    assert str(flash) == "Winbond W25Q128 16 MiB"


def test_pyspiflash_sets_its_winbond_maximum_frequency_on_the_port(flash):
    """pyspiflash clocks W25Q parts at its table's maximum, 104 MHz."""
    assert flash.spi_frequency == 104e6


def test_pyspiflash_reads_an_erased_chip_as_ff(flash):
    """Datasheet 8.2.7 Fast Read (0Bh, 8 dummy clocks): a new chip reads FFh."""
    data = flash.read(0x123400, 0x2000)
    assert data == b"\xff" * 0x2000


def test_pyspiflash_round_trips_data_across_pages(flash, chip):
    """Page Program (8.2.13) split at page ends by pyspiflash, read back with 0Bh."""
    data = random.Random(5).randbytes(3 * 256 + 77)
    address = 0x20000 + 100  # unaligned: the first page is partial
    flash.write(address, data)
    assert flash.read(address, len(data)) == data
    assert bytes(chip.array[address : address + len(data)]) == data


def test_pyspiflash_erase_then_rewrite_round_trips(flash, chip, virtual_time):
    """Erases (8.2.15-8.2.17) set every bit of the unit; new data then programs cleanly.

    pyspiflash erases 68 KiB at 0x0F000 with one 4 KiB sector (20h), one 64 KiB block
    (D8h) and nothing else; the bytes around the range keep their old contents.
    """
    rng = random.Random(6)
    start, length = 0x0F000, 0x11000
    old = rng.randbytes(length + 2 * 0x1000)
    flash.write(start - 0x1000, old)
    flash.erase(start, length, verify=True)
    assert flash.read(start - 0x1000, 0x1000) == old[:0x1000]
    assert flash.read(start + length, 0x1000) == old[-0x1000:]
    assert chip.counters.ops["sector_erase"] == 1
    assert chip.counters.ops["block64_erase"] == 1
    new = rng.randbytes(length)
    flash.write(start, new)
    assert flash.read(start, length) == new
    assert virtual_time.slept_s > 0  # pyspiflash waited, on the virtual clock


def test_pyspiflash_sees_busy_for_the_datasheet_erase_time(flash, port, clock):
    """Datasheet 9.6 tSE: a 4 KiB erase keeps SR1 BUSY for 45 ms (typical) after /CS rises."""
    port.exchange(b"\x06")  # Write Enable (8.2.1)
    port.exchange(bytes((0x20, 0x00, 0x10, 0x00)))  # Sector Erase 4 KiB at 0x001000
    assert flash.is_busy()
    clock.advance(0.044)
    assert flash.is_busy()
    clock.advance(0.002)
    assert not flash.is_busy()


def test_pyspiflash_chip_erase_times_out_before_the_w25q128jv_finishes(flash, chip, clock):
    """Datasheet 9.6 tCE: chip erase takes 40 s typical; pyspiflash allows 4 s + 11 s.

    pyspiflash's Winbond timing table (chip erase 4 s typical, 11 s max) predates
    the W25Q128JV; on this part its wait gives up while the chip is still BUSY, as it
    would on a real one. The erase completes on the chip's own schedule.
    """
    chip.array[0:4] = b"\x00\x01\x02\x03"
    with pytest.raises(serialflash.SerialFlashTimeout):
        flash.erase(0, len(flash))
    assert flash.is_busy()
    clock.advance(40.0)
    assert not flash.is_busy()
    assert flash.read(0, 4) == b"\xff" * 4
