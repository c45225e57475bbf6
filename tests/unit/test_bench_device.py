"""The bench device's cut schedule and cut plans, on the W25Q128 model behind SimSpiPort."""

import pytest

from agent.errors import PowerLoss
from hil.device import CutSchedule
from hil.powercut import SECTOR_ERASES, BenchCut, BenchCutPort
from hil.raw import T_PP_S, T_SE_S, RawNor
from sim.chip.w25q128 import W25Q128
from sim.clock import VirtualClock
from sim.ports.model import SimSpiPort

pytestmark = pytest.mark.sim

BASE = 0xF00000


@pytest.fixture
def chip() -> W25Q128:
    return W25Q128(VirtualClock())


def erase(nor: RawNor, address: int = BASE) -> None:
    nor.erase(address)
    nor.wait_idle(T_SE_S)


def test_cut_plan_refuses_opcodes_that_are_not_program_or_erase():
    """Datasheet 8.1: 03h (Read Data) starts no internal write cycle; the error names it."""
    with pytest.raises(ValueError, match="opcodes"):
        BenchCut(after_op=1, opcodes=frozenset({0x20, 0x03}))


def test_cut_plan_with_erase_opcodes_counts_only_erases(chip):
    """A plan narrowed to 20h/52h/D8h (8.2.17-8.2.19) lets page programs (02h) go by."""
    port = BenchCutPort(SimSpiPort(chip), chip, chip.clock, BenchCut(1, opcodes=SECTOR_ERASES))
    nor = RawNor(port, chip.clock)
    nor.program(BASE, b"\x00" * 256)  # not counted: no cut
    nor.wait_idle(T_PP_S)
    powered_after_program = port.powered
    nor.erase(BASE)  # the 1st erase since the plan: the cut follows it
    assert (powered_after_program, port.powered, chip.powered) == (True, False, False)


def test_schedule_arms_one_plan_per_boot_and_counts_from_each_boot(chip):
    """Issue 6: each plan cuts once in its own boot; the next boot counts afresh."""
    supply = chip
    schedule = CutSchedule(SimSpiPort(chip), supply, chip.clock, [BenchCut(1), BenchCut(2)])
    nor = RawNor(schedule, chip.clock, record=False)
    nor.erase(BASE)
    with pytest.raises(PowerLoss):
        nor.sr(1)
    schedule.power_on()
    erase(nor)  # boot 2: the 1st of its two
    nor.erase(BASE)
    with pytest.raises(PowerLoss):
        nor.sr(1)
    schedule.power_on()
    for _ in range(3):  # plans spent: nothing cuts any more
        erase(nor)
    assert [(cut.plan.after_op, cut.boot) for cut in schedule.fired] == [(1, 1), (2, 2)]
    assert schedule.powered and schedule.boot == 3


def test_power_on_without_a_cut_holds_the_supply_off_then_restores_it(chip):
    """A reboot that no plan caused (e.g. SimDevice.power_cycle) still power-cycles the
    chip for ``off_time_s`` (the rig's hold time), leaving no cut recorded."""
    schedule = CutSchedule(SimSpiPort(chip), chip, chip.clock, off_time_s=0.5)
    before = chip.clock.monotonic()
    schedule.power_off()
    off = schedule.powered
    schedule.power_on()
    assert (off, schedule.powered, schedule.fired) == (False, True, [])
    assert chip.clock.monotonic() - before >= 0.5


def test_schedule_refuses_a_plan_of_the_wrong_type_by_index(chip):
    with pytest.raises(TypeError, match=r"plans\[1\]"):
        CutSchedule(SimSpiPort(chip), chip, chip.clock, [BenchCut(1), 3])
