"""W25Q128JV security registers 44h/42h/48h and their lock bits (datasheet 8.2.33-8.2.35)."""

import pytest

from tests.common.nor import Nor

pytestmark = pytest.mark.sim

REG1, REG2 = 0x001000, 0x002000


def _program(nor: Nor, addr: int, data: bytes) -> None:
    nor.wren()
    nor.cmd(0x42, addr, data)
    nor.wait()


def _read(nor: Nor, addr: int, n: int) -> bytes:
    return nor.cmd(0x48, addr, dummy=1, readlen=n)


def test_security_register_program_and_read_back():
    """42h programs and 48h (with 8 dummy clocks) reads a security register (8.2.34, 8.2.35)."""
    nor = Nor()
    _program(nor, REG1 + 0x10, b"key!")
    assert _read(nor, REG1 + 0x10, 4) == b"key!"
    assert _read(nor, REG2 + 0x10, 4) == b"\xff" * 4


def test_security_register_erase_sets_ff_and_clears_wel():
    """44h erases one 256-byte register in tSE and clears WEL (datasheet 8.2.33)."""
    nor = Nor()
    _program(nor, REG2, b"\x00" * 256)
    nor.wren()
    nor.cmd(0x44, REG2)
    assert nor.wait(poll_s=1e-4) >= 45e-3
    assert _read(nor, REG2, 256) == b"\xff" * 256
    assert not nor.sr() & 0x02


def test_security_register_program_wraps_within_its_256_bytes():
    """Like Page Program, data past byte FFh wraps to byte 00h (datasheet 8.2.34)."""
    nor = Nor()
    _program(nor, REG1 + 0xFF, b"\x01\x02")
    assert _read(nor, REG1 + 0xFF, 2) == b"\x01\x02"
    assert _read(nor, REG1, 1) == b"\x02"


def test_lock_bit_makes_a_security_register_read_only():
    """LB1=1 refuses program and erase of register 1 for ever (datasheet 7.1.9, 8.2.33)."""
    nor = Nor()
    _program(nor, REG1, b"\x0f")
    nor.write_status(0x31, 0x08)
    _program(nor, REG1, b"\x00")
    nor.wren()
    nor.cmd(0x44, REG1)
    nor.wait()
    assert _read(nor, REG1, 1) == b"\x0f"
    _program(nor, REG2, b"\x00")
    assert _read(nor, REG2, 1) == b"\x00"


def test_security_registers_survive_power_cycle_but_not_in_the_array():
    """Security registers are non-volatile and separate from the main array (8.2.34)."""
    nor = Nor()
    _program(nor, REG1, b"\xa5")
    nor.chip.power_off()
    nor.chip.power_on()
    assert _read(nor, REG1, 1) == b"\xa5"
    assert nor.read(REG1, 1) == b"\xff"


def test_security_register_program_clears_wel_on_completion():
    """WEL clears when a security-register program completes (datasheet 7.1.2, 8.2.34)."""
    nor = Nor()
    _program(nor, REG1, b"\x00")
    assert not nor.sr() & 0x02


def test_security_register_program_without_wel_is_ignored():
    """42h needs WEL=1 (datasheet 8.2.34)."""
    nor = Nor()
    nor.cmd(0x42, REG1, b"\x00")
    assert not nor.chip.busy and _read(nor, REG1, 1) == b"\xff"


def test_security_register_erase_without_wel_is_ignored():
    """44h needs WEL=1 (datasheet 8.2.33)."""
    nor = Nor()
    _program(nor, REG1, b"\x00")
    nor.cmd(0x44, REG1)
    assert not nor.chip.busy and _read(nor, REG1, 1) == b"\x00"


@pytest.mark.parametrize("addr", [0x000010, 0x001110, 0x004010])
def test_only_addresses_1000h_2000h_3000h_select_a_security_register(addr):
    """Security registers sit at 001000h/002000h/003000h with A11-A8 = 0 (datasheet
    8.2.33-8.2.35); other addresses program nothing and read FFh (module doc)."""
    nor = Nor()
    _program(nor, addr, b"\x00")
    assert _read(nor, addr, 1) == b"\xff"
    assert all(_read(nor, reg, 256) == b"\xff" * 256 for reg in (REG1, REG2, 0x003000))


def test_security_register_program_only_clears_bits():
    """42h, like Page Program, only takes bits 1 -> 0: a second program ANDs (datasheet
    8.2.34)."""
    nor = Nor()
    _program(nor, REG1, b"\xf0")
    _program(nor, REG1, b"\x3c")
    assert _read(nor, REG1, 1) == b"\x30"
