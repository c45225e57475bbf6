"""The hub's configuration metrics over device time, and the fleet's statuses over it.

The hub replicas only hold the end state, so the series are rebuilt from what every
device reported (with its device time): a fresh :class:`sim.cloud.hub.Hub` gets each
wave's configuration at its hub time (and evaluates it, as IoT Hub does at creation),
each twin's reported section is replayed up to the sample time, and the hub's own
metric queries (``ota.py``'s counts by ``Status``, scoped to the configuration) and
system metrics are read off it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from agent.twin import merge_patch
from sim.campaign.shard import DeviceRecord, Wave
from sim.cloud.hub import Configuration, Hub

STATUSES = ("downloading", "interrupted", "applying", "applied", "error", "invalid")
WAITING = "waiting"  # targeted, nothing reported yet


def end_time(devices: Sequence[DeviceRecord]) -> float:
    """The last report's device time (at least 1 s)."""
    return max([1.0, *(r.t for d in devices for r in d.timeline)])


def sample_times(end: float, waves: Sequence[Wave], samples: int) -> list[float]:
    step = end / max(1, samples - 1)
    times = {round(i * step, 6) for i in range(samples)}
    times |= {w.hub_time_s for w in waves if w.hub_time_s <= end}
    return sorted(times)


def hub_metrics_over_time(
    devices: Sequence[DeviceRecord], waves: Sequence[Wave], *, samples: int = 60
) -> list[dict[str, Any]]:
    """One row per (sample time, configuration): ``t``, ``config``, the system metrics
    ``targetedCount`` and ``appliedCount`` (devices the configuration was written to), and
    the configuration's metric queries (ota.py's: devices by reported ``Status``)."""
    hub = Hub()
    for d in devices:
        hub.add_device(d.device_id, tags=d.tags)
    reports = sorted((r.t, r.seq, d.device_id, r.extfw) for d in devices for r in d.timeline)
    pending = sorted(waves, key=lambda w: w.hub_time_s)
    rows: list[dict[str, Any]] = []
    i = 0
    for t in sample_times(end_time(devices), waves, samples):
        while pending and pending[0].hub_time_s <= t:
            hub.create_configuration(Configuration.from_json(pending.pop(0).configuration))
            hub.evaluate()
        while i < len(reports) and reports[i][0] <= t:
            _, _, device_id, extfw = reports[i]
            twin = hub.twin(device_id)
            twin.reported = merge_patch(twin.reported, {"extFwInfo": extfw})
            i += 1
        for config in hub.configurations:
            m = hub.metrics(config.id)
            rows.append(
                {
                    "t": t,
                    "config": config.id,
                    "targetedCount": m.targeted_count,
                    "appliedCount": m.applied_count,
                    **dict(m.queries),
                }
            )
    return rows


def statuses_over_time(
    devices: Sequence[DeviceRecord], *, step_s: float | None = None
) -> tuple[list[float], dict[str, list[int]]]:
    """Targeted devices by latest reported status at each step of device time (``waiting``:
    nothing reported yet)."""
    end = end_time(devices)
    step = step_s or max(0.5, end / 600)
    targeted = [d for d in devices if d.wave is not None]
    changes = sorted((r.t, r.seq, d.device_id, r.status) for d in targeted for r in d.timeline)
    current: dict[str, str] = {}
    counts = {s: [] for s in (WAITING, *STATUSES)}  # type: dict[str, list[int]]
    times: list[float] = []
    i = 0
    for k in range(math.floor(end / step) + 2):
        t = k * step
        while i < len(changes) and changes[i][0] <= t:
            _, _, device_id, status = changes[i]
            if status in STATUSES:
                current[device_id] = status
            i += 1
        times.append(t)
        tally = {s: 0 for s in STATUSES}
        for status in current.values():
            tally[status] += 1
        counts[WAITING].append(len(targeted) - len(current))
        for s in STATUSES:
            counts[s].append(tally[s])
    return times, counts


def request_rate(arrivals: Sequence[Any]) -> dict[str, list[int]]:
    """Requests per second of device time: ``second``, ``answered``, ``refused`` (the
    outage), each a list over consecutive seconds from 0."""
    last = max((math.floor(a.t) for a in arrivals), default=0)
    answered = [0] * (last + 1)
    refused = [0] * (last + 1)
    for a in arrivals:
        (refused if a.outcome == "outage" else answered)[math.floor(a.t)] += 1
    return {"second": list(range(last + 1)), "answered": answered, "refused": refused}
