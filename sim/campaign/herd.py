"""How a fleet comes back after an outage: the thundering-herd figures.

A device's *comeback* is its first request at or after the outage's end. What sent it
is read off the device's own sequence of events (requests and reports share one
counter, :mod:`sim.campaign.probe`): a boot since its previous request means the
reboot after a power cut (``boot``); an ``interrupted`` report means the engine's own
retry once the downloader gave up (``engine``: ``AgentConfig.retry_interval_s``,
jittered); otherwise it is the downloader's backoff (``backoff``: capped exponential,
full jitter).

Figures: the request rate per second of device time over the ``window_s`` after the
outage (by default the agent's retry interval, the span its own jitter spreads over:
peak over mean), and the share of the returning devices whose comeback
fell in the busiest single second, overall and per path (that path's busiest second
against every device that came back). A fleet retrying in lock-step
puts nearly all of them in one second; full jitter spreads them over its window.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from agent.engine import AgentConfig
from sim.campaign.plan import Outage
from sim.campaign.probe import Arrival
from sim.campaign.shard import DeviceRecord

PATHS = ("backoff", "engine", "boot")


@dataclass(frozen=True)
class Spread:
    """How one set of comebacks spread over seconds of device time."""

    devices: int  # comebacks counted
    same_second_share: float  # the busiest second's share of them
    busiest_second: int | None  # that second (floor of device time)
    busiest_count: int  # comebacks in it
    span_s: float  # last comeback - first

    @classmethod
    def of(cls, times: Sequence[float]) -> Spread:
        if not times:
            return cls(0, 0.0, None, 0, 0.0)
        bins = Counter(math.floor(t) for t in times)
        second, top = max(bins.items(), key=lambda kv: (kv[1], -kv[0]))
        return cls(len(times), top / len(times), second, top, max(times) - min(times))


@dataclass(frozen=True)
class Herd:
    outage: Outage
    window_s: float
    affected: int  # devices with a request refused or a stream broken by the outage
    comebacks: dict[str, list[float]]  # path -> comeback device times
    peak_rps: int  # the busiest second's requests in the window after the outage
    mean_rps: float

    @property
    def peak_over_mean(self) -> float:
        return self.peak_rps / self.mean_rps if self.mean_rps else 0.0

    @property
    def overall(self) -> Spread:
        return Spread.of([t for times in self.comebacks.values() for t in times])

    def spread(self, path: str) -> Spread:
        return Spread.of(self.comebacks.get(path, []))

    def fleet_share(self, path: str) -> float:
        """The busiest second of ``path``'s comebacks, as a share of every device that came
        back: what one retry path alone puts on the account in one second."""
        back = self.overall.devices
        return self.spread(path).busiest_count / back if back else 0.0

    def lines(self) -> list[str]:
        """What the campaign prints after the outage."""
        o = self.overall
        out = [
            f"herd after the outage ({self.outage.start:g}-{self.outage.end:g} s device time): "
            f"{self.affected} devices hit, {o.devices} came back",
            f"  request rate over the {self.window_s:g} s after it: "
            f"peak {self.peak_rps}/s, mean {self.mean_rps:.2f}/s, "
            f"peak/mean {self.peak_over_mean:.1f}",
            f"  devices coming back within the same second: {o.same_second_share:.1%} "
            f"(busiest second {o.busiest_second}, spread over {o.span_s:.0f} s)",
        ]
        for path in PATHS:
            s = self.spread(path)
            if s.devices:
                out.append(
                    f"    {path:<8} {s.devices:>5} devices over {s.span_s:.0f} s, busiest "
                    f"second {s.busiest_count} ({self.fleet_share(path):.1%} of those back)"
                )
        return out

    def to_json(self) -> dict[str, object]:
        return {
            "outage": {"start": self.outage.start, "length": self.outage.length},
            "affected": self.affected,
            "window_s": self.window_s,
            "peak_rps": self.peak_rps,
            "mean_rps": self.mean_rps,
            "peak_over_mean": self.peak_over_mean,
            "same_second_share": self.overall.same_second_share,
            "paths": {
                p: {
                    "devices": s.devices,
                    "same_second_share": s.same_second_share,
                    "busiest_second_fleet_share": self.fleet_share(p),
                    "span_s": s.span_s,
                }
                for p in PATHS
                if (s := self.spread(p)).devices
            },
        }


def herd(
    outage: Outage,
    devices: Iterable[DeviceRecord],
    arrivals: Sequence[Arrival],
    *,
    window_s: float = AgentConfig().retry_interval_s,
) -> Herd:
    """The figures above, from every device's events and the storage side's arrivals."""
    by_device: dict[str, list[Arrival]] = {}
    for a in arrivals:
        by_device.setdefault(a.device_id, []).append(a)
    comebacks: dict[str, list[float]] = {p: [] for p in PATHS}
    affected = 0
    for d in devices:
        requests = sorted(by_device.get(d.device_id, []), key=lambda a: a.seq)
        if not (d.broken_by_outage or any(a.outcome == "outage" for a in requests)):
            continue
        affected += 1
        back = next((i for i, a in enumerate(requests) if a.t >= outage.end), None)
        if back is None:
            continue
        previous = requests[back - 1].seq if back > 0 else 0
        comebacks[_path(d, previous, requests[back].seq)].append(requests[back].t)
    window = [a.t for a in arrivals if outage.end <= a.t < outage.end + window_s]
    bins = Counter(math.floor(t) for t in window)
    seconds = max(1.0, window_s)
    return Herd(
        outage=outage,
        window_s=window_s,
        affected=affected,
        comebacks=comebacks,
        peak_rps=max(bins.values(), default=0),
        mean_rps=len(window) / seconds,
    )


def _path(device: DeviceRecord, after: int, before: int) -> str:
    """What happened on ``device`` between two of its requests (by sequence number)."""
    if any(after < seq < before for seq, _ in device.boot_marks):
        return "boot"
    if any(after < r.seq < before and r.status == "interrupted" for r in device.timeline):
        return "engine"
    return "backoff"
