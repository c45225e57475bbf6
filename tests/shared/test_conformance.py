"""W25Q128JV conformance through the SPI port only: the same tests on the model and on a rig.

Every rule cites the Winbond W25Q128JV datasheet (Rev H+). No simulator internals:
only instructions sent through ``flash_port`` and waits on ``flash_clock``.
"""

import pytest

from agent.w25q128jv import SR1, SR2
from hil.raw import T_PP_S, T_SE_S, RawNor

BUSY, WEL, SR2_SUS = SR1.BUSY, SR1.WEL, SR2.SUS

pytestmark = []  # the sim/hil marker comes with each flash_port param


@pytest.fixture
def nor(flash_port, flash_clock) -> RawNor:
    return RawNor(flash_port, flash_clock)


@pytest.fixture
def erased(nor, flash_scratch):
    """The first scratch sector, erased; returns its address."""
    nor.erase(flash_scratch.base)
    nor.wait_idle(T_SE_S)
    return flash_scratch.base


def test_jedec_id_is_winbond_w25q128jv(nor):
    """8.2.29 (9Fh): EF, then 40 18 (IQ/JQ) or 70 18 (IM/JM)."""
    assert nor.jedec_id() in (b"\xef\x40\x18", b"\xef\x70\x18")


def test_manufacturer_device_id_is_ef_17(nor):
    """8.2.27 (90h with address 000000h): manufacturer EF, device 17."""
    assert nor.manufacturer_device_id() == b"\xef\x17"


def test_release_power_down_returns_device_id_17(nor):
    """8.2.26 (ABh + 3 dummy bytes): the device ID 17h."""
    assert nor.release_power_down_id() == 0x17


def test_sfdp_header_has_signature(nor):
    """8.2.32 (5Ah) and JESD216 6.2.1: the SFDP header starts with 'SFDP'."""
    assert nor.sfdp(0, 4) == b"SFDP"


def test_unique_id_is_stable_across_reads(nor):
    """8.2.30 (4Bh): a factory-set 64-bit ID, the same on every read."""
    first = nor.unique_id()
    assert len(first) == 8 and nor.unique_id() == first


def test_erase_sets_every_byte_of_the_sector_to_ff(nor, flash_scratch):
    """8.2.17 (20h): sector erase sets all bits of the 4 KiB sector to 1."""
    nor.program(flash_scratch.base + 100, b"\x00" * 16)
    nor.wait_idle(T_PP_S)
    nor.erase(flash_scratch.base + 123)  # any address inside the sector
    nor.wait_idle(T_SE_S)
    assert nor.read(flash_scratch.base, 4096) == b"\xff" * 4096


def test_program_then_read_returns_the_data(nor, erased):
    """8.2.13 (02h) and 8.2.6 (03h)."""
    nor.program(erased + 16, b"conformance")
    nor.wait_idle(T_PP_S)
    assert nor.read(erased + 16, 11) == b"conformance"


def test_program_only_clears_bits(nor, erased):
    """8.2.13: programming turns 1s to 0s only, so a second program ANDs."""
    nor.program(erased, b"\xf0\x0f")
    nor.wait_idle(T_PP_S)
    nor.program(erased, b"\x3c\x3c")
    nor.wait_idle(T_PP_S)
    assert nor.read(erased, 2) == b"\x30\x0c"


def test_page_program_wraps_at_page_end(nor, erased):
    """8.2.13: bytes past the end of the 256-byte page wrap to its start."""
    nor.program(erased + 250, bytes(range(1, 17)))
    nor.wait_idle(T_PP_S)
    assert nor.read(erased + 250, 6) == bytes(range(1, 7))
    assert nor.read(erased, 10) == bytes(range(7, 17))
    assert nor.read(erased + 256, 1) == b"\xff"


def test_program_without_write_enable_is_ignored(nor, erased):
    """8.2.1/8.2.13: Page Program needs WEL=1, else the chip ignores it."""
    nor.wrdi()
    nor.program(erased, b"\x00\x00", wren=False)
    nor.wait_idle(T_PP_S)
    assert nor.read(erased, 2) == b"\xff\xff"


def test_write_enable_sets_wel_and_write_disable_clears_it(nor):
    """8.2.1 (06h) sets WEL; 8.2.3 (04h) clears it (SR1 bit 1, 7.1.2)."""
    nor.wren()
    after_wren = nor.sr(1) & WEL
    nor.wrdi()
    assert (after_wren, nor.sr(1) & WEL) == (WEL, 0)


def test_page_program_clears_wel_when_done(nor, erased):
    """7.1.2: WEL returns to 0 when Page Program completes."""
    nor.program(erased, b"\x55")
    nor.wait_idle(T_PP_S)
    assert nor.sr(1) & WEL == 0


def test_erase_is_busy_then_clears_busy_and_wel(nor, flash_scratch):
    """7.1.1/7.1.2: BUSY=1 (and WEL=1) while erasing; both 0 within tSE max (9.6)."""
    nor.erase(flash_scratch.base)
    during = nor.sr(1)
    waited, polls = nor.wait_idle(T_SE_S)
    assert during & (BUSY | WEL) == BUSY | WEL
    assert nor.sr(1) & (BUSY | WEL) == 0
    assert polls > 1 and waited <= T_SE_S


def test_read_while_busy_is_ignored(nor, erased):
    """8.1/7.1.1: while BUSY only status reads and suspend are accepted; a program is lost."""
    nor.erase(erased + 4096)
    nor.program(erased, b"\x00", wren=True)  # while the erase runs
    nor.wait_idle(T_SE_S)
    assert nor.read(erased, 1) == b"\xff"


def test_volatile_status_write_needs_no_wel_and_is_not_busy(nor):
    """8.2.2 (50h) + 8.2.5: a volatile SR1 write takes effect at once, without BUSY or WEL."""
    original = nor.sr(1)
    try:
        nor.write_sr(1, original | 0x04, volatile=True)  # BP0
        value = nor.sr(1)
    finally:
        nor.write_sr(1, original, volatile=True)
    assert value & 0x05 == 0x04
    assert nor.sr(1) == original


def test_erase_suspend_sets_sus_and_resume_completes(nor, flash_scratch):
    """8.2.20 (75h): SUS=1, BUSY=0 within tSUS; 8.2.21 (7Ah): the erase then completes."""
    base = flash_scratch.base
    nor.program(base, b"\x00" * 8)
    nor.wait_idle(T_PP_S)
    nor.erase(base)
    nor.clock.sleep(1e-3)
    nor.suspend()
    nor.clock.sleep(50e-6)  # tSUS max 20 us (9.6)
    suspended = (nor.sr(1) & BUSY, nor.sr(2) & SR2_SUS)
    other = nor.read(base + 4096, 4)  # reads of other sectors are allowed
    nor.resume()
    nor.wait_idle(T_SE_S)
    assert suspended == (0, SR2_SUS)
    assert len(other) == 4
    assert nor.sr(2) & SR2_SUS == 0
    assert nor.read(base, 8) == b"\xff" * 8


def test_security_register_erase_program_read(nor):
    """8.2.33-8.2.35 (44h, 42h, 48h): register 3 at 0x003000 erases to FF and programs."""
    lb3 = nor.sr(2) & 0x20
    if lb3:
        pytest.skip("security register 3 is locked (SR2 LB3=1)")
    saved = nor.security_read(3, 0, 256)
    try:
        nor.security_erase(3)
        nor.wait_idle(T_SE_S)
        erased = nor.security_read(3, 0, 256)
        nor.security_program(3, 0, b"OTA-HIL")
        nor.wait_idle(T_PP_S)
        programmed = nor.security_read(3, 0, 7)
    finally:
        nor.security_erase(3)
        nor.wait_idle(T_SE_S)
        if saved != b"\xff" * 256:
            nor.security_program(3, 0, saved)
            nor.wait_idle(T_PP_S)
    assert erased == b"\xff" * 256
    assert programmed == b"OTA-HIL"
