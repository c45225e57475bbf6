"""The agent's hold on its twin (agent/twin_link.py): TwinError is "try again later"
(agent/twin.py), so every call retries with capped, jittered backoff on the agent's clock,
reconnects first, and reads the desired section again after a reconnect."""

import asyncio
import random

import pytest

from agent.twin_link import TwinLink
from sim.clock import VirtualClock
from sim.cloud.faulty_twin import FaultyTwin
from sim.cloud.twin_faults import TwinFault

pytestmark = pytest.mark.sim


def make(*faults: TwinFault, **options) -> tuple[TwinLink, FaultyTwin, VirtualClock, list]:
    clock = VirtualClock()
    twin = FaultyTwin(clock=clock)
    twin.arm(faults)
    handed: list[dict] = []
    link = TwinLink(twin, clock, random.Random(1), on_desired=handed.append, **options)
    return link, twin, clock, handed


async def test_connect_retries_while_the_hub_refuses_then_connects():
    link, twin, clock, _ = make(TwinFault("refuse_connect", at_s=0.0, for_s=100.0))
    await link.connect()
    assert twin.connected and twin.refused >= 2
    assert clock.monotonic() >= 100.0  # the backoff waited out the window on the clock


async def test_a_report_is_kept_through_a_drop_and_sent_after_reconnecting():
    link, twin, _, _ = make(TwinFault("drop_connection", after_messages=1))
    await link.connect()
    await link.report({"n": 1})  # served, then the connection drops
    await link.report({"n": 2})  # fails, reconnects, goes through
    await link.report({"n": 3})
    assert twin.reported_log == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert link.reconnects == 1 and twin.connect_count == 2


async def test_a_report_whose_ack_was_lost_is_sent_again():
    link, twin, _, _ = make(TwinFault("lose_reported_ack"))
    await link.connect()
    await link.report({"Status": "applied"})
    assert twin.reported_log == [{"Status": "applied"}] * 2 and link.failures == 1


async def test_get_desired_retries_a_failed_get():
    link, twin, _, _ = make(TwinFault("fail_twin_get", count=3))
    await link.connect()
    twin.patch_desired({"extFwInfo": {"version": 2}})
    desired = await link.get_desired()
    assert desired["extFwInfo"] == {"version": 2} and link.failures == 3


async def test_after_a_reconnect_the_desired_section_is_read_again():
    """A patch published while the link was down never arrives: after reconnecting the
    whole section goes to on_desired once the call in hand has gone through."""
    link, twin, _, handed = make(TwinFault("drop_connection", after_messages=1))
    await link.connect()
    await link.report({"n": 1})
    twin.patch_desired({"extFwInfo": {"version": 3}})  # lost to the device
    await link.report({"n": 2})
    assert handed == [{"extFwInfo": {"version": 3}, "$version": 2}]


async def test_backoff_is_capped_and_jittered():
    link, _, _, _ = make(base_s=1.0, cap_s=8.0)
    delays = [link._delay(attempt) for attempt in range(1, 40)]
    assert max(delays) <= 8.0 and len(set(delays)) == len(delays)
    assert all(d <= 2 ** (a - 1) for a, d in zip(range(1, 5), delays, strict=False))
    with pytest.raises(ValueError, match="base_s"):
        make(base_s=0.0)


async def test_a_retry_ends_when_the_agent_is_cancelled():
    link, twin, _, _ = make(TwinFault("refuse_connect", count=10**6))
    task = asyncio.ensure_future(link.connect())
    for _ in range(50):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not twin.connected
