"""W25Q128JV erases 20h/52h/D8h/C7h/60h (datasheet 8.2.15-8.2.18)."""

import pytest

from tests.common.nor import Nor

pytestmark = pytest.mark.sim

SIZE = 16 * 1024 * 1024


@pytest.mark.parametrize(
    ("opcode", "unit", "duration_s"),
    [(0x20, 4096, 45e-3), (0x52, 32768, 120e-3), (0xD8, 65536, 150e-3)],
)
def test_erase_sets_the_whole_unit_to_ff_with_the_address_taken_down(opcode, unit, duration_s):
    """The address is rounded down to the unit; the unit and nothing else becomes FFh;
    BUSY lasts tSE/tBE1/tBE2 typical (datasheet 8.2.15-8.2.17, 9.6)."""
    nor = Nor()
    base = 3 * unit
    nor.chip.array[base - 1 : base + unit + 1] = bytes(unit + 2)
    nor.wren()
    nor.cmd(opcode, base + unit // 2 + 5)
    assert duration_s <= nor.wait(poll_s=1e-4) <= duration_s + 2e-4
    assert nor.read(base, unit) == b"\xff" * unit
    assert nor.read(base - 1, 1) == b"\x00"
    assert nor.read(base + unit, 1) == b"\x00"


@pytest.mark.parametrize("opcode", [0xC7, 0x60])
def test_chip_erase_sets_every_byte_to_ff(opcode):
    """C7h and 60h erase the whole array in tCE (datasheet 8.2.18)."""
    nor = Nor()
    nor.chip.array[0:4] = bytes(4)
    nor.chip.array[SIZE - 4 :] = bytes(4)
    nor.erase(opcode, wait=False)
    assert 40.0 <= nor.wait(poll_s=0.1) <= 40.1
    assert nor.read(0, 4) == b"\xff" * 4 and nor.read(SIZE - 4, 4) == b"\xff" * 4


def test_erase_without_wel_is_ignored():
    """Erase needs WEL=1 (datasheet 8.2.15)."""
    nor = Nor()
    nor.chip.array[0] = 0
    nor.erase(0x20, 0, wel=False, wait=False)
    assert not nor.chip.busy and nor.read(0, 1) == b"\x00"


def test_erase_clears_wel_on_completion():
    """WEL clears when an erase completes (datasheet 7.1.2)."""
    nor = Nor()
    nor.erase(0x20, 0)
    assert not nor.sr() & 0x02


def test_erase_with_a_short_address_is_not_started():
    """The erase only starts if /CS rises after the last address byte (datasheet 8.2.15)."""
    nor = Nor()
    nor.chip.array[0] = 0
    nor.wren()
    nor.port.exchange(b"\x20\x00\x00")
    assert not nor.chip.busy and nor.read(0, 1) == b"\x00"


def test_erases_are_counted_per_sector():
    """counters.sector_erases and the non-volatile wear count every 4 KiB sector an erase
    touches (issue 2 counters / wear)."""
    nor = Nor()
    nor.erase(0xD8, 0x10000)
    assert nor.chip.counters.sector_erases[16:32] == [1] * 16
    assert nor.chip.counters.sector_erases[15] == 0
    assert list(nor.chip.wear[16:32]) == [1] * 16
    assert nor.chip.counters.ops["block64_erase"] == 1


@pytest.mark.parametrize("opcode", [0x20, 0x52, 0xD8, 0xC7, 0x60])
def test_every_erase_kind_clears_wel_on_completion(opcode):
    """WEL clears when a Sector, Block (32/64 KiB) or Chip Erase completes
    (datasheet 7.1.2, 8.2.15-8.2.18)."""
    nor = Nor()
    nor.wren()
    nor.cmd(opcode, None if opcode in (0xC7, 0x60) else 0x10000)
    assert nor.sr() & 0x03 == 0x03  # BUSY with WEL still set
    nor.wait(poll_s=0.01)
    assert not nor.sr() & 0x02


@pytest.mark.parametrize("opcode", [0xC7, 0x60])
def test_chip_erase_without_wel_is_ignored(opcode):
    """Chip Erase needs WEL=1 like every erase (datasheet 8.2.18)."""
    nor = Nor()
    nor.chip.array[0] = 0
    nor.erase(opcode, wel=False, wait=False)
    assert not nor.chip.busy and nor.read(0, 1) == b"\x00"
