"""The read-only view the harness's own checks mount littlefs on (sim/ports/view.py):
it reads what the array holds, live or frozen, and refuses every write."""

import random

import pytest

from agent.storage import Storage, StorageError
from agent.w25q128jv import SECTOR
from sim.chip.sectors import SectorArray
from sim.ports.memory import MemoryFlash
from sim.ports.view import ArrayView, ReadOnlyFlash

pytestmark = pytest.mark.sim


def test_reads_match_the_array_live_and_frozen_across_sectors():
    array = SectorArray(8 * SECTOR)
    array.put(0, random.Random(3).randbytes(5 * SECTOR))
    live, frozen = ArrayView(array), ArrayView(sectors=array.freeze())
    for addr, n in [(0, 16), (SECTOR - 5, 10), (100, 3 * SECTOR), (7 * SECTOR, SECTOR), (9, 0)]:
        assert live.read(addr, n) == frozen.read(addr, n) == array.read(addr, n)
    array.put(10, b"\x00")  # the live view sees it, the frozen one does not
    assert live.read(10, 1) == b"\x00" != frozen.read(10, 1)
    with pytest.raises(ValueError, match="outside"):
        live.read(8 * SECTOR - 1, 2)


def test_writes_are_refused_and_littlefs_is_never_formatted_through_it():
    view = ArrayView(sectors=MemoryFlash().memory.freeze())
    with pytest.raises(ReadOnlyFlash):
        view.program(0, b"\x00")
    with pytest.raises(ReadOnlyFlash):
        view.erase(0, SECTOR)
    with pytest.raises(StorageError):
        Storage.mount(view)  # a blank region would be formatted: the view refuses


def test_littlefs_mounts_and_reads_through_it():
    flash = MemoryFlash()
    storage = Storage.mount(flash)
    storage.write_atomic("a.txt", b"hello")
    storage.unmount()
    seen = Storage.mount(ArrayView(flash.memory), format_blank=False)
    assert seen.read_file("a.txt") == b"hello"
    seen.unmount()


def test_it_takes_one_source():
    with pytest.raises(ValueError, match="one of them"):
        ArrayView()
    with pytest.raises(ValueError, match="one of them"):
        ArrayView(SectorArray(SECTOR), sectors=(b"\xff" * SECTOR,))
