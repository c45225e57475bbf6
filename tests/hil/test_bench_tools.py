"""The bench tools on the configured rig (CI: --rig fixtures/rigs/virtual.toml)."""

import json

import pytest

from agent.errors import PowerLoss
from hil import diff, probe
from hil.port import open_bench
from hil.powercut import BenchCut, BenchCutPort
from hil.raw import T_PP_S, T_SE_S, RawNor

pytestmark = pytest.mark.hil


def test_probe_reports_a_w25q128jv_and_writes_its_report(rig, tmp_path, capsys):
    """Datasheet 8.2.29: 9Fh answers EF 40 18 (IQ) or EF 70 18 (IM); SFDP says 16 MiB."""
    assert probe.main(["--rig", rig.source, "--report", str(tmp_path)]) == 0
    found = json.loads((tmp_path / "probe.json").read_text())
    assert found["jedec_id"] in ("EF4018", "EF7018")
    assert found["sfdp"]["density_bytes"] == 16 * 1024 * 1024
    assert found["timing"][0]["restored"] is True
    assert "sector erase" in (tmp_path / "probe.txt").read_text()


def test_diff_finds_no_difference_between_rig_and_model(rig, tmp_path):
    """Issue 6: every response byte and status read of the sequence matches the model."""
    code = diff.main(["--rig", rig.source, "--report", str(tmp_path)])
    result = json.loads((tmp_path / "diff.json").read_text())
    assert result["differences"] == []
    assert (code, result["restored"], result["compared"] > 40) == (0, True, True)


def test_diff_reports_a_model_of_another_part_as_different(rig):
    """The check must be able to fail: an IM part (EF 70 18, QE=0 in SR2; 8.2.29, 7.1) differs."""

    def other_part(rig):
        from sim.chip.w25q128 import W25Q128
        from sim.clock import VirtualClock
        from sim.ports.model import SimSpiPort

        clock = VirtualClock()
        return SimSpiPort(W25Q128(clock=clock, jedec_id=b"\xef\x70\x18")), clock

    result = diff.run(rig, model=other_part)
    assert {d["what"] for d in result["differences"]} >= {"9Fh"}


@pytest.mark.needs_power_cut
def test_power_cut_stops_every_exchange_until_restored(rig):
    """Issue 6: after the Nth program/erase the supply is cut; the port raises PowerLoss."""
    with open_bench(rig) as bench:
        port = BenchCutPort(
            bench.port,
            bench.power,
            bench.clock,
            BenchCut(after_op=2),
            off_time_s=bench.rig.off_time_s,
        )
        nor = RawNor(port, bench.clock)
        base = rig.test_region[0]
        nor.erase(base)
        nor.wait_idle(T_SE_S)
        nor.program(base, b"\x00")  # the 2nd program/erase: the cut follows it
        with pytest.raises(PowerLoss):
            nor.sr(1)
        supply_off = not bench.power.powered
        port.restore()
        identity = nor.jedec_id()
        nor.erase(base)
        nor.wait_idle(T_SE_S)
    assert supply_off and identity[:1] == b"\xef"


@pytest.mark.needs_power_cut
def test_power_cut_during_program_leaves_the_chip_usable(rig):
    """Datasheet 9.1: after a cut and tPUW the chip accepts writes again."""
    with open_bench(rig) as bench:
        port = BenchCutPort(
            bench.port,
            bench.power,
            bench.clock,
            BenchCut(after_op=2, delay_s=1e-4),
            off_time_s=bench.rig.off_time_s,
        )
        nor = RawNor(port, bench.clock)
        base = rig.test_region[0]
        nor.erase(base)
        nor.wait_idle(T_SE_S)
        nor.program(base, b"\x00" * 256)
        port.restore()
        nor.erase(base)
        nor.wait_idle(T_SE_S)
        nor.program(base, b"ok")
        nor.wait_idle(T_PP_S)
        back = nor.read(base, 2)
        nor.erase(base)
        nor.wait_idle(T_SE_S)
    assert back == b"ok"
