"""Power cuts on the W25Q128JV model: torn operations, PowerLoss, volatile reset (issue 2
section 2 "Power"; datasheet 7.1 power-on state, 8.2.13/8.2.15 "undefined if power is lost")."""

import pytest

from agent.errors import PowerLoss
from sim.chip.w25q128 import W25Q128, ChipCut
from tests.common.nor import Nor

pytestmark = pytest.mark.sim

PAGE_BITS = 256 * 8


def _ones(data: bytes) -> int:
    return int.from_bytes(data, "big").bit_count()


def _torn_program(seed: int, fraction: float) -> tuple[bytes, bytes, bytes]:
    """(before, intended, after) of a page program cut at ``fraction``."""
    nor = Nor(seed=seed)
    before = bytes((0xF0 | i % 16) for i in range(256))
    intended = bytes((i * 37) & 0xFF for i in range(256))
    nor.chip.array[0:256] = before
    nor.chip.schedule_cut(after_ops=1, fraction=fraction)
    nor.wren()
    nor.cmd(0x02, 0, intended)
    with pytest.raises(PowerLoss):
        nor.wait()
    nor.chip.power_on()
    return before, intended, nor.read(0, 256)


def test_every_exchange_raises_powerloss_until_power_returns():
    """After power_off each exchange raises PowerLoss; power_on restores service."""
    nor = Nor()
    nor.chip.power_off()
    for _ in range(3):
        with pytest.raises(PowerLoss):
            nor.cmd(0x9F, readlen=3)
    nor.chip.power_on()
    assert nor.cmd(0x9F, readlen=3) == b"\xef\x40\x18"


def test_power_on_resets_wel_volatile_status_and_power_down():
    """At power-on WEL=0, volatile SR bits reload from non-volatile, not in power-down
    (datasheet 7.1, 8.2.22)."""
    nor = Nor()
    nor.cmd(0x50)
    nor.cmd(0x01, data=b"\x08")
    nor.wren()
    nor.cmd(0xB9)
    nor.chip.power_off()
    nor.chip.power_on()
    assert nor.sr() == 0x00
    assert nor.cmd(0x9F, readlen=3) == b"\xef\x40\x18"


def test_power_on_clears_sus_and_forgets_the_suspended_erase():
    """Power lost while suspended clears SUS (datasheet 7.1.12); the unit is left torn."""
    nor = Nor()
    nor.chip.array[0:4096] = bytes(4096)
    nor.erase(0x20, 0, wait=False)
    nor.clock.sleep(22.5e-3)
    nor.cmd(0x75)
    nor.clock.sleep(1e-3)
    assert nor.sr(2) & 0x80
    nor.chip.power_off()
    nor.chip.power_on()
    assert not nor.sr(2) & 0x80
    ones = _ones(nor.read(0, 4096))
    assert 0 < ones < 4096 * 8


def test_torn_program_clears_only_a_subset_of_the_intended_bits():
    """A cut inside Page Program clears some of the bits the program would clear, and no
    other bit changes (module doc distribution)."""
    before, intended, after = _torn_program(seed=3, fraction=0.5)
    b, w, a = (int.from_bytes(x, "big") for x in (before, intended, after))
    assert a & (b & w) == b & w  # bits that stay 1 in the intended result are untouched
    assert a & ~b == 0  # no bit went 0 -> 1; only intended bits may have cleared
    assert a != b and a != b & w  # torn: neither untouched nor complete


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_torn_program_clears_about_the_fraction_of_intended_bits(fraction):
    """The share of intended 1->0 bits cleared follows the fraction through the operation
    (module doc: each independently with probability f)."""
    before, intended, after = _torn_program(seed=11, fraction=fraction)
    b, w, a = (int.from_bytes(x, "big") for x in (before, intended, after))
    intended_bits = (b & ~w).bit_count()
    cleared = (b & ~a).bit_count()
    assert abs(cleared / intended_bits - fraction) < 0.1


def test_cut_at_fraction_zero_leaves_the_page_and_one_completes_it():
    """fraction 0: cut as the op starts (nothing written); 1: just after it completes."""
    before, _, after0 = _torn_program(seed=1, fraction=0.0)
    assert after0 == before
    nor = Nor()
    nor.chip.schedule_cut(after_ops=1, fraction=1.0)
    nor.wren()
    nor.cmd(0x02, 0, b"\x00\x01")
    with pytest.raises(PowerLoss):
        nor.wait()
    nor.chip.power_on()
    assert nor.read(0, 2) == b"\x00\x01"


def test_torn_program_is_reproducible_by_seed():
    """Same seed, same torn bits; another seed, other bits (every random choice is seeded)."""
    assert _torn_program(5, 0.5)[2] == _torn_program(5, 0.5)[2]
    assert _torn_program(5, 0.5)[2] != _torn_program(6, 0.5)[2]


def test_torn_erase_sets_a_share_of_the_zero_bits_only():
    """A cut inside an erase leaves the unit partly erased: each 0 bit set with probability f,
    bits already 1 stay 1, other sectors untouched (module doc distribution)."""
    nor = Nor(seed=2)
    nor.chip.array[0:8192] = bytes(8192)
    nor.chip.array[0:16] = b"\xff" * 16
    nor.chip.schedule_cut(after_ops=1, fraction=0.3)
    nor.erase(0x20, 0, wait=False)
    with pytest.raises(PowerLoss):
        nor.wait()
    nor.chip.power_on()
    sector = nor.read(0, 4096)
    assert sector[:16] == b"\xff" * 16
    share = _ones(sector[16:]) / ((4096 - 16) * 8)
    assert 0.25 < share < 0.35
    assert nor.read(4096, 4096) == bytes(4096)


def test_cut_at_a_virtual_time_tears_the_op_at_that_fraction():
    """at_time inside an erase tears it at (t - start) / duration (issue 2 cut schedules)."""
    nor = Nor(seed=4)
    nor.chip.array[0:4096] = bytes(4096)
    nor.wren()
    start = nor.clock.monotonic() + 4 * 8 / nor.port.frequency  # end of the 20h transfer
    nor.chip.schedule_cut(at_time=start + 0.75 * 45e-3)
    nor.cmd(0x20, 0)
    with pytest.raises(PowerLoss):
        nor.wait(poll_s=1e-3)
    assert nor.clock.monotonic() >= start + 0.75 * 45e-3
    nor.chip.power_on()
    share = _ones(nor.read(0, 4096)) / (4096 * 8)
    assert 0.7 < share < 0.8


def test_after_ops_counts_state_changing_operations_from_scheduling():
    """after_ops=N cuts during the Nth program/erase/status write latched after scheduling;
    reads and ignored commands do not count (ChipCut)."""
    nor = Nor()
    nor.program(0, b"\x00")
    nor.chip.schedule_cut(ChipCut(after_ops=2, fraction=0.0))
    nor.read(0, 16)
    nor.program(0x100, b"\x00", wel=False)
    nor.program(0x200, b"\x00")
    nor.wren()
    nor.cmd(0x02, 0x300, b"\x00")
    with pytest.raises(PowerLoss):
        nor.wait()
    nor.chip.power_on()
    assert nor.read(0x100, 1) + nor.read(0x200, 1) + nor.read(0x300, 1) == b"\xff\x00\xff"


@pytest.mark.parametrize(("fraction", "expected"), [(0.0, 0x00), (1.0, 0x1C)])
def test_torn_status_write_keeps_old_or_new_value(fraction, expected):
    """A cut during a non-volatile status write leaves the old or the new value (module doc:
    new with probability f)."""
    nor = Nor()
    nor.chip.schedule_cut(after_ops=1, fraction=fraction)
    nor.wren()
    nor.cmd(0x01, data=b"\x1c")
    with pytest.raises(PowerLoss):
        nor.wait()
    nor.chip.power_on()
    assert nor.sr() == expected


def test_torn_status_write_gives_both_outcomes_across_seeds():
    """At f=0.5 some seeds keep the old value and some the new, never anything else."""
    seen = set()
    for seed in range(20):
        nor = Nor(seed=seed)
        nor.chip.schedule_cut(after_ops=1, fraction=0.5)
        nor.wren()
        nor.cmd(0x01, data=b"\x1c")
        with pytest.raises(PowerLoss):
            nor.wait()
        nor.chip.power_on()
        seen.add(nor.sr())
    assert seen == {0x00, 0x1C}


def test_power_cut_plan_validates_its_fields():
    """Bad plans are refused with the field named (house rule: validated on construction)."""
    with pytest.raises(ValueError, match="exactly one"):
        ChipCut()
    with pytest.raises(ValueError, match="after_ops"):
        ChipCut(after_ops=0)
    with pytest.raises(ValueError, match="fraction"):
        ChipCut(after_ops=1, fraction=1.5)
    with pytest.raises(ValueError, match="at_time"):
        ChipCut(at_time=float("nan"))


def test_power_cuts_are_counted():
    """counters.power_cuts counts losses of power while powered."""
    nor = Nor()
    nor.chip.power_off()
    nor.chip.power_off()
    assert nor.chip.counters.power_cuts == 1
    assert not nor.chip.powered


def test_busy_time_counter_includes_the_torn_part_of_a_cut_operation():
    """A sector erase cut halfway adds half of tSE to counters.busy_time_s (issue 2 counters)."""
    nor = Nor()
    nor.chip.schedule_cut(after_ops=1, fraction=0.5)
    nor.erase(0x20, 0, wait=False)
    with pytest.raises(PowerLoss):
        nor.wait()
    assert nor.chip.counters.busy_time_s == pytest.approx(0.5 * 45e-3)


def test_torn_security_register_program_clears_a_subset_of_the_intended_bits():
    """A cut inside 42h leaves some, not all, of the intended 1 -> 0 bits cleared
    (module doc distribution, as for Page Program)."""
    nor = Nor(seed=1)
    nor.chip.schedule_cut(after_ops=1, fraction=0.5)
    nor.wren()
    nor.cmd(0x42, 0x001000, bytes(256))
    with pytest.raises(PowerLoss):
        nor.wait()
    nor.chip.power_on()
    zeros = 256 * 8 - _ones(nor.cmd(0x48, 0x001000, dummy=1, readlen=256))
    assert 0 < zeros < 256 * 8


def test_select_raises_powerloss_while_unpowered():
    """/CS low on an unpowered chip raises PowerLoss, as a whole exchange does
    (agent.errors.PowerLoss; issue 2 "Power")."""
    chip = W25Q128()
    chip.power_off()
    with pytest.raises(PowerLoss):
        chip.select()


def test_transfer_raises_powerloss_when_a_cut_lands_inside_a_transaction():
    """A cut scheduled while /CS is low makes the next transfer() raise PowerLoss (issue 2
    "Power": the agent sees power loss on its next SPI access)."""
    chip = W25Q128()
    chip.schedule_cut(at_time=1e-3)
    chip.select()
    assert chip.transfer(b"\x9f\x00") == b"\xff\xef"
    chip.clock.advance(2e-3)
    with pytest.raises(PowerLoss):
        chip.transfer(b"\x00")


def test_power_on_forgets_a_pending_volatile_write_enable():
    """50h does not survive a power cycle: a status write after power-on without 06h is
    ignored (datasheet 7.1, 8.2.3: 50h enables only the next status write)."""
    nor = Nor()
    nor.cmd(0x50)
    nor.chip.power_off()
    nor.chip.power_on()
    nor.cmd(0x01, data=b"\x1c")
    assert nor.sr() == 0x00


def test_cut_at_a_virtual_time_lands_exactly_then():
    """at_time=T: the chip is powered until T and unpowered from T on (ChipCut)."""
    nor = Nor()
    nor.chip.schedule_cut(at_time=1.0)
    nor.clock.advance(1.0 - 1e-6 - 4 * 8 / nor.port.frequency)
    assert nor.cmd(0x9F, readlen=3) == b"\xef\x40\x18"
    nor.clock.advance_to(1.0)
    assert not nor.chip.powered


def test_state_changes_counts_the_operations_after_ops_counts():
    """counters.state_changes counts program, erase, non-volatile status write and security
    program/erase; not reads, volatile status writes or ignored commands (ChipCut,
    ChipCounters)."""
    nor = Nor()
    nor.program(0, b"\x00")
    nor.erase(0x20, 0x1000)
    nor.write_status(0x31, 0x00)
    nor.write_status(0x01, 0x00, volatile=True)
    nor.wren()
    nor.cmd(0x42, 0x001000, b"\x00")
    nor.wait()
    nor.erase(0x44, 0x001000)
    nor.read(0, 16)
    nor.program(0x100, b"\x00", wel=False)
    assert nor.chip.counters.state_changes == 5


def test_scheduling_a_cut_restarts_the_operation_count():
    """A new plan replaces the armed one and counts after_ops from its own scheduling, not
    from the replaced plan's (ChipCut, schedule_cut)."""
    nor = Nor()
    nor.chip.schedule_cut(after_ops=3, fraction=0.0)
    nor.program(0x000, b"\x00")
    nor.chip.schedule_cut(after_ops=2, fraction=0.0)
    nor.program(0x100, b"\x00")
    assert nor.chip.powered
    nor.wren()
    nor.cmd(0x02, 0x200, b"\x00")
    assert not nor.chip.powered
