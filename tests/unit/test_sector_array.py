"""The sparse, copy-on-write NOR array under the chip model and the memory flash (issue 12
"Chips that cost what they hold"; issue 11 "sector-level snapshots instead of two 16 MiB
copies")."""

import mmap
import random

import pytest

from agent.flash import SpiFlash
from agent.storage import Storage
from agent.w25q128jv import SECTOR, SIZE
from sim.chip.sectors import ERASED_SECTOR, SectorArray
from sim.chip.w25q128 import W25Q128
from sim.clock import VirtualClock
from sim.ports.memory import MemoryFlash
from sim.ports.model import SimSpiPort

pytestmark = pytest.mark.sim

MIB = 1024 * 1024


def test_an_erased_array_holds_no_sector_data():
    """A new 16 MiB array costs nothing per erased sector."""
    arr = SectorArray(SIZE)
    assert arr.resident_bytes() == 0
    assert arr.read(SIZE - 16, 16) == b"\xff" * 16


def test_a_chip_whose_littlefs_holds_1_mib_costs_about_1_mib():
    """littlefs with a 1 MiB file on the model: the array holds that image plus
    littlefs's metadata (a few blocks), not 16 MiB."""
    clock = VirtualClock()
    chip = W25Q128(clock)
    storage = Storage.mount(SpiFlash(SimSpiPort(chip, frequency=8e6), clock))
    with storage.open_append("img.bin") as f:
        f.write(random.Random(1).randbytes(MIB))
    storage.unmount()
    held = chip.array.resident_bytes()
    assert MIB <= held <= MIB + 64 * SECTOR


def test_snapshot_then_write_copies_only_the_written_sector():
    """Copy-on-write: the snapshot keeps the old sector, the array gets its own copy."""
    arr = SectorArray(4 * SECTOR)
    arr.and_into(SECTOR + 5, b"\x00")
    snap = arr.freeze()
    arr.and_into(SECTOR + 6, b"\x0f")
    assert snap[1][5:7] == b"\x00\xff"
    assert arr.read(SECTOR + 5, 2) == b"\x00\x0f"
    assert arr.freeze()[0] is snap[0] is ERASED_SECTOR


def test_reads_and_programs_cross_sector_boundaries():
    arr = SectorArray(4 * SECTOR)
    arr.and_into(SECTOR - 2, b"\x01\x02\x03\x04")
    assert arr.read(SECTOR - 3, 6) == b"\xff\x01\x02\x03\x04\xff"
    assert arr[SECTOR - 2 : SECTOR + 2] == b"\x01\x02\x03\x04"


def test_the_backdoor_reads_and_writes_like_a_bytearray():
    """The chip's ``array`` backdoor: index, slice, slice assignment, bytes(), find()."""
    arr = SectorArray(4 * SECTOR)
    arr[0] = 0x12
    arr[SECTOR - 1 : SECTOR + 1] = b"ab"
    assert arr[0] == 0x12 and arr[-1] == 0xFF
    assert bytes(arr)[SECTOR - 1 : SECTOR + 1] == b"ab"
    assert len(bytes(arr)) == len(arr) == 4 * SECTOR
    assert arr.find(b"ab") == SECTOR - 1
    assert arr.find(b"ab", SECTOR) == -1
    assert arr.find(b"\xffa") == SECTOR - 2
    with pytest.raises(ValueError, match="size"):
        arr[0:2] = b"x"
    with pytest.raises(IndexError):
        arr[4 * SECTOR] = 0


def test_find_locates_a_needle_starting_in_an_erased_sector():
    """A needle whose leading 0xFF bytes lie at the end of an erased sector."""
    arr = SectorArray(4 * SECTOR)
    arr[2 * SECTOR : 2 * SECTOR + 2] = b"\x00\x01"
    assert arr.find(b"\xff\xff\x00\x01") == 2 * SECTOR - 2


def test_a_mirror_receives_every_write(tmp_path):
    """File persistence: programs, erases and slice writes land in the mapped file."""
    size = 4 * SECTOR
    path = tmp_path / "img.bin"
    path.write_bytes(ERASED_SECTOR * 4)
    with path.open("r+b") as f, mmap.mmap(f.fileno(), size) as mapped:
        arr = SectorArray.from_bytes(mapped, mirror=mapped)
        arr.and_into(10, b"\x00\x00")
        arr[SECTOR] = 7
        arr.erase(0)
        snap = arr.freeze()
        arr.and_into(SECTOR + 1, b"\x00")
        arr.load(snap)
        assert bytes(mapped) == bytes(arr)
    data = path.read_bytes()
    assert data[10:12] == b"\xff\xff" and data[SECTOR : SECTOR + 2] == b"\x07\xff"


def test_memory_flash_from_a_snapshot_shares_its_sectors():
    """The explorer's continuation flash costs references, not a 16 MiB copy."""
    chip = W25Q128()
    chip.array[0:4] = b"abcd"
    snap = chip.snapshot()
    flash = MemoryFlash.from_sectors(snap.sectors)
    assert flash.memory.sectors[0] is snap.sectors[0]
    flash.program(0, b"\x00")
    assert flash.read(0, 2) == b"\x00b" and snap.sectors[0][:2] == b"ab"
