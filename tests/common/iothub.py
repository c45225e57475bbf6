"""Helpers for tests against the local IoT Hub: device clients of the real SDK, a raw
MQTT client (paho, which the device SDK itself uses) to read CONNACK codes exactly, and
waiting on hub state from the test's thread."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
import pytest
from azure.iot.device import IoTHubDeviceClient
from azure.iot.device.aio import IoTHubDeviceClient as AioDeviceClient

from sim.cloud.iothub import LocalIoTHub
from sim.cloud.iothub.sas import make_token


def device_client(hub: LocalIoTHub, device_id: str, key: str, **kwargs: Any) -> Any:
    """A sync ``IoTHubDeviceClient`` for a SAS device, through the hub's gateway host."""
    kwargs.setdefault("connection_retry", False)
    return IoTHubDeviceClient.create_from_connection_string(
        hub.device_connection_string(device_id, key),
        server_verification_cert=hub.ca_cert.read_text(),
        **kwargs,
    )


def aio_device_client(hub: LocalIoTHub, device_id: str, key: str, **kwargs: Any) -> Any:
    kwargs.setdefault("connection_retry", False)
    return AioDeviceClient.create_from_connection_string(
        hub.device_connection_string(device_id, key),
        server_verification_cert=hub.ca_cert.read_text(),
        **kwargs,
    )


def raw_connack(
    hub: LocalIoTHub,
    *,
    client_id: str,
    username: str,
    password: str | None,
    cert: tuple[str, str] | None = None,
    timeout_s: float = 5.0,
) -> int:
    """Connect with a bare MQTT 3.1.1 client over TLS; the CONNACK return code."""
    got: list[int] = []
    done = threading.Event()
    client = paho.Client(client_id=client_id, clean_session=False, protocol=paho.MQTTv311)
    context = ssl.create_default_context(cafile=str(hub.ca_cert))
    if cert is not None:
        context.load_cert_chain(*cert)
    client.tls_set_context(context)
    client.username_pw_set(username, password)

    def on_connect(c: Any, userdata: Any, flags: Any, rc: int) -> None:
        got.append(rc)
        done.set()

    client.on_connect = on_connect
    client.connect(hub.host, hub.mqtt_port)
    client.loop_start()
    try:
        if not done.wait(timeout_s):
            raise TimeoutError("no CONNACK")
    finally:
        client.disconnect()
        client.loop_stop()
    return got[0]


def device_token(hub: LocalIoTHub, device_id: str, key: str, *, ttl_s: float = 3600) -> str:
    return make_token(f"{hub.hostname}/devices/{device_id}", key, ttl_s=ttl_s)


def username(hub: LocalIoTHub, device_id: str) -> str:
    return f"{hub.hostname}/{device_id}/?api-version=2019-10-01"


def wait_until(predicate: Callable[[], bool], *, timeout_s: float = 10.0) -> None:
    """Poll ``predicate`` (real loopback traffic: the hub is a real network peer)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.005)


# paho 1.6 (under the device SDK) leaks its internal socketpair when the SDK forces a
# reconnect (``_force_transport_disconnect_and_cleanup`` stops its loop from inside the
# loop); pytest reports those as unraisable ResourceWarnings. Tests that make the SDK
# reconnect carry this mark (it matches unclosed-socket warnings only), no other test does.
PAHO_RECONNECT_LEAK = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning"
)
