"""A campaign end to end: the storage account up, every wave published with the deploy
tool, the fleet run by an executor, the shards' results merged.

Each wave is the operator's ``ota`` for one group (:func:`deploy.ota.publish`: the real
``azure-storage-blob`` SDK uploads the image and signs a read-only SAS; the configuration
``ota_v{N}`` targets ``tags.productType='washer' AND tags.deviceGroup='{group}'``), with
version N = wave + 1 (the tool refuses anything not newer), created at hub time
``wave * wave_interval_s``. The fault plan goes live once the uploads are in, so it only
ever meets the devices.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from deploy.ota import Release, publish
from sim.campaign.executor import Executor, InProcessExecutor, partition
from sim.campaign.plan import PRODUCT, CampaignPlan
from sim.campaign.probe import Arrival
from sim.campaign.shard import DeviceRecord, ReportHook, ShardResult, ShardSpec, Wave
from sim.campaign.storage import CampaignStorage
from sim.cloud.hub import Hub


@dataclass
class CampaignResult:
    plan: CampaignPlan
    waves: tuple[Wave, ...]
    devices: list[DeviceRecord]
    arrivals: list[Arrival]  # every device request the storage account saw
    metrics: dict[str, dict[str, Any]]  # config id -> the replicas' metrics, added up
    shards: list[ShardResult]
    executor: str
    wall_s: float
    blob_events: int

    @property
    def targeted(self) -> list[DeviceRecord]:
        return [d for d in self.devices if d.wave is not None]

    @property
    def ok(self) -> bool:
        """Every targeted device applied its wave's exact image; nothing else was touched."""
        for d in self.devices:
            if d.wave is None:
                if d.desired_version is not None or d.status is not None or d.installed_version:
                    return False
            elif not (
                d.status == "applied" and d.image_ok and d.installed_version == d.desired_version
            ):
                return False
        return True

    def twin_faults_fired(self) -> dict[str, int]:
        """Twin-channel fault firings over the fleet, by kind."""
        total: dict[str, int] = {}
        for d in self.devices:
            for kind, n in d.twin_faults.items():
                total[kind] = total.get(kind, 0) + n
        return dict(sorted(total.items()))

    def flash_per_device(self) -> float:
        """Bytes the devices' chips hold at the end, per device (erased sectors: none)."""
        return sum(s.flash_bytes for s in self.shards) / max(1, len(self.devices))

    def rss_per_device(self, *, phase: str) -> float:
        """Bytes of resident memory per device: ``idle`` (booted, blank) or ``peak``."""
        total = 0
        for s in self.shards:
            top = s.rss_idle if phase == "idle" else s.rss_peak
            total += top - s.rss_start
        return total / max(1, len(self.devices))


def campaign_image(plan: CampaignPlan) -> bytes:
    return random.Random(f"campaign:{plan.seed}").randbytes(plan.image_size)


async def publish_waves(plan: CampaignPlan, storage: CampaignStorage) -> tuple[Wave, ...]:
    """One deploy-tool release per group, in wave order."""
    image = campaign_image(plan)
    registry = Hub()  # what the tool checks versions against, and keeps every configuration
    waves = []
    for index, group in enumerate(plan.groups):
        release = Release(image=image, version=index + 1, product=PRODUCT, group=group.name)
        configuration = await publish(release, storage=storage.connection_string, hub=registry)
        waves.append(Wave(index, release.version, plan.wave_time(index), configuration.to_json()))
    return tuple(waves)


async def run_campaign(
    plan: CampaignPlan,
    *,
    executor: Executor | None = None,
    on_report: ReportHook | None = None,
) -> CampaignResult:
    executor = executor or InProcessExecutor()
    started = time.perf_counter()
    storage = CampaignStorage(seed=plan.seed, outage=plan.outage)
    async with storage:
        waves = await publish_waves(plan, storage)
        storage.plan = plan.faults
        specs = [
            ShardSpec(plan=plan, devices=part, waves=waves, index=i)
            for i, part in enumerate(partition(plan.layout(), executor.partitions))
        ]
        shards = await executor.run(specs, on_report=on_report)
        arrivals = list(storage.arrivals)
        events = len(storage.events)
    devices = sorted((d for s in shards for d in s.devices), key=lambda d: d.device_id)
    return CampaignResult(
        plan=plan,
        waves=waves,
        devices=devices,
        arrivals=sorted(arrivals, key=lambda a: a.t),
        metrics=_add_metrics(shards),
        shards=list(shards),
        executor=executor.description,
        wall_s=time.perf_counter() - started,
        blob_events=events,
    )


def _add_metrics(shards: Sequence[ShardResult]) -> dict[str, dict[str, Any]]:
    total: dict[str, dict[str, Any]] = {}
    for shard in shards:
        for config_id, m in shard.metrics.items():
            into = total.setdefault(config_id, {"targeted": 0, "applied": 0, "queries": {}})
            into["targeted"] += m["targeted"]
            into["applied"] += m["applied"]
            for name, n in m["queries"].items():
                into["queries"][name] = into["queries"].get(name, 0) + n
    return total
