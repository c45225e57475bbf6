"""200-device campaigns through an outage: every retry path of the agent spreads the fleet.

The storage account goes down 1.8 s of device time into the rollout, while every device
is mid-download, for 90 s: each device's stream breaks, its downloader backs off (capped
exponential, full jitter: "Exponential Backoff And Jitter", AWS architecture blog) until
it gives up after ``max_attempts`` and reports ``interrupted``, then the engine tries
again after a jittered ``retry_interval_s``. When the account comes back, a fleet that
retries in lock-step arrives in the same second (the thundering herd); this one must
not, on either path.

With the agent's defaults the downloader's backoff decides when each device is back
(the engine's retries start from moments its jitter already spread); a second fleet whose
downloader gives up at the first failure (``max_attempts=1``) is interrupted all at
once, so there the engine's own jitter alone has to spread it. A control run with the
jitter taken out (every random draw at the top of its range) shows the figures catch a
herd.
"""

import asyncio
import random

import pytest

import sim.campaign.shard as shard
from agent.download import DownloadPolicy
from agent.engine import Agent, AgentConfig
from agent.hosts import LOOPBACK_HOSTS
from sim.campaign.campaign import run_campaign
from sim.campaign.herd import herd
from sim.campaign.plan import CampaignPlan, Group, Outage

pytestmark = pytest.mark.sim

OUTAGE = Outage(1.8, 90.0)


def plan(devices: int, **agent: object) -> CampaignPlan:
    return CampaignPlan(
        agent=AgentConfig(allow_http_loopback=True, storage_hosts=LOOPBACK_HOSTS, **agent),
        devices=devices,
        image_size=128 * 1024,
        groups=(Group("field", 1.0),),
        control=0,
        outage=OUTAGE,
        seed=12,
        io_time_scale=0.01,
    )


@pytest.fixture(scope="module")
def fleet():
    result = asyncio.run(run_campaign(plan(200)))
    return result, herd(OUTAGE, result.devices, result.arrivals)


def test_every_device_applies_the_image_after_the_outage(fleet):
    result, found = fleet
    assert result.ok
    assert found.affected == 200
    assert sum(len(t) for t in found.comebacks.values()) == 200


def test_the_outage_refuses_every_request_inside_it_and_none_outside(fleet):
    result, _ = fleet
    refused = [a for a in result.arrivals if a.outcome == "outage"]
    answered = [a for a in result.arrivals if a.outcome == "ok"]
    assert refused and all(OUTAGE.covers(a.t) for a in refused)
    assert not any(OUTAGE.covers(a.t) for a in answered)
    unbroken = [d for d in result.devices if not d.broken_by_outage]
    first = {}
    for a in sorted(result.arrivals, key=lambda a: a.seq):
        first.setdefault(a.device_id, []).append((round(a.t, 3), a.outcome, a.status))
    detail = [(d.device_id, d.boots, first.get(d.device_id, [])[:4]) for d in unbroken[:5]]
    assert not unbroken, detail  # every stream cut mid-way


@pytest.fixture(scope="module")
def interrupted_at_once():
    """The downloader gives up at its first failure: the engine's retry is all there is."""
    agent = {"download": DownloadPolicy(max_attempts=1)}
    result = asyncio.run(run_campaign(plan(200, **agent)))
    return result, herd(OUTAGE, result.devices, result.arrivals)


def _check_spread(found, path):
    """The path carries a real share of the fleet back, spread over tens of seconds, and
    in no single second of device time does it bring back a tenth of the fleet."""
    spread = found.spread(path)
    assert spread.devices >= 30, found.lines()
    assert found.fleet_share(path) <= 0.1, found.lines()
    assert spread.span_s >= 20, found.lines()


def test_the_downloaders_backoff_brings_devices_back_spread_out(fleet):
    _, found = fleet
    _check_spread(found, "backoff")


def test_the_engines_retry_after_interrupted_brings_devices_back_spread_out(
    interrupted_at_once,
):
    result, found = interrupted_at_once
    assert result.ok
    assert found.spread("engine").devices == 200, found.lines()
    _check_spread(found, "engine")


def test_the_request_rate_after_the_outage_has_no_spike(fleet):
    _, found = fleet
    assert found.overall.same_second_share <= 0.1, found.lines()
    assert found.peak_over_mean <= 6, found.lines()


class _TopOfRange(random.Random):
    """Every ``uniform(a, b)`` is ``b``: jitter taken out, the agent retries in lock-step."""

    def uniform(self, a: float, b: float) -> float:
        return b


class _LockstepAgent(Agent):
    def __init__(self, **kwargs):
        kwargs["rng"] = _TopOfRange(0)
        super().__init__(**kwargs)


def test_a_fleet_without_jitter_is_caught_as_a_herd(monkeypatch):
    """The same campaign (smaller) with every device's draws at the top of their range."""
    monkeypatch.setattr(shard, "Agent", _LockstepAgent)
    result = asyncio.run(run_campaign(plan(60)))
    found = herd(OUTAGE, result.devices, result.arrivals)
    assert result.ok
    assert found.overall.same_second_share >= 0.5, found.lines()
    assert found.peak_over_mean >= 10, found.lines()
