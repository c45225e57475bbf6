"""The Dask seam: shards on a two-worker ``LocalCluster``, every device against the one
storage account the campaign runs, the shards' results merged into one report."""

import asyncio

import pytest

from sim.campaign.campaign import run_campaign
from sim.campaign.executor import executor_for
from sim.campaign.plan import CampaignPlan, Outage

pytestmark = pytest.mark.sim
pytest.importorskip("distributed")


def test_two_workers_run_half_the_fleet_each_and_the_result_is_merged():
    plan = CampaignPlan(devices=12, image_size=32 * 1024, outage=Outage(60.5, 10), cut_rate=50)

    async def campaign():
        executor = executor_for(workers=2, scheduler=None)
        try:
            return await run_campaign(plan, executor=executor)
        finally:
            await executor.close()

    result = asyncio.run(campaign())
    assert result.ok
    assert result.executor == "Dask LocalCluster, 2 worker processes"
    assert [len(s.devices) for s in result.shards] == [6, 6]
    assert sorted(d.device_id for d in result.devices) == [s.device_id for s in plan.layout()]
    assert (result.metrics["ota_v1"]["applied"], result.metrics["ota_v2"]["applied"]) == (1, 10)
    # every worker's devices reached the one storage account: one arrival log for all
    assert {a.device_id for a in result.arrivals} == {d.device_id for d in result.targeted}
