"""Twin-channel faults (sim/cloud/twin_faults.py) as the real device SDK meets them: each
fault of the vocabulary, through the Python API and the HTTP control API."""

import asyncio
import json
import ssl
import time
import urllib.request

import pytest
from azure.iot.device.exceptions import ClientError, ConnectionFailedError, ServiceError

from tests.common.iothub import PAHO_RECONNECT_LEAK, aio_device_client, device_client, wait_until

pytestmark = [pytest.mark.sim, PAHO_RECONNECT_LEAK]


def _connected_client(hub, device_id="dev-f", **kwargs):
    key = hub.add_device(device_id)
    client = device_client(hub, device_id, key, **kwargs)
    client.connect()
    return client


def test_drop_connection_after_a_message_count(iothub):
    """The connection closes right after the device's Nth PUBLISH on it (and not before)."""
    client = _connected_client(iothub)
    try:
        iothub.faults.drop_connection("dev-f", after_messages=3)
        client.patch_twin_reported_properties({"n": 1})  # subscribe + publish: 1 publish
        client.patch_twin_reported_properties({"n": 2})
        assert client.connected
        client.patch_twin_reported_properties({"n": 3})
        wait_until(lambda: not client.connected)
    finally:
        client.shutdown()
    assert [e.kind for e in iothub.faults.fired(device="dev-f")] == ["drop_connection"]
    assert iothub.twin("dev-f")["properties"]["reported"]["n"] == 3  # the third was served


def test_drop_connection_at_a_time(iothub):
    """A timed drop closes the device's connection once its moment has come."""
    client = _connected_client(iothub)
    try:
        armed = time.monotonic()
        iothub.faults.drop_connection("dev-f", at_s=0.2)
        wait_until(lambda: not client.connected, timeout_s=5)
        assert time.monotonic() - armed >= 0.2
    finally:
        client.shutdown()
    assert iothub.faults.fired("drop_connection", "dev-f")


def test_refuse_connects_by_count_and_by_window(iothub):
    """IoT Hub down: CONNACK 3 (server unavailable), which the SDK raises as a connection
    failure (not a credential error); once the rule is spent the device connects.

    Each attempt is a fresh client, as a rebooted gateway's is: the SDK reusing a client
    right after a refusal races its own close of the refused connection (a client-side
    matter, not the hub's)."""
    key = iothub.add_device("dev-f")

    def attempt() -> None:
        client = device_client(iothub, "dev-f", key)
        try:
            client.connect()
            client.disconnect()
        finally:
            client.shutdown()

    iothub.faults.refuse_connects("dev-f", count=1)
    with pytest.raises(ConnectionFailedError):
        attempt()
    attempt()
    iothub.faults.refuse_connects(for_s=0.3)
    with pytest.raises(ConnectionFailedError):
        attempt()
    time.sleep(0.35)
    attempt()
    assert [code for device, code in iothub.refused] == [3, 3]


async def test_lose_reported_ack_applies_the_patch_but_never_answers(iothub):
    """The hub keeps the reported patch but its 204 never comes: the SDK's call stays
    pending (it has no timeout of its own; the agent's adapter must bound it)."""
    key = await asyncio.get_running_loop().run_in_executor(None, iothub.add_device, "dev-f")
    client = aio_device_client(iothub, "dev-f", key)
    await client.connect()
    try:
        iothub.faults.lose_reported_ack("dev-f")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.patch_twin_reported_properties({"lost": 1}), 0.5)
        await asyncio.wait_for(client.patch_twin_reported_properties({"next": 2}), 5)
    finally:
        await client.shutdown()
    reported = (await iothub.acall(lambda h: h.twin_json("dev-f")))["properties"]["reported"]
    assert reported["lost"] == 1 and reported["next"] == 2


def test_delay_desired_lets_a_later_patch_overtake(iothub):
    """A delayed desired patch arrives after the next one: the device sees $version 3
    before $version 2 (the adapter must not go back to 2)."""
    client = _connected_client(iothub)
    patches = []
    try:
        client.on_twin_desired_properties_patch_received = patches.append
        iothub.faults.delay_desired("dev-f", delay_s=0.3)
        iothub.call(lambda h: h.twin("dev-f").patch_desired({"v": 2}))
        iothub.call(lambda h: h.twin("dev-f").patch_desired({"v": 3}))
        wait_until(lambda: len(patches) == 2)
    finally:
        client.shutdown()
    assert [p["$version"] for p in patches] == [3, 2]


def test_duplicate_desired_delivers_the_same_patch_twice(iothub):
    client = _connected_client(iothub)
    patches = []
    try:
        client.on_twin_desired_properties_patch_received = patches.append
        iothub.faults.duplicate_desired("dev-f")
        iothub.call(lambda h: h.twin("dev-f").patch_desired({"v": 2}))
        wait_until(lambda: len(patches) == 2)
    finally:
        client.shutdown()
    assert patches == [{"v": 2, "$version": 2}] * 2


def test_fail_twin_get_answers_an_error_status_once(iothub):
    """The SDK fails the call (a ClientError caused by ServiceError naming the status) for a
    twin response >= 300; the next GET succeeds."""
    client = _connected_client(iothub)
    try:
        iothub.faults.fail_twin_get("dev-f", status=503)
        with pytest.raises(ClientError) as failed:
            client.get_twin()
        assert isinstance(failed.value.__cause__, ServiceError)
        assert "503" in str(failed.value.__cause__)
        assert client.get_twin()["desired"] == {"$version": 1}
    finally:
        client.shutdown()
    assert [e.kind for e in iothub.faults.fired()] == ["fail_twin_get"]


def test_control_api_arms_lists_and_clears_faults(iothub):
    """POST /_faults takes the same vocabulary as JSON; GET lists rules and events;
    DELETE clears; a bad rule is a 400 naming the field."""
    context = ssl.create_default_context(cafile=str(iothub.ca_cert))
    url = f"https://{iothub.service_host}/_faults"

    def call(method, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        try:
            with urllib.request.urlopen(request, context=context) as response:
                text = response.read()
                return response.status, json.loads(text) if text else None
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    status, rule = call("POST", {"fault": "fail_twin_get", "device": "dev-f", "status": 500})
    assert status == 201 and rule["fault"] == "fail_twin_get"
    status, error = call("POST", {"fault": "drop_connection"})
    assert status == 400 and "after_messages" in error["error"]
    client = _connected_client(iothub)
    try:
        with pytest.raises(ClientError):
            client.get_twin()
    finally:
        client.shutdown()
    status, listing = call("GET")
    assert listing["rules"] == [] and listing["events"][0]["kind"] == "fail_twin_get"
    iothub.faults.duplicate_desired()
    assert call("DELETE")[0] == 204 and iothub.faults.rules == []
