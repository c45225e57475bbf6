"""Bench power cuts on the virtual rig: the GPIO cut reaches the model through pyftdi."""

from pathlib import Path

import pytest

from agent.errors import PowerLoss
from hil.port import open_bench
from hil.powercut import BenchCut, BenchCutPort
from hil.raw import T_PP_S, T_SE_S, RawNor
from hil.rig import Rig

pytestmark = pytest.mark.sim

VIRTUAL = Path(__file__).resolve().parents[2] / "fixtures" / "rigs" / "virtual.toml"


@pytest.mark.parametrize(("field", "value"), [("after_op", 0), ("delay_s", -1.0)])
def test_cut_plan_refuses_bad_values_by_name(field, value):
    kwargs = {"after_op": 1, field: value}
    with pytest.raises(ValueError, match=field):
        BenchCut(**kwargs)


def test_cut_part_way_into_an_erase_tears_the_sector():
    """Datasheet 8.2.17 + notes: power lost during an erase leaves the sector partly erased."""
    rig = Rig.load(VIRTUAL)
    with open_bench(rig) as bench:
        base = rig.test_region[0]
        nor = RawNor(bench.port, bench.clock, record=False)
        for page in range(0, 4096, 256):
            nor.program(base + page, b"\x00" * 256)
            nor.wait_idle(T_PP_S)
        port = BenchCutPort(
            bench.port,
            bench.power,
            bench.clock,
            BenchCut(after_op=1, delay_s=0.02),
            off_time_s=bench.rig.off_time_s,
        )
        RawNor(port, bench.clock).erase(base)
        cut_chip_powered = bench.chip.powered
        with pytest.raises(PowerLoss):
            port.exchange(b"\x05", 1)
        port.restore()
        torn = nor.read(base, 4096)
    assert cut_chip_powered is False
    assert torn not in (b"\x00" * 4096, b"\xff" * 4096)


def test_reads_and_status_reads_do_not_count_as_program_or_erase():
    """Only instructions that start an internal write cycle (datasheet 8.1) count."""
    rig = Rig.load(VIRTUAL)
    with open_bench(rig) as bench:
        port = BenchCutPort(
            bench.port,
            bench.power,
            bench.clock,
            BenchCut(after_op=1),
            off_time_s=bench.rig.off_time_s,
        )
        nor = RawNor(port, bench.clock)
        nor.read(rig.test_region[0], 16)
        nor.sr(1)
        nor.wren()
        nor.wait_idle(T_SE_S)
        assert (port.ops_sent, port.powered) == (0, True)
