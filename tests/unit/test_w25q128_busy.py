"""W25Q128JV BUSY, timing modes, suspend/resume, reset and power-down (datasheet 7.1.1,
8.2.20-8.2.23, 8.2.43, 9.6)."""

import pytest

from sim.chip.w25q128 import W25Q128
from tests.common.nor import Nor

pytestmark = pytest.mark.sim


def _start_erase(nor: Nor, addr: int = 0) -> None:
    nor.erase(0x20, addr, wait=False)


@pytest.mark.parametrize("opcode", [0x9F, 0x03, 0x0B, 0x4B, 0x90])
def test_while_busy_reads_and_ids_are_ignored(opcode):
    """While BUSY only 05h/35h/15h and 75h are accepted; other commands are ignored, MISO
    reads FFh (datasheet 7.1.1)."""
    nor = Nor()
    nor.chip.array[0x1000] = 0
    _start_erase(nor)
    assert nor.cmd(opcode, 0x1000 if opcode in (0x03, 0x0B, 0x90) else None, readlen=4) == (
        b"\xff" * 4
    )


def test_while_busy_write_enable_and_erase_are_ignored():
    """A program/erase/06h sent while BUSY is ignored (datasheet 7.1.1)."""
    nor = Nor()
    nor.chip.array[0x2000] = 0
    _start_erase(nor)
    nor.erase(0x20, 0x2000, wait=False)
    nor.wait()
    assert nor.read(0x2000, 1) == b"\x00"
    assert not nor.sr() & 0x02


def test_all_three_status_registers_read_while_busy():
    """05h, 35h and 15h are accepted while BUSY (datasheet 7.1.1, 8.2.4)."""
    nor = Nor()
    _start_erase(nor)
    assert (nor.sr(1) & 1, nor.sr(2), nor.sr(3)) == (1, 0x02, 0x60)


def test_max_timing_mode_uses_the_datasheet_maximum():
    """timing="max": a sector erase lasts tSE max, 400 ms (datasheet 9.6)."""
    nor = Nor(timing="max")
    _start_erase(nor)
    assert 0.4 <= nor.wait(poll_s=1e-3) <= 0.401


def test_random_timing_lies_between_typical_and_max_and_repeats_by_seed():
    """timing="random": seeded draws in [typ, max] (module doc); same seed, same times."""

    def durations(seed):
        nor = Nor(timing="random", seed=seed)
        out = []
        for i in range(5):
            nor.program(i * 256, b"\x00", wait=False)
            out.append(nor.wait(poll_s=1e-6))
        return out

    first = durations(7)
    assert all(0.4e-3 <= d <= 3e-3 + 1e-6 for d in first)
    assert first == durations(7)
    assert first != durations(8)


def test_spi_traffic_advances_the_clock_at_the_sck_frequency():
    """Each byte takes 8 SCK periods: 1 MHz -> 8 µs per byte (SPI mode 0, datasheet 6.1)."""
    nor = Nor()
    nor.port.set_frequency(1e6)
    t0 = nor.clock.monotonic()
    nor.read(0, 96)
    assert nor.clock.monotonic() - t0 == pytest.approx(100 * 8e-6)


def test_suspend_clears_busy_after_tsus_and_sets_sus():
    """75h during an erase: BUSY=0 and SUS=1 within tSUS (20 µs) (datasheet 8.2.20)."""
    nor = Nor()
    _start_erase(nor)
    nor.cmd(0x75)
    nor.clock.sleep(20e-6)
    assert nor.sr(1) & 0x01 == 0
    assert nor.sr(2) & 0x80


def test_reads_work_during_erase_suspend_and_resume_finishes_the_erase():
    """While suspended the array can be read; 7Ah resumes and the erase completes after the
    rest of its time (datasheet 8.2.20, 8.2.21)."""
    nor = Nor()
    nor.chip.array[0x5000] = 0x12
    nor.chip.array[0] = 0
    nor.clock.sleep(0)
    _start_erase(nor)
    nor.clock.sleep(10e-3)
    nor.cmd(0x75)
    nor.clock.sleep(1.0)
    assert nor.read(0x5000, 1) == b"\x12"
    nor.cmd(0x7A)
    assert nor.sr(2) & 0x80 == 0 and nor.sr(1) & 1
    remaining = nor.wait(poll_s=1e-4)
    assert 35e-3 - 1e-4 <= remaining <= 35e-3 + 2e-4
    assert nor.read(0, 1) == b"\xff"


def test_program_is_allowed_in_another_sector_during_erase_suspend():
    """Page Program outside the suspended sector is allowed while an erase is suspended
    (datasheet 8.2.20)."""
    nor = Nor()
    _start_erase(nor)
    nor.cmd(0x75)
    nor.clock.sleep(1e-3)
    nor.program(0x8000, b"\x55")
    assert nor.read(0x8000, 1) == b"\x55"
    assert nor.sr(2) & 0x80


def test_suspend_is_ignored_during_a_status_write():
    """Suspend applies to program and sector/block erase only (datasheet 8.2.20)."""
    nor = Nor()
    nor.wren()
    nor.cmd(0x01, data=b"\x04")
    nor.cmd(0x75)
    nor.clock.sleep(1e-3)
    assert nor.sr(1) & 1 and not nor.sr(2) & 0x80


def test_reset_needs_enable_reset_first_and_clears_volatile_state():
    """66h then 99h reset the device: WEL=0, volatile SR bits reloaded; 99h alone is ignored
    (datasheet 8.2.43)."""
    nor = Nor()
    nor.cmd(0x50)
    nor.cmd(0x01, data=b"\x04")
    nor.wren()
    nor.cmd(0x99)
    assert nor.sr() == 0x06
    nor.cmd(0x66)
    nor.cmd(0x99)
    assert nor.sr() == 0x00


def test_power_down_ignores_commands_until_release():
    """After B9h only ABh is accepted; ABh returns to standby (datasheet 8.2.22, 8.2.23)."""
    nor = Nor()
    nor.cmd(0xB9)
    assert nor.cmd(0x9F, readlen=3) == b"\xff" * 3
    nor.cmd(0xAB)
    assert nor.cmd(0x9F, readlen=3) == b"\xef\x40\x18"


def test_busy_property_follows_the_virtual_clock():
    """chip.busy is SR1 BUSY judged at the clock's current time (datasheet 7.1.1)."""
    chip = W25Q128()
    nor = Nor(chip)
    nor.program(0, b"\x00", wait=False)
    assert chip.busy
    chip.clock.advance(0.4e-3)
    assert not chip.busy


def test_read_status_register_1_while_busy_returns_busy_and_wel():
    """05h is accepted while BUSY and returns SR1 itself (BUSY=1, WEL=1 during an erase),
    not the idle FFh of an ignored command (datasheet 7.1.1, 8.2.4)."""
    nor = Nor()
    _start_erase(nor)
    assert nor.sr(1) == 0x03


def test_while_busy_write_status_is_ignored():
    """A Write Status Register sent while BUSY is ignored (datasheet 7.1.1)."""
    nor = Nor()
    _start_erase(nor)
    nor.cmd(0x50)
    nor.cmd(0x01, data=b"\x04")
    nor.wait()
    assert nor.sr(1) & 0xFC == 0


def test_while_busy_write_disable_is_ignored():
    """04h sent while BUSY is ignored: WEL stays 1 until the operation completes
    (datasheet 7.1.1, 7.1.2)."""
    nor = Nor()
    _start_erase(nor)
    nor.cmd(0x04)
    assert nor.sr(1) & 0x02


def test_while_busy_power_down_is_ignored():
    """B9h sent while BUSY is ignored, so the chip answers 9Fh once idle (datasheet 7.1.1,
    8.2.22)."""
    nor = Nor()
    _start_erase(nor)
    nor.cmd(0xB9)
    nor.clock.sleep(45e-3)  # tSE typ (datasheet 9.6): the erase is over
    assert nor.cmd(0x9F, readlen=3) == b"\xef\x40\x18"


@pytest.mark.parametrize(
    ("opcode", "max_s"),
    [(0x02, 3e-3), (0x52, 1.6), (0xD8, 2.0), (0xC7, 200.0), (0x01, 15e-3)],
)
def test_max_timing_mode_lasts_each_operations_datasheet_maximum(opcode, max_s):
    """timing="max": tPP, tBE1, tBE2, tCE and tW last their maximum (datasheet 9.6)."""
    nor = Nor(timing="max")
    nor.wren()
    if opcode == 0x02:
        nor.cmd(0x02, 0, b"\x00")
    elif opcode == 0x01:
        nor.cmd(0x01, data=b"\x00")
    else:
        nor.cmd(opcode, None if opcode == 0xC7 else 0)
    poll_s = max_s / 4000
    assert max_s <= nor.wait(poll_s=poll_s) <= max_s + 2 * poll_s


def test_random_timing_never_leaves_the_typical_to_max_range():
    """timing="random": every one of 200 draws lies in [tPP typ, tPP max] = [0.4, 3] ms
    (datasheet 9.6; module doc)."""
    nor = Nor(timing="random", seed=3)
    for i in range(200):
        nor.program(i * 256, b"\x00", wait=False)
        assert 0.4e-3 <= nor.wait(poll_s=1e-5) <= 3e-3 + 2e-5


def test_busy_time_counter_sums_the_operations_that_completed():
    """counters.busy_time_s adds each completed operation's time: tPP + tSE (issue 2
    counters; datasheet 9.6)."""
    nor = Nor()
    nor.program(0, b"\x00")
    nor.erase(0x20, 0x1000)
    assert nor.chip.counters.busy_time_s == pytest.approx(0.4e-3 + 45e-3)


def test_suspend_keeps_busy_until_tsus_has_passed():
    """After 75h BUSY stays 1 until the suspend takes effect, tSUS (20 µs) later; the model
    uses the maximum (datasheet 8.2.20, 9.6; module doc)."""
    nor = Nor()
    _start_erase(nor)
    nor.cmd(0x75)
    assert nor.sr(1) & 0x01 and not nor.sr(2) & 0x80


def _suspend_erase(nor: Nor, addr: int = 0) -> None:
    _start_erase(nor, addr)
    nor.clock.sleep(10e-3)
    nor.cmd(0x75)
    nor.clock.sleep(20e-6)


def test_erase_is_ignored_during_erase_suspend():
    """Erase instructions are not allowed while suspended (datasheet 8.2.20)."""
    nor = Nor()
    nor.chip.array[0x8000] = 0
    _suspend_erase(nor)
    nor.erase(0x20, 0x8000, wait=False)
    assert not nor.sr(1) & 0x01 and nor.read(0x8000, 1) == b"\x00"


def test_write_status_is_ignored_during_erase_suspend():
    """Write Status Register is not allowed while suspended (datasheet 8.2.20)."""
    nor = Nor()
    _suspend_erase(nor)
    nor.wren()
    nor.cmd(0x01, data=b"\x04")
    assert nor.sr(1) & 0xFD == 0


def test_program_into_the_erase_suspended_sector_is_ignored():
    """Page Program into the sector whose erase is suspended is refused (datasheet 8.2.20;
    module doc)."""
    nor = Nor()
    _suspend_erase(nor, 0x3000)
    nor.program(0x3000, b"\x00", wait=False)
    assert not nor.sr(1) & 0x01
    nor.cmd(0x7A)
    nor.wait()
    assert nor.read(0x3000, 1) == b"\xff"


@pytest.mark.parametrize("split", [False, True], ids=["one-exchange", "cs-framed"])
def test_reset_is_ignored_when_another_command_comes_between_66h_and_99h(split):
    """Reset needs 99h immediately after 66h; any other instruction in between cancels
    Enable Reset (datasheet 8.2.43), whether each command is one exchange or framed by
    start/stop over several."""
    nor = Nor()
    nor.wren()
    for opcode in (0x66, 0x05, 0x99):
        if split:
            nor.port.exchange(bytes((opcode,)), stop=False)
            nor.port.exchange(b"", start=False)
        else:
            nor.cmd(opcode)
    assert nor.sr() & 0x02


def test_power_down_ignores_read_status_register_too():
    """In power-down even 05h, otherwise always accepted, is ignored: MISO stays high
    (FFh) until ABh releases the chip (datasheet 8.2.22)."""
    nor = Nor()
    nor.cmd(0xB9)
    assert nor.cmd(0x05, readlen=1) == b"\xff"
    nor.cmd(0xAB)
    assert nor.cmd(0x05, readlen=1) == b"\x00"


def _zeroed_sector_erase_interrupted(nor: Nor, *, suspend: bool) -> None:
    nor.chip.array[0:4096] = bytes(4096)
    _start_erase(nor)
    nor.clock.sleep(22.5e-3)  # half of tSE typ, 45 ms (datasheet 9.6)
    if suspend:
        nor.cmd(0x75)
        nor.clock.sleep(20e-6)
    nor.cmd(0x66)
    nor.cmd(0x99)


def test_reset_during_an_erase_ends_it_leaving_the_sector_torn():
    """66h+99h while BUSY is accepted and ends the erase at once, which is left partly done
    as after a power cut (datasheet 8.2.43: data may be corrupted; module doc deviation)."""
    nor = Nor(seed=5)
    _zeroed_sector_erase_interrupted(nor, suspend=False)
    assert not nor.sr() & 0x01
    ones = int.from_bytes(nor.read(0, 4096), "big").bit_count()
    assert 0 < ones < 4096 * 8


def test_reset_during_erase_suspend_clears_sus_leaving_the_sector_torn():
    """66h+99h while an erase is suspended clears SUS and leaves the sector partly erased
    (datasheet 7.1.12, 8.2.43; module doc deviation)."""
    nor = Nor(seed=5)
    _zeroed_sector_erase_interrupted(nor, suspend=True)
    assert not nor.sr(2) & 0x80
    ones = int.from_bytes(nor.read(0, 4096), "big").bit_count()
    assert 0 < ones < 4096 * 8
