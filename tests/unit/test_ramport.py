"""RamSpiPort: the bytearray baseline speaks the NOR rules the driver relies on.

Rules from the Winbond W25Q128JV datasheet section 8.2 (instruction descriptions);
the port is no chip model, so timing, protection and power cuts are out of scope.
"""

import pytest

from sim.ports.ram import RamSpiPort, SpiCommand

pytestmark = pytest.mark.sim


def _wren_then(port: RamSpiPort, command: bytes) -> None:
    port.exchange(b"\x06")
    port.exchange(command)


def _program(port: RamSpiPort, address: int, data: bytes) -> None:
    _wren_then(port, b"\x02" + address.to_bytes(3, "big") + data)


def test_jedec_id_answers_the_configured_identity():
    """9Fh returns manufacturer, memory type, capacity (datasheet 8.2.29)."""
    port = RamSpiPort(jedec_id=b"\xef\x70\x18")
    assert port.exchange(b"\x9f", 3) == b"\xef\x70\x18"


def test_program_only_clears_bits():
    """Page Program changes bits from 1 to 0 only (datasheet 8.2.13)."""
    port = RamSpiPort(size=64 * 1024)
    _program(port, 0x10, b"\x0f")
    _program(port, 0x10, b"\xf3")
    assert port.exchange(b"\x03\x00\x00\x10", 1) == b"\x03"


def test_program_wraps_at_the_end_of_its_page():
    """Bytes past the page end wrap to the start of the same page (datasheet 8.2.13)."""
    port = RamSpiPort(size=64 * 1024)
    _program(port, 0x1FE, b"\x01\x02\x03\x04")
    assert port.memory[0x1FE:0x200] == b"\x01\x02"
    assert port.memory[0x100:0x102] == b"\x03\x04"
    assert port.memory[0x200] == 0xFF


def test_program_of_more_than_a_page_keeps_the_last_256_bytes():
    """More than 256 data bytes: only the last 256 are programmed (datasheet 8.2.13)."""
    port = RamSpiPort(size=64 * 1024)
    data = bytes([0xAA] * 10) + bytes(range(256))
    _program(port, 0x100, data)
    # byte i lands at (i % 256): the last 256 start at index 10, i.e. page offset 10.
    assert port.memory[0x100 + 10 : 0x200] == bytes(range(246))
    assert port.memory[0x100 : 0x100 + 10] == bytes(range(246, 256))


def test_program_without_write_enable_is_ignored():
    """Page Program needs WEL=1 (datasheet 8.2.1, 8.2.13)."""
    port = RamSpiPort(size=64 * 1024)
    port.exchange(b"\x02\x00\x00\x00\x00")
    assert port.memory[0] == 0xFF


def test_write_disable_clears_the_latch():
    """04h resets WEL (datasheet 8.2.3), so a following program is ignored."""
    port = RamSpiPort(size=64 * 1024)
    port.exchange(b"\x06")
    port.exchange(b"\x04")
    port.exchange(b"\x02\x00\x00\x00\x00")
    assert port.memory[0] == 0xFF


def test_program_and_erase_clear_the_write_enable_latch():
    """WEL clears when a Page Program or erase completes (datasheet 7.1.2)."""
    port = RamSpiPort(size=64 * 1024)
    _program(port, 0, b"\x00")
    after_program = port.exchange(b"\x05", 1)[0]
    _wren_then(port, b"\x20\x00\x00\x00")
    after_erase = port.exchange(b"\x05", 1)[0]
    assert (after_program & 0x02, after_erase & 0x02) == (0, 0)


def test_write_enable_sets_wel_in_status_register_1():
    """06h sets WEL, SR1 bit 1 (datasheet 7.1.2, 8.2.1)."""
    port = RamSpiPort(size=64 * 1024)
    port.exchange(b"\x06")
    assert port.exchange(b"\x05", 1) == b"\x02"


@pytest.mark.parametrize(("opcode", "unit"), [(0x20, 4096), (0x52, 32 * 1024), (0xD8, 64 * 1024)])
def test_erase_takes_the_address_down_to_its_unit(opcode, unit):
    """Erases set the whole addressed unit to FF, address rounded down (datasheet 8.2.15-17)."""
    port = RamSpiPort(size=128 * 1024)
    port.memory[:] = bytes(len(port.memory))
    _wren_then(port, bytes([opcode]) + (unit + 5).to_bytes(3, "big"))
    assert port.memory[unit : 2 * unit] == b"\xff" * unit
    assert port.memory[unit - 1] == 0 and port.memory[(2 * unit) % len(port.memory)] == 0


def test_chip_erase_sets_every_byte():
    """C7h/60h erase the whole array (datasheet 8.2.18)."""
    port = RamSpiPort(size=64 * 1024)
    port.memory[:] = bytes(len(port.memory))
    _wren_then(port, b"\xc7")
    assert port.memory == b"\xff" * len(port.memory)


def test_read_wraps_from_the_end_of_the_array_to_zero():
    """Reads continue past the last address at address 0 (datasheet 8.2.6)."""
    port = RamSpiPort(size=64 * 1024)
    port.memory[-1], port.memory[0] = 0x11, 0x22
    assert port.exchange(b"\x03\x00\xff\xff", 2) == b"\x11\x22"


def test_fast_read_skips_one_dummy_byte():
    """0Bh takes 8 dummy clocks after the address (datasheet 8.2.7)."""
    port = RamSpiPort(size=64 * 1024)
    port.memory[0x40:0x42] = b"\x12\x34"
    assert port.exchange(b"\x0b\x00\x00\x40\x00", 2) == b"\x12\x34"


def test_a_read_split_over_exchanges_continues_where_it_stopped():
    """/CS held low (stop=False then start=False) continues one read (pyftdi SpiPort)."""
    port = RamSpiPort(size=64 * 1024)
    port.memory[0:4] = b"abcd"
    first = port.exchange(b"\x03\x00\x00\x00", 2, stop=False)
    rest = port.exchange(b"", 2, start=False)
    assert first + rest == b"abcd"


def test_a_program_split_over_exchanges_runs_when_cs_rises():
    """The program starts when /CS goes high, with all bytes sent (datasheet 8.2.13)."""
    port = RamSpiPort(size=64 * 1024)
    port.exchange(b"\x06")
    port.write(b"\x02\x00\x00\x00", stop=False)
    port.write(b"\x5a", start=False, stop=False)
    assert port.memory[0] == 0xFF
    port.write(b"\xa5", start=False)
    assert port.memory[0:2] == b"\x5a\xa5"


def test_sfdp_reports_the_density_of_the_array():
    """SFDP signature and basic table 2nd DWORD = density in bits - 1 (JESD216 6.4.5)."""
    port = RamSpiPort(size=128 * 1024)
    header = port.exchange(b"\x5a\x00\x00\x00\x00", 16)
    pointer = int.from_bytes(header[12:15], "little")
    dword2 = port.exchange(b"\x5a" + (pointer + 4).to_bytes(3, "big") + b"\x00", 4)
    assert header[:4] == b"SFDP"
    assert int.from_bytes(dword2, "little") + 1 == 128 * 1024 * 8


def test_unique_id_follows_four_dummy_bytes():
    """4Bh: four dummy bytes, then the 64-bit unique ID (datasheet 8.2.27)."""
    port = RamSpiPort(size=64 * 1024, unique_id=b"12345678")
    assert port.exchange(b"\x4b\x00\x00\x00\x00", 8) == b"12345678"


def test_unknown_commands_read_as_pulled_up_miso():
    """An instruction the port does not know answers 0xFF, as an idle pulled-up MISO."""
    port = RamSpiPort(size=64 * 1024)
    assert port.exchange(b"\x90\x00\x00\x00", 2) == b"\xff\xff"


def test_log_records_each_cs_framed_command():
    """With log=True every transaction is recorded as opcode, address, data length."""
    port = RamSpiPort(size=64 * 1024, log=True)
    _program(port, 0x123, b"xyz")
    port.exchange(b"\x03\x00\x01\x00", 7)
    assert port.log == [
        SpiCommand(0x06, None, 0),
        SpiCommand(0x02, 0x123, 3),
        SpiCommand(0x03, 0x100, 7),
    ]


def test_frequency_can_be_set():
    """``frequency``/``set_frequency`` as pyftdi's SpiPort."""
    port = RamSpiPort(size=64 * 1024, frequency=8e6)
    port.set_frequency(60e6)
    assert port.frequency == 60e6


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"size": 1000}, "size"),
        ({"size": 32 * 1024 * 1024}, "size"),
        ({"jedec_id": b"\xef\x40"}, "jedec_id"),
        ({"unique_id": b"short"}, "unique_id"),
    ],
)
def test_bad_construction_names_the_field(kwargs, field):
    """Bad input gets a clear error naming what was wrong (house rules)."""
    with pytest.raises(ValueError, match=field):
        RamSpiPort(**kwargs)


def test_duplex_transfers_are_refused_clearly():
    """Only half-duplex is implemented; duplex says so instead of answering wrongly."""
    with pytest.raises(NotImplementedError, match="half-duplex"):
        RamSpiPort(size=64 * 1024).exchange(b"\x9f\x00", duplex=True)
