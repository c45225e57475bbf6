"""The in-process twin with twin-channel faults (sim/cloud/faulty_twin.py): each fault of
the vocabulary on the device's virtual clock and message counts, as the local IoT Hub
applies it to an MQTT connection (docs/iothub.md)."""

import asyncio

import pytest

from agent.twin import Twin, TwinError
from sim.clock import VirtualClock
from sim.cloud.faulty_twin import FaultyTwin
from sim.cloud.twin_faults import TwinFault

pytestmark = pytest.mark.sim


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def connected(*faults: TwinFault) -> tuple[FaultyTwin, VirtualClock, list[dict]]:
    clock = VirtualClock()
    twin = FaultyTwin(clock=clock)
    twin.arm(faults)
    got: list[dict] = []
    twin.on_desired_patch(got.append)
    await twin.connect()
    return twin, clock, got


def test_it_is_a_twin():
    assert isinstance(FaultyTwin(clock=VirtualClock()), Twin)


async def test_without_faults_it_behaves_as_the_in_process_twin():
    twin, _, got = await connected()
    twin.patch_desired({"a": 1})
    await twin.report({"s": 1})
    await settle()
    assert got == [{"a": 1, "$version": 2}]
    assert twin.reported == {"s": 1} and await twin.get_desired() == {"a": 1, "$version": 2}


async def test_drop_after_a_message_count_serves_that_message_then_fails_until_reconnect():
    twin, _, got = await connected(TwinFault("drop_connection", after_messages=2))
    await twin.report({"n": 1})
    await twin.report({"n": 2})  # the second is served, then the connection goes
    assert not twin.connected and twin.reported == {"n": 2}
    twin.patch_desired({"lost": True})  # sent while away: never arrives
    with pytest.raises(TwinError):
        await twin.report({"n": 3})
    await twin.connect()
    await twin.report({"n": 3})
    await settle()
    assert got == [] and twin.reported == {"n": 3} and twin.drops == 1
    assert [e.kind for e in twin.faults.fired()] == ["drop_connection"]


async def test_a_timed_drop_falls_due_on_the_virtual_clock():
    twin, clock, _ = await connected(TwinFault("drop_connection", at_s=60.0))
    clock.advance(59.0)
    await twin.report({"n": 1})
    clock.advance(1.0)
    with pytest.raises(TwinError):
        await twin.report({"n": 2})
    assert twin.faults.fired("drop_connection")[0].at == 60.0


async def test_refused_connects_for_a_window_name_the_connack_code():
    clock = VirtualClock()
    twin = FaultyTwin(clock=clock)
    twin.arm([TwinFault("refuse_connect", at_s=0.0, for_s=30.0)])
    with pytest.raises(TwinError, match=r"CONNACK 3 \(server unavailable\)"):
        await twin.connect()
    clock.advance(29.0)
    with pytest.raises(TwinError):
        await twin.connect()
    clock.advance(1.0)
    await twin.connect()
    assert twin.connected and twin.refused == 2


async def test_a_lost_ack_keeps_the_patch_and_costs_the_device_its_timeout():
    twin, clock, _ = await connected(TwinFault("lose_reported_ack"))
    with pytest.raises(TwinError, match="no acknowledgement"):
        await twin.report({"Status": "applied"})
    assert twin.reported == {"Status": "applied"} and clock.monotonic() == 30.0
    await twin.report({"Status": "applied"})  # the retry goes through
    assert twin.reported_log == [{"Status": "applied"}] * 2


async def test_a_delayed_patch_arrives_late_and_later_ones_queue_behind_it():
    """The seam promises $version order: a patch sent behind a delayed one waits for it."""
    twin, clock, got = await connected(TwinFault("delay_desired", delay_s=10.0))
    twin.patch_desired({"v": 2})
    twin.patch_desired({"v": 3})
    await settle()
    assert got == []
    clock.advance(9.0)
    twin.tick()
    await settle()
    assert got == []
    clock.advance(1.0)
    await twin.get_desired()  # any call of the device looks at the clock
    await settle()
    assert [p["$version"] for p in got] == [2, 3]


async def test_a_delayed_patch_is_lost_with_its_connection():
    twin, clock, got = await connected(TwinFault("delay_desired", delay_s=10.0))
    twin.patch_desired({"v": 2})
    twin.disconnect()
    await twin.connect()
    clock.advance(20.0)
    twin.tick()
    await settle()
    assert got == []


async def test_a_duplicated_patch_arrives_twice():
    twin, _, got = await connected(TwinFault("duplicate_desired"))
    twin.patch_desired({"v": 2})
    twin.patch_desired({"v": 3})
    await settle()
    assert got == [{"v": 2, "$version": 2}] * 2 + [{"v": 3, "$version": 3}]


async def test_a_failed_get_names_the_status_and_the_next_one_works():
    twin, _, _ = await connected(TwinFault("fail_twin_get", status=503, count=2))
    for _ in range(2):
        with pytest.raises(TwinError, match="503"):
            await twin.get_desired()
    assert (await twin.get_desired())["$version"] == 1


async def test_arm_replaces_the_rules_and_keeps_the_log():
    twin, _, _ = await connected(TwinFault("fail_twin_get"))
    with pytest.raises(TwinError):
        await twin.get_desired()
    twin.arm([TwinFault("lose_reported_ack")])
    await twin.get_desired()
    assert [r.kind for r in twin.faults.rules] == ["lose_reported_ack"]
    assert [e.kind for e in twin.faults.fired()] == ["fail_twin_get"]


async def test_the_client_reconnects_on_its_own_and_redelivers_a_moved_desired_section():
    """azure-iot-device reconnects after a drop (connection_retry) and hands over the whole
    desired section when $version moved while it was away (docs/iothub.md)."""
    twin, clock, got = await connected(TwinFault("drop_connection", after_messages=1))
    await twin.get_desired()  # the device has $version 1; then the connection goes
    twin.patch_desired({"v": 2})  # lost to it
    assert twin.next_due() == 10.0
    clock.advance(9.0)
    twin.tick()
    assert not twin.connected
    clock.advance(1.0)
    twin.tick()
    await settle()
    assert twin.connected and got == [{"v": 2, "$version": 2}] and twin.next_due() is None


async def test_the_client_does_not_redeliver_an_unchanged_section_nor_reconnect_while_refused():
    twin, clock, got = await connected(
        TwinFault("drop_connection", after_messages=1),
        TwinFault("refuse_connect", at_s=5.0, for_s=10.0),
    )
    await twin.get_desired()
    clock.advance(10.0)
    twin.tick()
    assert not twin.connected and twin.next_due() == 20.0  # refused: try again later
    clock.advance(10.0)
    twin.tick()
    await settle()
    assert twin.connected and got == []


async def test_a_device_that_went_away_is_not_reconnected_by_its_client():
    """A power cut or the agent's close: no client is left to reconnect."""
    twin, clock, _ = await connected(TwinFault("drop_connection", after_messages=1))
    await twin.get_desired()
    twin.disconnect()
    clock.advance(60.0)
    twin.tick()
    assert not twin.connected and twin.next_due() is None


async def test_closing_cancels_the_wake_up_of_a_patch_still_held():
    """A delayed patch waits on the virtual network (sim/loopback.py); a twin closed
    before it falls due leaves no task behind, which garbage-collected while pending is
    asyncio's "Task was destroyed but it is pending!" on a long fuzz run's stderr."""
    clock = VirtualClock()
    clock.attach_network()
    twin = FaultyTwin(clock=clock)
    twin.arm([TwinFault("delay_desired", delay_s=600.0)])
    twin.on_desired_patch(lambda patch: None)
    await twin.connect()
    twin.patch_desired({"a": 1})
    (waker,) = twin._wakers
    await twin.close()
    await settle()
    assert waker.cancelled() and not twin._wakers
