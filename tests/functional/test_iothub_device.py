"""The local IoT Hub's device endpoint against the real azure-iot-device SDK (sync and
asyncio) over MQTT/TLS, and a bare paho client where the CONNACK code itself is checked.

IoT Hub docs, "Communicate with an IoT hub using the MQTT protocol": twin GET, reported
PATCH with the new ``$version``, desired PATCH pushed, ``$rid`` correlation; the SDK
connects with ``CleanSession = 0`` and never subscribes again after a reconnect.
"""

import asyncio
import time

import pytest
from azure.iot.device import X509
from azure.iot.device.exceptions import CredentialError

from sim.cloud.hub import Identity
from sim.cloud.iothub import mqtt
from sim.cloud.iothub.certs import CertificateAuthority
from sim.cloud.iothub.sas import new_key
from tests.common.iothub import (
    PAHO_RECONNECT_LEAK,
    aio_device_client,
    device_client,
    device_token,
    raw_connack,
    username,
    wait_until,
)

pytestmark = pytest.mark.sim


def test_sync_client_gets_patches_and_receives_desired(iothub):
    """get_twin answers both sections with $version; a reported patch merges and moves
    reported $version; a desired change reaches the subscribed device as a patch."""
    key = iothub.add_device("dev-1", tags={"productType": "washer"})
    client = device_client(iothub, "dev-1", key)
    patches = []
    try:
        client.connect()
        client.on_twin_desired_properties_patch_received = patches.append
        assert client.get_twin() == {"desired": {"$version": 1}, "reported": {"$version": 1}}
        client.patch_twin_reported_properties({"extFwInfo": {"Status": "downloading"}})
        client.patch_twin_reported_properties({"extFwInfo": {"Progress": 10}})
        iothub.call(lambda h: h.twin("dev-1").patch_desired({"extFwInfo": {"version": 2}}))
        wait_until(lambda: bool(patches))
        twin = client.get_twin()
    finally:
        client.shutdown()
    assert patches == [{"extFwInfo": {"version": 2}, "$version": 2}]
    assert twin["reported"] == {
        "extFwInfo": {"Status": "downloading", "Progress": 10},
        "$version": 3,
    }
    assert iothub.twin("dev-1")["properties"]["reported"]["extFwInfo"]["Progress"] == 10


async def test_asyncio_client_correlates_concurrent_requests_by_rid(iothub):
    """Twenty twin requests in flight at once each complete with their own answer: the
    hub answers on $iothub/twin/res/{status}/?$rid= with the request's $rid."""
    key = iothub.add_device("dev-a")
    client = aio_device_client(iothub, "dev-a", key)
    await client.connect()
    try:
        patches = [{"n": i} for i in range(10)]
        results = await asyncio.gather(
            *(client.patch_twin_reported_properties(p) for p in patches),
            *(client.get_twin() for _ in range(10)),
        )
    finally:
        await client.shutdown()
    twins = results[10:]
    assert all(t["desired"] == {"$version": 1} for t in twins)
    assert iothub.twin("dev-a")["properties"]["reported"]["$version"] == 11


@PAHO_RECONNECT_LEAK
def test_subscriptions_survive_a_reconnect_as_clean_session_0_promises(iothub):
    """MQTT 3.1.1 section 3.1.2.4: with CleanSession = 0 the server keeps the session's
    subscriptions. The SDK subscribes once; after the hub drops it and it reconnects on
    its own, a desired patch must still reach it (and twin GET still be answered)."""
    key = iothub.add_device("dev-r")
    client = device_client(iothub, "dev-r", key, connection_retry=True)
    patches = []
    try:
        client.on_twin_desired_properties_patch_received = patches.append
        client.get_twin()
        assert iothub.drop("dev-r") == ["dev-r"]
        wait_until(lambda: iothub.connected() == ["dev-r"] and client.connected)
        iothub.call(lambda h: h.twin("dev-r").patch_desired({"k": 1}))
        wait_until(lambda: {"k": 1, "$version": 2} in patches)
        assert client.get_twin()["desired"]["k"] == 1
    finally:
        client.shutdown()
    assert iothub.call(lambda h: h.twin("dev-r").connect_count) >= 2


def test_wrong_key_is_refused_with_connack_5_and_the_sdk_raises_credential_error(iothub):
    """IoT Hub answers a bad SAS with CONNACK 0x05 (not authorized); paho's mapping in the
    SDK turns it into CredentialError."""
    iothub.add_device("dev-k")
    client = device_client(iothub, "dev-k", new_key())
    with pytest.raises(CredentialError):
        client.connect()
    client.shutdown()
    assert ("dev-k", mqtt.REFUSED_NOT_AUTHORIZED) in iothub.refused


@pytest.mark.parametrize(
    "case, expected",
    [
        ("good", mqtt.ACCEPTED),
        ("expired", mqtt.REFUSED_NOT_AUTHORIZED),
        ("other device's token", mqtt.REFUSED_NOT_AUTHORIZED),
        ("unknown device", mqtt.REFUSED_NOT_AUTHORIZED),
        ("disabled device", mqtt.REFUSED_SERVER_UNAVAILABLE),
        ("client id differs from username", mqtt.REFUSED_IDENTIFIER),
        ("no password, no certificate", mqtt.REFUSED_NOT_AUTHORIZED),
    ],
)
def test_connack_codes_as_iot_hub_gives_them(iothub, case, expected):
    """The codes a bare MQTT client sees (IoT Hub MQTT support; MQTT 3.1.1 section
    3.2.2.3): 5 for every credential problem, 3 for a disabled device, 2 for an
    identifier that does not match the username."""
    key_a = iothub.add_device("dev-a")
    key_b = iothub.add_device("dev-b")
    disabled = Identity("sas", primary_key=key_a, secondary_key=key_a, status="disabled")
    iothub.call(lambda h: h.add_device("dev-off", identity=disabled))
    client_id, user, password = (
        "dev-a",
        username(iothub, "dev-a"),
        device_token(iothub, "dev-a", key_a),
    )
    if case == "expired":
        password = device_token(iothub, "dev-a", key_a, ttl_s=-10)
    elif case == "other device's token":
        password = device_token(iothub, "dev-b", key_b)
    elif case == "unknown device":
        client_id, user = "dev-zz", username(iothub, "dev-zz")
        password = device_token(iothub, "dev-zz", key_a)
    elif case == "disabled device":
        client_id, user = "dev-off", username(iothub, "dev-off")
        password = device_token(iothub, "dev-off", key_a)
    elif case == "client id differs from username":
        client_id = "dev-b"
    elif case == "no password, no certificate":
        password = None
    code = raw_connack(iothub, client_id=client_id, username=user, password=password)
    assert code == expected


def test_x509_device_signed_by_the_registered_ca_connects_and_others_do_not(iothub, tmp_path):
    """IoT Hub X.509 CA authentication: a certificate chained to a registered CA whose
    subject CN is the device id is accepted; one naming another device is refused (5),
    and one from an unregistered CA fails the TLS handshake."""
    iothub.call(lambda h: h.add_device("x509-dev", identity=Identity("certificateAuthority")))
    good = iothub.device_ca.issue_client("x509-dev").write(tmp_path, "good")
    other = iothub.device_ca.issue_client("someone-else").write(tmp_path, "other")
    rogue = CertificateAuthority.create("rogue").issue_client("x509-dev").write(tmp_path, "rogue")
    from azure.iot.device import IoTHubDeviceClient

    client = IoTHubDeviceClient.create_from_x509_certificate(
        x509=X509(str(good[0]), str(good[1])),
        hostname=iothub.hostname,
        device_id="x509-dev",
        gateway_hostname=iothub.host,
        server_verification_cert=iothub.ca_cert.read_text(),
        connection_retry=False,
    )
    try:
        client.connect()
        client.patch_twin_reported_properties({"auth": "x509"})
    finally:
        client.shutdown()
    assert iothub.twin("x509-dev")["properties"]["reported"]["auth"] == "x509"
    user = username(iothub, "x509-dev")
    assert raw_connack(iothub, client_id="x509-dev", username=user, password=None, cert=other) == 5
    with pytest.raises(Exception):  # noqa: B017 - the TLS handshake fails, in paho or ssl
        raw_connack(iothub, client_id="x509-dev", username=user, password=None, cert=rogue)


async def test_fifty_devices_connected_at_once_each_gets_only_its_own_twin(iothub):
    """Fifty asyncio clients connected together; each reports its own id and receives
    only the desired patch addressed to it (topics carry no device id: the hub must
    know which connection is which device)."""
    ids = [f"gw-{i:02d}" for i in range(50)]
    keys = {i: iothub.add_device(i) for i in ids}
    clients = {i: aio_device_client(iothub, i, keys[i]) for i in ids}
    received: dict[str, list] = {i: [] for i in ids}
    started = time.perf_counter()
    await asyncio.gather(*(c.connect() for c in clients.values()))
    try:
        assert len(iothub.connected()) == 50
        for i, c in clients.items():
            c.on_twin_desired_properties_patch_received = received[i].append
        await asyncio.gather(
            *(c.patch_twin_reported_properties({"me": i}) for i, c in clients.items())
        )
        await iothub.acall(lambda h: [h.twin(i).patch_desired({"for": i}) for i in ids[::2]])
        deadline = time.monotonic() + 10
        while sum(map(len, received.values())) < 25 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
    finally:
        await asyncio.gather(*(c.shutdown() for c in clients.values()))
    assert time.perf_counter() - started < 120  # a liveness bound, not a speed target
    for n, i in enumerate(ids):
        assert iothub.twin(i)["properties"]["reported"]["me"] == i
        assert received[i] == ([{"for": i, "$version": 2}] if n % 2 == 0 else [])
