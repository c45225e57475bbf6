"""The in-process twin: IoT Hub's device-twin behaviour as the agent sees it ("Understand
and use device twins": desired/reported sections, ``$version``, patches while connected,
JSON merge patch semantics) and the operator's publishing of an OTA (reference design,
operator tooling: ota.py)."""

import asyncio
import hashlib

import pytest

from agent.hosts import LOOPBACK_HOSTS
from agent.instruction import parse_instruction
from agent.twin import Twin, TwinError
from sim.cloud.twin import InProcessTwin, ota_desired_patch, publish_ota

pytestmark = pytest.mark.sim

IMAGE = bytes(range(256)) * 40
URL = "http://127.0.0.1:10000/devstoreaccount1/ota/firmware.bin"
SAS = "sv=2019-02-02&sr=c&sp=rl&sig=abc%3D"


async def settle() -> None:
    """Let call_soon deliveries run."""
    for _ in range(3):
        await asyncio.sleep(0)


async def connected(twin: InProcessTwin) -> list[dict]:
    got: list[dict] = []
    twin.on_desired_patch(got.append)
    await twin.connect()
    return got


def test_in_process_twin_satisfies_the_twin_protocol() -> None:
    """The agent depends on agent.twin.Twin only; the simulation must fit it."""
    assert isinstance(InProcessTwin(), Twin)


async def test_get_desired_returns_the_whole_section_with_version() -> None:
    """get_twin gives the whole desired section with its $version (azure.md)."""
    twin = InProcessTwin({"telemetryInterval": 30})
    await twin.connect()
    assert await twin.get_desired() == {"telemetryInterval": 30, "$version": 1}


async def test_every_desired_change_bumps_version_by_one() -> None:
    """IoT Hub increments desired $version on every update of the section."""
    twin = InProcessTwin()
    assert twin.patch_desired({"a": 1}) == 2
    assert twin.set_desired({"b": 2}) == 3
    assert twin.desired["$version"] == 3


async def test_patches_arrive_in_order_with_their_version() -> None:
    """Desired patches reach the device in $version order (desired patch topic
    $iothub/twin/PATCH/properties/desired/?$version=v)."""
    twin = InProcessTwin()
    got = await connected(twin)
    twin.patch_desired({"a": 1})
    twin.patch_desired({"b": 2})
    twin.patch_desired({"a": None})
    await settle()
    assert got == [{"a": 1, "$version": 2}, {"b": 2, "$version": 3}, {"a": None, "$version": 4}]


async def test_patch_is_not_delivered_reentrantly() -> None:
    """Delivery goes through the event loop, as a network would: never inside the
    operator's call (the agent's handler must not run within the test's statement)."""
    twin = InProcessTwin()
    got = await connected(twin)
    twin.patch_desired({"a": 1})
    assert got == []
    await settle()
    assert len(got) == 1


async def test_desired_patches_merge_into_the_section() -> None:
    """Desired updates merge (RFC 7386): objects key by key, null deletes."""
    twin = InProcessTwin({"extFwInfo": {"version": 1, "size": 5}, "other": 1})
    twin.patch_desired({"extFwInfo": {"version": 2}, "other": None})
    assert twin.desired == {"extFwInfo": {"version": 2, "size": 5}, "$version": 2}


async def test_partial_patch_is_delivered_as_given() -> None:
    """IoT Hub sends the patch, not the merged result: a patch with only extFwInfo.version
    reaches the device missing the other keys (weakness #3's trigger)."""
    twin = InProcessTwin(ota_desired_patch(version=1, image=IMAGE, url=URL, sas=SAS))
    got = await connected(twin)
    twin.patch_desired({"extFwInfo": {"version": 2}})
    await settle()
    assert got == [{"extFwInfo": {"version": 2}, "$version": 2}]


async def test_set_desired_sends_null_for_removed_keys() -> None:
    """Replacing the section is a patch that deletes what is gone (RFC 7386 null)."""
    twin = InProcessTwin({"a": 1, "b": 2})
    got = await connected(twin)
    twin.set_desired({"b": 3})
    await settle()
    assert got == [{"a": None, "b": 3, "$version": 2}]
    assert twin.desired == {"b": 3, "$version": 2}


async def test_patches_while_disconnected_are_lost_but_desired_changes() -> None:
    """A disconnected device receives nothing; the cloud's desired state still moves."""
    twin = InProcessTwin()
    got = await connected(twin)
    twin.disconnect()
    twin.patch_desired({"a": 1})
    await settle()
    assert got == [] and twin.desired == {"a": 1, "$version": 2}


async def test_patch_in_flight_at_disconnect_is_lost() -> None:
    """A patch sent just before the link drops never arrives (MQTT QoS is not end-to-end
    across a dropped session for an in-flight publish)."""
    twin = InProcessTwin()
    got = await connected(twin)
    twin.patch_desired({"a": 1})
    twin.disconnect()
    await settle()
    assert got == []


async def test_reconnect_redelivers_the_whole_desired_section() -> None:
    """After a reconnect the device gets the whole desired section again (the original's
    Azure Sphere SDK delivers the full twin; the agent resumes from it)."""
    twin = InProcessTwin()
    got = await connected(twin)
    twin.disconnect()
    twin.patch_desired({"extFwInfo": {"version": 3}})
    await twin.reconnect()
    await settle()
    assert got == [{"extFwInfo": {"version": 3}, "$version": 2}]
    assert twin.connect_count == 2


async def test_reconnect_without_redelivery_sends_nothing() -> None:
    """azure-iot-device redelivers only when $version moved: redeliver=False models that."""
    twin = InProcessTwin({"a": 1})
    got = await connected(twin)
    await twin.reconnect(redeliver=False)
    await settle()
    assert got == []


async def test_device_calls_while_disconnected_raise_twin_error() -> None:
    """A device without a link cannot read or report: TwinError, the "try later" signal."""
    twin = InProcessTwin()
    await twin.connect()
    twin.disconnect()
    with pytest.raises(TwinError):
        await twin.report({"x": 1})
    with pytest.raises(TwinError):
        await twin.get_desired()


async def test_reported_patches_are_logged_and_merged() -> None:
    """Reported patches merge into the reported section (null deletes) and each is kept
    in order in reported_log for tests to read the agent's history."""
    twin = InProcessTwin()
    await twin.connect()
    await twin.report({"extFwInfo": {"Status": "downloading", "Progress": 10}})
    await twin.report({"extFwInfo": {"Status": "applied", "Progress": None, "Version": 2}})
    assert twin.reported == {"extFwInfo": {"Status": "applied", "Version": 2}}
    assert [p["extFwInfo"]["Status"] for p in twin.reported_log] == ["downloading", "applied"]
    assert twin.full_twin()["reported"]["$version"] == 3


async def test_reported_log_is_not_aliased_to_the_callers_dict() -> None:
    """The log records what was sent, even if the agent later mutates its dict."""
    twin = InProcessTwin()
    await twin.connect()
    patch = {"extFwInfo": {"Status": "downloading"}}
    await twin.report(patch)
    patch["extFwInfo"]["Status"] = "changed"
    assert twin.reported_log == [{"extFwInfo": {"Status": "downloading"}}]


async def test_handler_error_is_kept_and_delivery_continues() -> None:
    """An agent bug in the handler must be visible to the test, not swallowed, and must not
    stop later patches."""
    twin = InProcessTwin()
    got: list[dict] = []

    def handler(patch: dict) -> None:
        if patch["$version"] == 2:
            raise RuntimeError("agent bug")
        got.append(patch)

    twin.on_desired_patch(handler)
    await twin.connect()
    twin.patch_desired({"a": 1})
    twin.patch_desired({"a": 2})
    await settle()
    assert [str(e) for e in twin.handler_errors] == ["agent bug"]
    assert got == [{"a": 2, "$version": 3}]


async def test_close_then_a_new_agent_connects_with_its_own_handler() -> None:
    """After a power cycle a new agent instance connects to the same twin; the old
    agent's handler must not receive anything."""
    twin = InProcessTwin()
    old = await connected(twin)
    await twin.close()
    new = await connected(twin)
    twin.patch_desired({"a": 1})
    await settle()
    assert old == [] and new == [{"a": 1, "$version": 2}]


async def test_wait_reported_returns_once_the_predicate_holds() -> None:
    """Tests wait for a reported state instead of sleeping."""
    twin = InProcessTwin()
    await twin.connect()

    def applied(reported: dict) -> bool:
        return reported.get("extFwInfo", {}).get("Status") == "applied"

    waiter = asyncio.ensure_future(twin.wait_reported(applied))
    await twin.report({"extFwInfo": {"Status": "downloading"}})
    await settle()
    assert not waiter.done()
    await twin.report({"extFwInfo": {"Status": "applied"}})
    assert (await waiter)["extFwInfo"]["Status"] == "applied"


# --- the operator's side -----------------------------------------------------------------


def test_published_instruction_carries_size_and_uppercase_sha256() -> None:
    """ota.py computes the image's size and SHA-256 in upper case (reference design,
    operator tooling)."""
    info = ota_desired_patch(version=4, image=IMAGE, url=URL, sas=SAS)["extFwInfo"]
    assert info == {
        "version": 4,
        "size": len(IMAGE),
        "url": URL,
        "sas": SAS,
        "sha256": hashlib.sha256(IMAGE).hexdigest().upper(),
    }


async def test_published_ota_reaches_the_agent_as_a_valid_instruction() -> None:
    """What the operator publishes, the agent parses: the two sides agree on the contract."""
    twin = InProcessTwin()
    got = await connected(twin)
    version = publish_ota(twin, version=4, image=IMAGE, url=URL, sas=SAS)
    await settle()
    assert version == 2 and len(got) == 1
    instruction = parse_instruction(got[0], allow_http_loopback=True, storage_hosts=LOOPBACK_HOSTS)
    assert instruction is not None
    assert instruction.sha256 == hashlib.sha256(IMAGE).digest()
    assert instruction.download_url() == f"{URL}?{SAS}"
