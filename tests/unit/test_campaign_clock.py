"""A campaign device's clock: the network costs no device time, a timeout costs its whole
window, and a timer the busy loop ran late is waited again instead of called a stall."""

import asyncio
import time

import pytest

from sim.campaign.clock import MIN_REAL_S, CampaignClock

pytestmark = pytest.mark.sim


def clock(expired=None, limit=1e9):
    return CampaignClock(io_time_scale=0.01, limit_s=limit, on_expire=(expired or (lambda: None)))


async def test_a_wait_that_ends_costs_no_device_time():
    c = clock()

    async def soon():
        await asyncio.sleep(0.02)
        return "data"

    assert await c.wait_for(soon(), 30.0) == "data"
    assert c.monotonic() == 0.0


async def test_a_timeout_costs_its_window_and_waits_it_scaled_with_a_floor():
    """30 s scaled by 0.01 is 0.3 s, raised to MIN_REAL_S; a 0.1 s window waits 0.1 s."""
    c = clock()
    started = time.perf_counter()
    with pytest.raises(TimeoutError):
        await c.wait_for(asyncio.Event().wait(), 30.0)
    waited = time.perf_counter() - started
    assert c.monotonic() == 30.0
    assert MIN_REAL_S <= waited < MIN_REAL_S + 1.0
    started = time.perf_counter()
    with pytest.raises(TimeoutError):
        await c.wait_for(asyncio.Event().wait(), 0.1)
    assert c.monotonic() == 30.1 and time.perf_counter() - started < 0.5


async def test_a_timer_run_late_by_a_busy_loop_waits_again():
    """The loop is blocked past the scaled window and the data is on its way (its
    callbacks have not yet run when the overdue timer does): no stall."""
    c = clock()
    ready = asyncio.Event()
    loop = asyncio.get_running_loop()

    def busy():
        time.sleep(0.5)  # another device's flash work, longer than the 0.3 s window
        loop.call_later(0.01, ready.set)

    loop.call_soon(busy)
    await c.wait_for(ready.wait(), 0.3)  # a window under the floor: waited as it is
    assert c.monotonic() == 0.0 and c.extensions >= 1


async def test_passing_the_device_time_bound_calls_on_expire_once():
    calls = []
    c = clock(expired=lambda: calls.append(c.monotonic()), limit=100.0)
    await c.asleep(60.0)
    assert calls == []
    await c.asleep(60.0)
    await c.asleep(60.0)
    assert calls == [120.0]
