"""W25Q128JV status registers and write protection (datasheet 7.1, 8.2.4-8.2.5, 8.2.36-8.2.40)."""

import pytest

from tests.common.nor import Nor

pytestmark = pytest.mark.sim

SIZE = 16 * 1024 * 1024
IM_PART = b"\xef\x70\x18"  # QE programmable, so /WP works as a pin (datasheet 4.3)


def test_status_registers_power_up_with_factory_defaults():
    """SR1 00h; SR2 02h on IQ parts (QE fixed 1); SR3 60h (datasheet 7.1; module doc)."""
    nor = Nor()
    assert (nor.sr(1), nor.sr(2), nor.sr(3)) == (0x00, 0x02, 0x60)


def test_non_volatile_status_write_is_busy_for_tw_then_clears_wel():
    """06h + 01h writes SR1 non-volatile: BUSY for tW (10 ms typ), then WEL=0 (datasheet
    8.2.5, 9.6)."""
    nor = Nor()
    nor.wren()
    nor.cmd(0x01, data=b"\x04")
    assert nor.sr() & 0x03 == 0x03
    assert 10e-3 <= nor.wait(poll_s=1e-5) <= 10e-3 + 2e-5
    assert nor.sr() == 0x04


def test_status_write_without_wel_or_50h_is_ignored():
    """Write Status Register needs WEL or 50h first (datasheet 8.2.5)."""
    nor = Nor()
    nor.cmd(0x01, data=b"\x1c")
    assert nor.sr() == 0x00


def test_volatile_status_write_is_immediate_and_lost_at_power_cycle():
    """50h + 01h writes the volatile copy with no BUSY and no WEL; power-on reloads the
    non-volatile value (datasheet 8.2.2, 7.1)."""
    nor = Nor()
    nor.cmd(0x50)
    nor.cmd(0x01, data=b"\x08")
    assert nor.sr() == 0x08
    nor.chip.power_off()
    nor.chip.power_on()
    assert nor.sr() == 0x00


def test_non_volatile_status_survives_power_cycle():
    """Non-volatile status bits keep their value across power-off (datasheet 7.1)."""
    nor = Nor()
    nor.write_status(0x31, 0x40)
    nor.chip.power_off()
    nor.chip.power_on()
    assert nor.sr(2) & 0x40


def test_write_status_1_with_two_bytes_also_writes_sr2():
    """01h followed by two bytes writes SR1 then SR2 (module doc; datasheet 8.2.5)."""
    nor = Nor()
    nor.write_status(0x01, 0x04, 0x40)
    assert (nor.sr(1), nor.sr(2) & 0x40) == (0x04, 0x40)


def test_busy_wel_and_sus_are_read_only():
    """BUSY, WEL (SR1 bits 0-1) and SUS (SR2 bit 7) cannot be written (datasheet 7.1.1, 7.1.2,
    7.1.12)."""
    nor = Nor()
    nor.write_status(0x01, 0x03)
    nor.write_status(0x31, 0x80)
    assert nor.sr(1) & 0x03 == 0 and nor.sr(2) & 0x80 == 0


def test_qe_is_fixed_to_one_on_iq_parts():
    """W25Q128JV-IQ: QE=1 and cannot be cleared (datasheet 7.1.10)."""
    nor = Nor()
    nor.write_status(0x31, 0x00)
    assert nor.sr(2) & 0x02


def test_security_lock_bits_are_one_time_programmable():
    """LB1-LB3 can be set to 1 but never cleared (datasheet 7.1.9)."""
    nor = Nor()
    nor.write_status(0x31, 0x08)
    nor.write_status(0x31, 0x00)
    assert nor.sr(2) & 0x08


def _protect(nor: Nor, sr1: int, sr2: int | None = None) -> None:
    nor.write_status(0x01, sr1)
    if sr2 is not None:
        nor.write_status(0x31, sr2)


def _erase_takes(nor: Nor, addr: int) -> bool:
    nor.chip.array[addr] = 0
    nor.erase(0x20, addr)
    return nor.read(addr, 1) == b"\xff"


def _program_takes(nor: Nor, addr: int) -> bool:
    nor.chip.array[addr] = 0xFF
    nor.program(addr, b"\x00")
    return nor.read(addr, 1) == b"\x00"


@pytest.mark.parametrize(
    ("sr1", "sr2", "protected", "free"),
    [
        (0x04, None, SIZE - 256 * 1024, SIZE - 256 * 1024 - 4096),  # BP=001: upper 1/64
        (0x18, None, SIZE // 2, SIZE // 2 - 4096),  # BP=110: upper 1/2
        (0x24, None, 256 * 1024 - 4096, 256 * 1024),  # TB=1 BP=001: lower 1/64
        (0x44, None, SIZE - 4096, SIZE - 8192),  # SEC=1 BP=001: upper 4 KiB
        (0x64, None, 0, 4096),  # SEC=1 TB=1 BP=001: lower 4 KiB
        (0x50, None, SIZE - 32768, SIZE - 32768 - 4096),  # SEC=1 BP=100: upper 32 KiB
        (0x1C, None, 0, None),  # BP=111: all
        (0x04, 0x40, 0, SIZE - 4096),  # CMP=1 BP=001: lower 63/64 protected
    ],
)
def test_block_protection_refuses_program_and_erase_in_the_protected_range(
    sr1, sr2, protected, free
):
    """BP2-0/TB/SEC/CMP select the protected range; Page Program and erases inside it are
    ignored, outside it work (datasheet 7.1.3-7.1.6, Status Register Memory Protection table)."""
    nor = Nor()
    _protect(nor, sr1, sr2)
    assert not _erase_takes(nor, protected)
    assert not _program_takes(nor, protected)
    if free is not None:
        assert _erase_takes(nor, free)
        assert _program_takes(nor, free)


def test_chip_erase_is_refused_when_any_block_is_protected():
    """Chip Erase is not executed if any area is protected (datasheet 8.2.18)."""
    nor = Nor()
    _protect(nor, 0x04)
    nor.chip.array[0] = 0
    nor.erase(0xC7)
    assert nor.read(0, 1) == b"\x00"


def test_srp_with_wp_low_locks_the_status_registers():
    """SRP=1 and /WP low: status writes are refused (hardware protection, datasheet 7.1.7);
    with /WP high they are accepted. IM part, because QE=1 turns /WP into IO2."""
    nor = Nor(jedec_id=IM_PART)
    nor.write_status(0x01, 0x80)
    nor.chip.wp = False
    nor.write_status(0x01, 0x84)
    assert nor.sr() & 0xFC == 0x80
    nor.chip.wp = True
    nor.write_status(0x01, 0x84)
    assert nor.sr() == 0x84


def test_wp_pin_gives_no_protection_when_qe_is_set():
    """With QE=1 the /WP pin is IO2 and hardware protection is unavailable (datasheet 4.3)."""
    nor = Nor()
    nor.write_status(0x01, 0x80)
    nor.chip.wp = False
    nor.write_status(0x01, 0x84)
    assert nor.sr() == 0x84


def test_volatile_srl_locks_status_until_power_cycle():
    """SRL=1 (here volatile) locks the status registers until the next power-up
    (datasheet 7.1.8 power supply lock-down)."""
    nor = Nor()
    nor.write_status(0x31, 0x03, volatile=True)
    nor.write_status(0x01, 0x04)
    assert nor.sr() & 0xFC == 0x00
    nor.chip.power_off()
    nor.chip.power_on()
    nor.write_status(0x01, 0x04)
    assert nor.sr() == 0x04


def test_individual_block_locks_protect_when_wps_is_set():
    """WPS=1: every block/sector lock is 1 at power-on; 39h unlocks one 64 KiB block, 3Dh
    reads a lock, 36h locks again (datasheet 7.1.14, 8.2.36-8.2.38)."""
    nor = Nor()
    nor.write_status(0x11, 0x64)
    assert nor.cmd(0x3D, 0x20000, readlen=1) == b"\x01"
    assert not _erase_takes(nor, 0x20000)
    nor.wren()
    nor.cmd(0x39, 0x20000)
    assert nor.cmd(0x3D, 0x2F000, readlen=1) == b"\x00"
    assert _erase_takes(nor, 0x2F000)
    assert not _erase_takes(nor, 0x30000)
    nor.wren()
    nor.cmd(0x36, 0x20000)
    assert not _erase_takes(nor, 0x20000)


def test_global_block_unlock_and_lock():
    """98h clears every lock bit, 7Eh sets them all (datasheet 8.2.39, 8.2.40)."""
    nor = Nor()
    nor.write_status(0x11, 0x64)
    nor.wren()
    nor.cmd(0x98)
    assert _erase_takes(nor, 0x500000)
    nor.wren()
    nor.cmd(0x7E)
    assert not _erase_takes(nor, 0x500000)


def test_top_and_bottom_blocks_lock_per_sector():
    """In the top and bottom 64 KiB blocks the locks are per 4 KiB sector (datasheet 7.1.14)."""
    nor = Nor()
    nor.write_status(0x11, 0x64)
    nor.wren()
    nor.cmd(0x39, 0x1000)
    assert _erase_takes(nor, 0x1000)
    assert not _erase_takes(nor, 0x2000)


def test_reserved_status_bits_stay_zero_when_written():
    """SR2 bit 2 and SR3 bits 0, 1, 3, 4 are reserved (R) and read 0 whatever is written
    (datasheet 7.1, status register figures)."""
    nor = Nor()
    nor.write_status(0x31, 0x06)
    nor.write_status(0x11, 0x1B | 0x60)
    assert (nor.sr(2) & 0x04, nor.sr(3) & 0x1B) == (0, 0)


def test_volatile_status_write_cannot_set_security_lock_bits():
    """LB1-LB3 are one-time programmable non-volatile bits with no volatile copy: 50h + 31h
    leaves them 0 and the security registers writable (datasheet 7.1.9)."""
    nor = Nor()
    nor.write_status(0x31, 0x3A, volatile=True)
    assert nor.sr(2) & 0x38 == 0
    nor.wren()
    nor.cmd(0x42, 0x001000, b"\x00")
    nor.wait()
    assert nor.cmd(0x48, 0x001000, dummy=1, readlen=1) == b"\x00"


def test_sec_with_bp_10x_protects_only_the_top_32_kib():
    """SEC=1, BP2-0 = 10x protects 32 KiB, not 64 KiB (datasheet Status Register Memory
    Protection table, SEC=1 rows)."""
    nor = Nor()
    _protect(nor, 0x54)  # SEC=1 TB=0 BP=101
    assert not _erase_takes(nor, SIZE - 32768)
    assert _erase_takes(nor, SIZE - 32768 - 4096)


def test_cmp_with_bp_000_protects_the_whole_array():
    """CMP=1 inverts the BP=000 "none" row: the whole array is protected (datasheet
    Status Register Memory Protection table, CMP=1)."""
    nor = Nor()
    _protect(nor, 0x00, 0x42)
    assert not _erase_takes(nor, 0)
    assert not _program_takes(nor, SIZE // 2)


def test_cmp_with_bp_111_protects_nothing():
    """CMP=1 inverts the BP=111 "all" row: nothing is protected (datasheet Status Register
    Memory Protection table, CMP=1)."""
    nor = Nor()
    _protect(nor, 0x1C, 0x42)
    assert _erase_takes(nor, 0)
    assert _program_takes(nor, SIZE - 1)


def test_top_block_locks_per_sector():
    """The top 64 KiB block is locked per 4 KiB sector, like the bottom one (datasheet 7.1.14,
    8.2.37)."""
    nor = Nor()
    nor.write_status(0x11, 0x64)
    nor.wren()
    nor.cmd(0x39, SIZE - 4096)
    assert _erase_takes(nor, SIZE - 4096)
    assert not _erase_takes(nor, SIZE - 8192)


def test_block_unlock_without_wel_is_ignored():
    """Individual Block Unlock 39h needs WEL=1 (datasheet 8.2.37); without it the lock stays."""
    nor = Nor()
    nor.write_status(0x11, 0x64)
    nor.cmd(0x39, 0x20000)
    assert nor.cmd(0x3D, 0x20000, readlen=1) == b"\x01"


def test_individual_block_lock_refuses_page_program():
    """WPS=1: Page Program into a locked block is ignored, and works once 39h unlocks it
    (datasheet 7.1.14, 8.2.37)."""
    nor = Nor()
    nor.write_status(0x11, 0x64)
    assert not _program_takes(nor, 0x20000)
    nor.wren()
    nor.cmd(0x39, 0x20000)
    assert _program_takes(nor, 0x20000)
