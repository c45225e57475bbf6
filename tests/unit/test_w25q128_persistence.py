"""W25Q128JV non-volatile state: wear, file-backed images and snapshots (issue 2 "Wear",
"Persistence"; datasheet 6.1 endurance of 100,000 cycles)."""

import pytest

from sim.chip.w25q128 import W25Q128
from tests.common.nor import Nor

pytestmark = pytest.mark.sim


def _wear_out(nor: Nor, cycles: int) -> None:
    for _ in range(cycles):
        nor.erase(0x20, 0, wait=False)
        nor.clock.sleep(45e-3)


def test_erases_past_endurance_stick_bits_when_wear_failure_is_on():
    """Past the rated endurance a worn sector no longer erases fully: bits stick at 0
    (module doc wear model)."""
    nor = Nor(endurance=3, wear_failure=True, seed=9)
    _wear_out(nor, 6)
    assert nor.chip.wear[0] == 6
    assert nor.read(0, 4096) != b"\xff" * 4096


def test_erases_past_endurance_still_work_when_wear_failure_is_off():
    """wear_failure=False only counts (the default)."""
    nor = Nor(endurance=3)
    _wear_out(nor, 6)
    assert nor.chip.wear[0] == 6 and nor.read(0, 4096) == b"\xff" * 4096


def test_a_new_chip_on_the_same_image_sees_the_data_and_registers(tmp_path):
    """A file-backed array survives a power cycle across instances (persistence), with the
    non-volatile status bits and wear."""
    image = tmp_path / "flash.bin"
    nor = Nor(image=image)
    nor.program(0x1234, b"persist")
    nor.write_status(0x31, 0x40)
    nor.chip.power_off()
    nor.chip.close()
    again = Nor(image=image)
    assert again.read(0x1234, 7) == b"persist"
    assert again.sr(2) & 0x40
    again.chip.close()


def test_image_of_the_wrong_size_is_refused_naming_the_file(tmp_path):
    """Bad input gets an error naming what was wrong."""
    bad = tmp_path / "short.bin"
    bad.write_bytes(b"\xff" * 100)
    with pytest.raises(ValueError, match=r"short\.bin"):
        W25Q128(image=bad)


def test_restore_puts_back_array_status_security_and_wear():
    """snapshot()/restore() round-trip the whole non-volatile state."""
    nor = Nor()
    nor.program(0, b"\x01")
    snap = nor.chip.snapshot()
    nor.program(0x10000, b"\x02")
    nor.erase(0x20, 0)
    nor.write_status(0x01, 0x04)
    nor.wren()
    nor.cmd(0x42, 0x1000, b"\x00")
    nor.wait()
    nor.chip.restore(snap)
    assert nor.read(0, 1) == b"\x01" and nor.read(0x10000, 1) == b"\xff"
    assert nor.sr() == 0x00
    assert nor.cmd(0x48, 0x1000, dummy=1, readlen=1) == b"\xff"
    assert nor.chip.wear[0] == 0


def test_snapshots_see_backdoor_writes_to_the_array():
    """Writes through chip.array are part of the next snapshot (backdoor contract)."""
    nor = Nor()
    nor.chip.array[5] = 0x42
    snap = nor.chip.snapshot()
    nor.chip.array[5] = 0x00
    nor.chip.restore(snap)
    assert nor.read(5, 1) == b"\x42"


def test_snapshots_share_unchanged_sectors():
    """Copy-on-write per 4 KiB sector: consecutive snapshots share untouched sectors."""
    nor = Nor()
    a = nor.chip.snapshot()
    nor.program(0x3000, b"\x00")
    b = nor.chip.snapshot()
    assert a.sectors[3] is not b.sectors[3]
    assert all(x is y for i, (x, y) in enumerate(zip(a.sectors, b.sectors, strict=True)) if i != 3)


def test_restore_on_a_file_backed_chip_rewrites_the_image(tmp_path):
    """restore() writes the snapshot back into a file-backed array."""
    nor = Nor(image=tmp_path / "img.bin")
    snap = nor.chip.snapshot()
    nor.program(0x100, b"\x00")
    nor.chip.restore(snap)
    assert nor.read(0x100, 1) == b"\xff"
    nor.chip.close()


def test_bits_start_to_stick_with_the_first_erase_past_endurance():
    """With endurance=3 the third erase still erases fully and the fourth leaves a bit stuck
    at 0 (datasheet 6.1 endurance; module doc wear model)."""
    nor = Nor(endurance=3, wear_failure=True, seed=9)
    _wear_out(nor, 3)
    assert nor.read(0, 4096) == b"\xff" * 4096
    _wear_out(nor, 1)
    assert nor.read(0, 4096) != b"\xff" * 4096


def test_rated_endurance_defaults_to_100000_cycles():
    """By default bits stick from the 100,001st erase of a sector, not before (datasheet 6.1:
    100,000 program/erase cycles)."""
    nor = Nor(wear_failure=True, seed=9)
    nor.chip.wear[0] = 99_999
    _wear_out(nor, 1)
    assert nor.read(0, 4096) == b"\xff" * 4096
    _wear_out(nor, 1)
    assert nor.read(0, 4096) != b"\xff" * 4096


def test_wear_counts_survive_in_the_image_across_instances(tmp_path):
    """Erase counts are non-volatile: a new chip on the same image sees them (issue 2
    persistence and wear)."""
    image = tmp_path / "flash.bin"
    nor = Nor(image=image)
    nor.erase(0x20, 0x3000)
    nor.chip.power_off()
    nor.chip.close()
    again = Nor(image=image)
    assert again.chip.wear[3] == 1
    again.chip.close()


def test_stuck_bits_survive_in_the_image_across_instances(tmp_path):
    """A worn-out sector stays worn: a new chip on the same image still cannot erase it
    fully (issue 2 wear and persistence)."""
    image = tmp_path / "flash.bin"
    nor = Nor(image=image, endurance=1, wear_failure=True, seed=9)
    _wear_out(nor, 2)
    nor.chip.power_off()
    nor.chip.close()
    again = Nor(image=image)
    _wear_out(again, 1)
    assert again.read(0, 4096) != b"\xff" * 4096
    again.chip.close()


def test_security_registers_survive_in_the_image_across_instances(tmp_path):
    """Security registers are non-volatile: a new chip on the same image reads what 42h
    wrote (datasheet 8.2.34; issue 2 persistence)."""
    image = tmp_path / "flash.bin"
    nor = Nor(image=image)
    nor.wren()
    nor.cmd(0x42, 0x002010, b"kept")
    nor.wait()
    nor.chip.close()
    again = Nor(image=image)
    assert again.cmd(0x48, 0x002010, dummy=1, readlen=4) == b"kept"
    again.chip.close()


def test_power_off_writes_the_registers_to_the_image(tmp_path):
    """power_off() flushes: a new chip on the image sees the non-volatile status bits even
    if the old one is never closed (a cut must not lose completed writes; datasheet 7.1)."""
    image = tmp_path / "flash.bin"
    nor = Nor(image=image)
    nor.write_status(0x31, 0x40)
    nor.chip.power_off()
    again = Nor(image=image)
    try:
        assert again.sr(2) & 0x40
    finally:
        again.chip.close()
        nor.chip.close()
