"""The project's agent as a separate process under the explorer (issue 13, "Agents across a
process boundary"): its flash through the serprog bridge, its twin and MCU through the
gateway link; a power cut kills the process and the next boot starts a new one. The
verdicts must be the in-process ones, for the correct agent and for a known mutant."""

import asyncio
import random
import sys

import pytest

from agent.engine import AgentConfig
from agent.hosts import LOOPBACK_HOSTS
from sim.cloud.blobserver import BlobServer
from sim.cloud.twin import publish_ota
from sim.device import SimDevice, applied
from sim.explore.explorers import Explorer
from sim.explore.mutants import MUTANTS
from sim.explore.scenario import Scenario
from sim.process import AgentProcessError, process_agent

pytestmark = pytest.mark.sim

SCENARIO = Scenario(image_size=16384, checkpoint_bytes=4096)  # ~140 flash operations
MUTANT = "page_off_by_one"


async def verdicts(factory):
    """(operations, cut runs, each finding's cuts and broken invariants): the verdicts, not
    the messages, which quote device times (loopback time is real for an agent process,
    virtual in process: ``sim.loopback``)."""
    async with BlobServer() as server:
        found = await Explorer(SCENARIO, server, agent_factory=factory).explore("log")
    judged = [
        (tuple(c.describe() for c in f.scenario.cuts), tuple(v.invariant for v in f.violations))
        for f in found.findings
    ]
    return found.ops, found.runs, judged


async def test_the_agent_process_gets_the_in_process_verdicts():
    """log schedule: the same operations counted, the same cut runs, no violation."""
    alone = await verdicts(process_agent())
    assert alone == await verdicts(None)
    assert alone[1] >= 8 and alone[2] == []


async def test_a_mutant_in_a_process_is_caught_as_in_process(tmp_path, monkeypatch):
    """The known page_off_by_one mutant, run by ``python -m agent run --agent``, breaks the
    same invariants at the same cuts as in-process."""
    (tmp_path / "mutant_factory.py").write_text(
        f"from sim.explore.mutants import MUTANTS\nfactory = MUTANTS[{MUTANT!r}].factory()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{':'.join(sys.path)}")
    program = (sys.executable, "-m", "agent", "run", "--agent", "mutant_factory:factory")
    alone = await verdicts(process_agent(program))
    assert alone == await verdicts(MUTANTS[MUTANT].factory())
    assert alone[2] and all("liveness" in invariants for _, invariants in alone[2])


async def ota(device, server, image):
    server.put_blob("ota", "fw.bin", image)
    url, sas = server.blob_url("ota", "fw.bin"), server.make_sas("ota")
    publish_ota(device.twin, version=2, image=image, url=url, sas=sas)
    return await device.run_until(applied(2), max_wall_s=60)


async def test_a_power_cut_kills_the_process_and_the_next_boot_resumes():
    image = random.Random(3).randbytes(48 * 1024)
    config = AgentConfig(allow_http_loopback=True, storage_hosts=LOOPBACK_HOSTS)
    device = SimDevice(agent_factory=process_agent(), config=config)
    device.chip.schedule_cut(after_ops=60, fraction=0.5)
    async with BlobServer() as server:
        done = await ota(device, server, image)
    assert done.reached and (done.boots, done.cuts) == (2, 1)
    assert device.agents[0].returncode == -9  # SIGKILL: the supply went, not an exit
    assert bytes(device.target.image) == image


async def test_an_agent_process_that_dies_by_itself_is_a_crash_not_a_cut():
    device = SimDevice(agent_factory=process_agent((sys.executable, "-c", "raise SystemExit(7)")))
    with pytest.raises(AgentProcessError, match="status 7"):
        await asyncio.wait_for(device.run_until(applied(2)), 60)
