"""W25Q128JV write enable latch and Page Program 02h (datasheet 7.1.2, 8.2.1-8.2.3, 8.2.13)."""

import random

import pytest

from tests.common.nor import Nor

pytestmark = pytest.mark.sim

WEL = 0x02


def test_write_enable_sets_wel_and_write_disable_clears_it():
    """06h sets WEL, 04h clears it (datasheet 8.2.1, 8.2.3)."""
    nor = Nor()
    nor.wren()
    assert nor.sr() & WEL
    nor.cmd(0x04)
    assert not nor.sr() & WEL


def test_page_program_without_wel_is_ignored():
    """Page Program needs WEL=1; otherwise nothing is written and BUSY never sets
    (datasheet 8.2.13)."""
    nor = Nor()
    nor.program(0, b"\x00" * 4, wel=False, wait=False)
    assert not nor.chip.busy
    assert nor.read(0, 4) == b"\xff" * 4


def test_wel_stays_set_while_busy_and_clears_when_program_completes():
    """WEL clears on completion of Page Program (datasheet 7.1.2): SR1 reads 03h while BUSY."""
    nor = Nor()
    nor.program(0, b"\x00", wait=False)
    assert nor.sr() & 0x03 == 0x03
    nor.wait()
    assert nor.sr() & 0x03 == 0


def test_program_only_clears_bits_it_ands_data_into_the_array():
    """Programming changes bits 1 -> 0 only; a second program ANDs (datasheet 8.2.13, 6.1)."""
    nor = Nor()
    nor.program(0, b"\xf0\x0f")
    nor.program(0, b"\x3c\xff")
    assert nor.read(0, 2) == b"\x30\x0f"


def test_program_past_the_page_end_wraps_to_the_page_start():
    """Bytes past the end of the 256-byte page wrap to its beginning (datasheet 8.2.13)."""
    nor = Nor()
    nor.program(0x1FE, b"\x01\x02\x03\x04")
    assert nor.read(0x1FE, 2) == b"\x01\x02"
    assert nor.read(0x100, 2) == b"\x03\x04"
    assert nor.read(0x200, 2) == b"\xff\xff"


def test_program_of_more_than_256_bytes_keeps_the_last_256():
    """When more than 256 bytes are sent only the last 256 are programmed, at the positions
    they wrapped to (datasheet 8.2.13)."""
    nor = Nor()
    data = bytes(range(256)) + b"\x00\x01\x02\x03"
    nor.program(0x300, data)
    expected = bytearray(range(256))
    expected[0:4] = b"\x00\x01\x02\x03"
    assert nor.read(0x300, 256) == bytes(expected)


def test_program_starts_only_when_cs_rises():
    """The internal program starts after /CS goes high (datasheet 8.2.13): with /CS still low
    nothing is written and the chip is not BUSY."""
    nor = Nor()
    nor.wren()
    nor.port.exchange(b"\x02\x00\x00\x00\x00", stop=False)
    assert not nor.chip.busy and nor.chip.array[0] == 0xFF
    nor.port.exchange(b"", start=False)
    assert nor.chip.busy
    nor.wait()
    assert nor.read(0, 1) == b"\x00"


def test_program_with_no_data_byte_is_not_started():
    """A Page Program needs at least one data byte; without one /CS rise starts nothing and
    WEL stays set (datasheet 8.2.13)."""
    nor = Nor()
    nor.wren()
    nor.cmd(0x02, 0)
    assert not nor.chip.busy
    assert nor.sr() & WEL


def test_page_program_lasts_tpp():
    """tPP typical 0.4 ms (datasheet 9.6): BUSY clears between 0.4 ms and 0.4 ms + one poll."""
    nor = Nor()
    nor.wren()
    nor.cmd(0x02, 0, b"\x00")
    assert 0.4e-3 <= nor.wait(poll_s=1e-6) <= 0.4e-3 + 2e-6


def test_program_counts_bytes_and_operations():
    """counters: operations by kind and bytes programmed (issue 2 counters)."""
    nor = Nor()
    nor.program(0, b"\x00" * 10)
    nor.program(0x100, b"\x00" * 300)
    assert nor.chip.counters.ops["page_program"] == 2
    assert nor.chip.counters.bytes_programmed == 10 + 256


@pytest.mark.parametrize("chunk", [None, 100], ids=["one-exchange", "cs-framed"])
def test_program_of_many_pages_of_data_keeps_the_last_256_where_they_wrapped(chunk):
    """However many bytes are clocked in (here 1,300 from page offset 10h), only the last
    256 are programmed, each at the page offset it wrapped to (datasheet 8.2.13)."""
    nor = Nor()
    data = random.Random(13).randbytes(1300)
    if chunk is None:
        nor.program(0x400 + 0x10, data)
    else:  # clocked in over many exchanges while /CS stays low
        nor.wren()
        nor.port.exchange(b"\x02\x00\x04\x10", stop=False)
        for i in range(0, len(data), chunk):
            nor.port.exchange(data[i : i + chunk], start=False, stop=False)
        nor.port.exchange(b"", start=False)
        nor.wait()
    expected = bytearray(256)
    for i in range(len(data) - 256, len(data)):
        expected[(0x10 + i) % 256] = data[i]
    assert nor.read(0x400, 256) == bytes(expected)
