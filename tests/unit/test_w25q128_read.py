"""W25Q128JV reads: 03h and 0Bh (datasheet 8.2.6, 8.2.7); dual/quad reads declined."""

import pytest

from tests.common.nor import Nor

pytestmark = pytest.mark.sim

SIZE = 16 * 1024 * 1024


def test_read_continues_across_page_boundaries():
    """03h auto-increments the address through the whole array (datasheet 8.2.6)."""
    nor = Nor()
    nor.chip.array[0x1F0:0x210] = bytes(range(32))
    assert nor.read(0x1F0, 32) == bytes(range(32))


def test_read_wraps_from_the_end_of_the_array_to_address_zero():
    """When the highest address is reached the counter rolls over to 0 (datasheet 8.2.6)."""
    nor = Nor()
    nor.chip.array[SIZE - 2 :] = b"\x01\x02"
    nor.chip.array[:2] = b"\x03\x04"
    assert nor.read(SIZE - 2, 4) == b"\x01\x02\x03\x04"


def test_fast_read_takes_eight_dummy_clocks_after_the_address():
    """0Bh: address then one dummy byte, then data (datasheet 8.2.7)."""
    nor = Nor()
    nor.chip.array[0x100:0x104] = b"abcd"
    assert nor.cmd(0x0B, 0x100, dummy=1, readlen=4) == b"abcd"


@pytest.mark.parametrize("opcode", [0x3B, 0x6B, 0xBB, 0xEB, 0x92, 0x94])
def test_dual_and_quad_reads_are_ignored_and_miso_reads_ff(opcode):
    """Dual/quad I/O needs more than one data line; the model declines it and leaves MISO
    high-Z, read as FFh (module doc deviation; datasheet 8.2.8-8.2.12)."""
    nor = Nor()
    nor.chip.array[0:8] = bytes(8)
    assert nor.cmd(opcode, 0, dummy=2, readlen=8) == b"\xff" * 8


def test_read_across_split_exchanges_continues_where_it_left_off():
    """/CS held low across transfers keeps clocking the same read (datasheet 8.2.6)."""
    nor = Nor()
    nor.chip.array[0:8] = b"01234567"
    nor.port.exchange(b"\x03\x00\x00\x00", 3, stop=False)
    assert nor.port.exchange(b"", 5, start=False) == b"34567"


def test_reads_are_counted_by_kind():
    """counters.ops["read"] counts each 03h and 0Bh read command (ChipCounters)."""
    nor = Nor()
    nor.read(0, 4)
    nor.cmd(0x0B, 0, dummy=1, readlen=4)
    nor.cmd(0x9F, readlen=3)
    assert nor.chip.counters.ops["read"] == 2
