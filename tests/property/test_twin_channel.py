"""Twin-channel faults in scenarios and explorers (issue 10: "Scenarios and explorers
combine them with power cuts and blob faults"): each fault of the vocabulary
(sim/cloud/twin_faults.py) on the in-process twin, with a power cut or a blob fault,
keeps every invariant; the new one, converged reporting, catches an agent that drops a
report whose send failed; explorers and the random fuzzer take twin faults too."""

import asyncio
import dataclasses
import itertools
import logging
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.engine import Agent
from sim.cloud.blobserver import BlobServer
from sim.cloud.twin_faults import TwinFault
from sim.explore.campaign import random_changes
from sim.explore.channel import ChannelTwin, random_channel_faults
from sim.explore.explorers import Explorer
from sim.explore.invariants import CONVERGED, check_all
from sim.explore.mutants import MUTANTS
from sim.explore.mutants.kills import execute
from sim.explore.runner import WALL_LIMIT_S, Run, run_scenario
from sim.explore.scenario import ChannelFault, Cut, Scenario
from sim.explore.stage import Stage

pytestmark = pytest.mark.sim

KIB = 1024
BASE = Scenario(image_size=64 * KIB, checkpoint_bytes=16 * KIB)
RESET = {
    "rules": [{"fault": "reset_peer", "params": {"after_bytes": 20 * KIB}, "requests": [1, 1]}]
}


@pytest.fixture(autouse=True)
def _quiet(caplog):
    caplog.set_level(logging.ERROR)  # every retry logs a warning


async def play(scenario: Scenario, agent=Agent.from_board):
    """Run ``scenario`` and return (result, its twin) so a test can see the faults fire."""
    async with BlobServer() as server:
        run = Run(scenario, Stage(server), agent)
        result = await asyncio.wait_for(run.play(), WALL_LIMIT_S)
    assert isinstance(run.twin, ChannelTwin)
    return result, run.twin


def clean(result) -> None:
    violations = check_all(result)
    assert violations == [], [str(v) for v in violations]
    assert result.reached


async def test_a_dropped_connection_with_a_power_cut():
    """The connection drops after the third message; the agent reconnects (its reports
    fail until then and are sent again), and a cut later in the download reboots it."""
    scenario = dataclasses.replace(
        BASE,
        twin_faults=(TwinFault("drop_connection", after_messages=3),),
        cuts=(Cut(after_ops=120),),
    )
    result, twin = await play(scenario)
    clean(result)
    assert twin.drops == 1 and result.cuts_fired == 1
    assert twin.connect_count >= 3  # boot 1, its reconnect, boot 2


async def test_a_connection_dropped_at_a_time_with_a_connection_reset_on_the_blob():
    scenario = dataclasses.replace(
        BASE, twin_faults=(TwinFault("drop_connection", at_s=0.5),), fault_plan=RESET
    )
    result, twin = await play(scenario)
    clean(result)
    assert [e.kind for e in twin.faults.fired()] == ["drop_connection"]
    assert twin.faults.fired()[0].at >= 0.5 and result.faulted_requests == 1


async def test_the_hub_down_for_five_minutes_when_the_device_reboots_after_a_cut():
    """Connects are refused through boot 2's first 300 s: the agent retries on its clock."""
    scenario = dataclasses.replace(
        BASE,
        twin_faults=(ChannelFault(TwinFault("refuse_connect", at_s=0.0, for_s=300.0), boot=2),),
        cuts=(Cut(after_ops=100),),
    )
    result, twin = await play(scenario)
    clean(result)
    assert twin.refused >= 2 and result.device_time_s >= 300.0


async def test_lost_acknowledgements_of_reported_patches_with_a_power_cut():
    """Three patches are applied but their answers are lost: each is sent again."""
    scenario = dataclasses.replace(
        BASE, twin_faults=(TwinFault("lose_reported_ack", count=3),), cuts=(Cut(after_ops=100),)
    )
    result, twin = await play(scenario)
    clean(result)
    assert twin.lost_acks == 3
    log = twin.reported_log
    assert sum(1 for a, b in itertools.pairwise(log) if a == b) >= 3  # sent again


async def test_a_delayed_desired_patch_for_a_newer_version_with_a_power_cut():
    """Version 3 is published mid-download and reaches the device two minutes late; a cut
    soon after the publish reboots it, and the late patch is a continuation."""
    scenario = dataclasses.replace(
        BASE,
        twin_faults=(TwinFault("delay_desired", delay_s=120.0),),
        newer_at_bytes=30 * KIB,
        cuts=(Cut(after_ops=50, anchor="newer"),),
    )
    result, twin = await play(scenario)
    clean(result)
    assert [e.kind for e in twin.faults.fired()] == ["delay_desired"]
    assert result.target_version == 3


async def test_a_delayed_newer_version_reaches_an_idle_device():
    """Version 2 finishes before version 3's delayed patch arrives: the idle device's
    clock moves to the delivery and it goes on to version 3."""
    scenario = dataclasses.replace(
        BASE,
        twin_faults=(TwinFault("delay_desired", delay_s=600.0),),
        newer_at_bytes=60 * KIB,
        fault_plan=RESET,
    )
    result, _ = await play(scenario)
    clean(result)
    assert [i.version for i in result.installs][-2:] == [2, 3]
    assert result.device_time_s >= 600.0


async def test_a_duplicated_desired_patch_with_a_power_cut():
    scenario = dataclasses.replace(
        BASE,
        twin_faults=(TwinFault("duplicate_desired"),),
        newer_at_bytes=30 * KIB,
        cuts=(Cut(after_ops=40, anchor="newer"),),
    )
    result, twin = await play(scenario)
    clean(result)
    assert [e.kind for e in twin.faults.fired()] == ["duplicate_desired"]
    assert [i.version for i in result.installs].count(3) == 1


async def test_failed_twin_gets_after_a_power_cut():
    """The rebooted agent's GETs fail three times; it retries and resumes."""
    scenario = dataclasses.replace(
        BASE,
        twin_faults=(ChannelFault(TwinFault("fail_twin_get", count=3, status=503), boot=2),),
        cuts=(Cut(after_ops=100),),
    )
    result, twin = await play(scenario)
    clean(result)
    assert [e.kind for e in twin.faults.fired()] == ["fail_twin_get"] * 3


@pytest.mark.parametrize(
    "fault",
    [
        TwinFault("lose_reported_ack", count=2),
        TwinFault("delay_desired", delay_s=30.0),
        TwinFault("fail_twin_get", count=2, status=503),
    ],
    ids=lambda f: f.kind,
)
async def test_the_operator_fixes_a_malformed_instruction_over_a_broken_channel(fault):
    """A malformed instruction mid-download (``invalid_at_bytes``) with a twin-channel
    fault: the operator sees ``invalid`` on the hub and publishes the valid one again,
    and the device applies it (the run's twin tells the operator of every report that
    reaches the hub, whatever the channel does to it afterwards)."""
    scenario = dataclasses.replace(
        BASE, invalid_at_bytes=20 * KIB, twin_faults=(ChannelFault(fault, boot=1),)
    )
    result, _ = await play(scenario)
    clean(result)
    assert "invalid" in [r.get("Status") for r in result.reports]


async def test_a_retransmitted_invalid_report_does_not_end_the_run():
    """The ``invalid`` report's acknowledgement is lost, so the agent sends it again
    word for word after the operator has published the fix: the run waits for the
    agent's answer to the fix (``applied``), not for the repeat (a default campaign
    finding that flagged the correct agent)."""
    scenario = dataclasses.replace(
        BASE,
        image_size=3454,
        image_seed=581,
        invalid_at_bytes=337,
        timing="random",
        chip_seed=857,
        seed=224,
        twin_faults=(
            ChannelFault(TwinFault("lose_reported_ack", count=3, at_s=2.706), boot=1),
            ChannelFault(TwinFault("delay_desired", delay_s=6.7), boot=1),
        ),
    )
    result, twin = await play(scenario)
    clean(result)
    statuses = [r.get("Status") for r in result.reports]
    assert statuses.count("invalid") >= 2 and twin.lost_acks >= 2
    assert statuses[-1] == "applied"


async def test_converged_reporting_catches_an_agent_that_drops_a_failed_report():
    """The invariant can fail: the mutant loses its reports while the hub is down, so the
    operator is left with 'downloading' and Version 1 while the MCU runs version 2."""
    mutant = MUTANTS["drop_failed_report"]
    violations = await execute(mutant.kill, mutant.factory)
    converged = [v for v in violations if v.invariant == CONVERGED]
    assert converged, [str(v) for v in violations]
    assert any("'downloading'" in v.message for v in converged)
    assert await execute(mutant.kill, None) == []


async def test_scenario_twin_faults_round_trip_and_are_validated():
    scenario = dataclasses.replace(
        BASE,
        twin_faults=(
            TwinFault("drop_connection", after_messages=3),
            ChannelFault(TwinFault("refuse_connect", at_s=1.5, for_s=30.0), boot=2),
        ),
    )
    assert Scenario.from_json(scenario.to_json()) == scenario
    assert scenario.to_dict()["twin_faults"][1] == {
        "boot": 2,
        "fault": "refuse_connect",
        "at_s": 1.5,
        "for_s": 30.0,
    }
    with pytest.raises(ValueError, match="twin_faults: fault must be one of"):
        Scenario.from_dict({"twin_faults": [{"fault": "unplug"}]})
    with pytest.raises(ValueError, match="one device"):
        Scenario(twin_faults=({"fault": "duplicate_desired", "device": "gw-1"},))
    with pytest.raises(ValueError, match="boot must be an int >= 1"):
        Scenario(twin_faults=({"fault": "duplicate_desired", "boot": 0},))


async def test_a_scenario_without_twin_faults_keeps_the_plain_twin():
    async with BlobServer() as server:
        run = Run(dataclasses.replace(BASE, image_size=4 * KIB), Stage(server), Agent.from_board)
        await run.play()
    assert not isinstance(run.twin, ChannelTwin)


async def test_an_explorer_combines_cuts_with_twin_faults_in_later_boots():
    """A cut run continues from the clean run's snapshot into boot 2, where its faults
    are armed as in a run from zero: the hub is down for a minute as the device reboots."""
    scenario = dataclasses.replace(
        BASE,
        twin_faults=(
            TwinFault("lose_reported_ack", count=2),
            ChannelFault(TwinFault("refuse_connect", at_s=0.0, for_s=60.0), boot=2),
        ),
    )
    async with BlobServer() as server:
        explorer = Explorer(scenario, server)
        found = await explorer.explore("log")
        assert found.runs >= 8 and found.findings == [], [str(f) for f in found.findings]
        _, result = await explorer.cut_run(64)
    replayed = await run_scenario(dataclasses.replace(scenario, cuts=(Cut(after_ops=64),)))
    for r in (result, replayed):
        assert r.reached and r.boots == 2 and r.device_time_s >= 60.0


async def test_the_explorer_catches_the_mutant_with_twin_faults():
    scenario = dataclasses.replace(
        BASE, twin_faults=MUTANTS["drop_failed_report"].kill.scenarios[0].twin_faults
    )
    async with BlobServer() as server:
        explorer = Explorer(scenario, server, agent_factory=MUTANTS["drop_failed_report"].factory())
        clean_run = await explorer.prepare()
    assert any(v.invariant == CONVERGED for v in check_all(clean_run.result))


def test_random_scenarios_draw_twin_faults_sometimes():
    """The campaign's random mixes (python -m sim fuzz --schedule random, and the tail of
    the default campaign) arm twin-channel faults in some runs, of every kind, in both boots."""
    rng = random.Random(7)
    drawn = [random_changes(rng)["twin_faults"] for _ in range(200)]
    with_faults = [f for f in drawn if f]
    assert 40 <= len(with_faults) <= 120
    kinds = {cf.fault.kind for faults in with_faults for cf in faults}
    assert len(kinds) == 6 and {cf.boot for faults in with_faults for cf in faults} == {1, 2}
    assert random_channel_faults(random.Random(1), chance=0.0) == ()


@given(
    st.lists(
        st.builds(
            lambda seed, boot: ChannelFault(
                random_channel_faults(random.Random(seed), chance=1.0)[0].fault, boot
            ),
            st.integers(0, 2**32),
            st.integers(1, 2),
        ),
        min_size=1,
        max_size=2,
    ),
    st.integers(1, 300),
)
async def test_random_twin_faults_with_a_cut_keep_every_invariant(faults, after_ops):
    scenario = dataclasses.replace(
        BASE, image_size=16 * KIB, twin_faults=tuple(faults), cuts=(Cut(after_ops=after_ops),)
    )
    result = await run_scenario(scenario)
    assert check_all(result) == [], [str(v) for v in check_all(result)]
