"""Campaign shards on the project's distribution engine (``sim/distribute.py``): Dask
workers of a ``LocalCluster``, every device against the one storage account the campaign
runs, the shards' results merged into one report; where a device runs does not change
what it does (issue 11's rule for the engine: "work is partitioned deterministically")."""

import asyncio
import os
import subprocess
import sys

import pytest

from sim.campaign.campaign import run_campaign
from sim.campaign.engine_executor import EngineExecutor
from sim.campaign.executor import InProcessExecutor, executor_for
from sim.campaign.plan import CampaignPlan, Outage
from sim.campaign.twin_channel import parse_twin_section
from sim.tools.campaign import main

pytestmark = pytest.mark.sim
pytest.importorskip("distributed")

# the field wave's downloads meet the outage and several cuts each, and half the fleet's
# twin channel (a seeded share) drops or delays: every device's path depends on its own
# seeded cuts, its agent's seeded backoff jitter, its twin faults and its device time
PLAN = CampaignPlan(
    devices=12,
    image_size=128 * 1024,
    outage=Outage(61, 10),
    cut_rate=1000,
    twin_faults=parse_twin_section(
        [
            {"fault": "delay_desired", "delay_s": 5, "share": 0.5},
            {"fault": "drop_connection", "after_messages": 3, "share": 0.5},
        ]
    ),
)


def _run(plan, executor):
    async def campaign():
        try:
            return await run_campaign(plan, executor=executor)
        finally:
            await executor.close()

    return asyncio.run(campaign())


def _outcomes(result):
    """Everything a device did, in device time: nothing of wall time or placement."""
    return {
        d.device_id: (
            d.status,
            d.installed_version,
            d.image_ok,
            d.boots,
            d.cuts,
            d.wire_bytes,
            d.requests,
            d.broken_by_outage,
            round(d.device_time_s, 9),
            d.ended,
            d.twin_faults,
            [
                (round(r.t, 9), r.seq, r.extfw.get("Status"), r.extfw.get("Progress"))
                for r in d.timeline
            ],
        )
        for d in result.devices
    }


@pytest.fixture(scope="module")
def runs():
    return {
        "here": _run(PLAN, InProcessExecutor()),
        1: _run(PLAN, executor_for(workers=1, scheduler=None)),
        2: _run(PLAN, executor_for(workers=2, scheduler=None)),
    }


def test_two_workers_run_half_the_fleet_each_and_the_result_is_merged(runs):
    result = runs[2]
    assert result.ok
    assert result.executor == "Dask LocalCluster, 2 worker processes"
    assert [len(s.devices) for s in result.shards] == [6, 6]
    assert sorted(d.device_id for d in result.devices) == [s.device_id for s in PLAN.layout()]
    assert (result.metrics["ota_v1"]["applied"], result.metrics["ota_v2"]["applied"]) == (1, 10)
    # every worker's devices reached the one storage account: one arrival log for all
    assert {a.device_id for a in result.arrivals} == {d.device_id for d in result.targeted}


def test_one_worker_and_two_workers_give_every_device_the_same_outcome(runs):
    one, two, here = _outcomes(runs[1]), _outcomes(runs[2]), _outcomes(runs["here"])
    assert len(runs[1].shards) == 1 and len(runs[2].shards) == 2
    assert sum(d.cuts for d in runs[1].devices) >= 10  # the cuts did shape the runs
    assert sum(d.broken_by_outage > 0 for d in runs[1].devices) >= 5  # and the outage
    assert len({d.device_time_s for d in runs[1].devices}) >= 10  # each its own path
    assert 0 < len([d for d in runs[1].devices if d.twin_faults]) < 12  # a share of them
    assert one == two == here
    assert sorted(runs[1].arrivals, key=_key) == sorted(runs[2].arrivals, key=_key)


def _key(arrival):
    return (arrival.device_id, arrival.seq)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"workers": 0}, "--workers must be an integer >= 1"),
        ({"scheduler": " "}, "--scheduler needs an address"),
    ],
)
def test_bad_engine_options_are_one_line_errors(kwargs, named):
    with pytest.raises(ValueError, match=named):
        EngineExecutor(**kwargs)


def test_a_scheduler_nobody_answers_at_is_an_error_not_a_hang():
    with pytest.raises(ValueError, match=r"tcp://127\.0\.0\.1:9: cannot be reached"):
        EngineExecutor(scheduler="127.0.0.1:9", connect_timeout_s=1.0)


def test_the_command_runs_its_shards_on_a_cluster_given_by_scheduler_address(capsys):
    from distributed import LocalCluster

    from sim.distribute import HTTP_ADDRESS

    with LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": HTTP_ADDRESS},
    ) as cluster:
        address = cluster.scheduler_address
        argv = ["--devices", "6", "--image-size", "16K", "--outage", "none", "--cut-rate", "0"]
        status = main([*argv, "--report", "none", "--quiet", "--scheduler", address])
    out = capsys.readouterr().out
    assert status == 0, out
    assert f"on Dask scheduler {address}" in out and "applied 4" in out


def test_the_command_with_workers_runs_in_a_fresh_interpreter():
    """The command as a user runs it: nothing imported dask before the engine starts."""
    argv = ["--devices", "4", "--image-size", "16K", "--outage", "none", "--cut-rate", "0"]
    done = subprocess.run(
        [sys.executable, "-m", "sim", "campaign", *argv, "--report", "none", "--workers", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "on Dask LocalCluster, 1 worker processes" in done.stdout
    assert "Traceback" not in done.stderr
