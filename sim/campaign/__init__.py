"""Fleet campaigns: many simulated gateways rolled out in waves through the deploy tool.

``python -m sim campaign`` (:mod:`sim.tools.campaign`). The parts, one concept each:
:mod:`~sim.campaign.plan` (what the campaign is), :mod:`~sim.campaign.clock` (device
time), :mod:`~sim.campaign.probe` (what each device's requests and reports carry),
:mod:`~sim.campaign.storage` (the blob server with the outage and the request log),
:mod:`~sim.campaign.shard` (running a partition of the devices against a hub replica),
:mod:`~sim.campaign.executor` (where the partitions run: in process, or on Dask),
:mod:`~sim.campaign.campaign` (publish, run, merge), :mod:`~sim.campaign.herd`,
:mod:`~sim.campaign.report`, :mod:`~sim.campaign.picture`, :mod:`~sim.campaign.progress`.
"""
