"""``python -m sim bench hub``: the local IoT Hub with the real device SDK.

Figures (medians over several runs): TLS connect of a SAS device, twin round trips
(``get_twin`` and a reported patch) against the same-run baseline of a bare TCP+TLS
echo round trip on the same loopback (what any network hub costs at least), and the
wall time of a rollout to 50 devices provisioned through DPS (configuration by the
deploy tool through azure-iot-hub, each device's agent downloading, verifying and
applying a 32 KiB image), next to a 5-device rollout (the per-device cost).
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import statistics
import tempfile
import threading
import time

from sim.cloud.iothub import LocalIoTHub, free_loopback_address


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _tls_echo_rtt(hub: LocalIoTHub, rounds: int) -> list[float]:
    """Baseline: one small write and its echo over TLS on loopback."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = hub.server_pair.write(tmp, "s")
        ctx.load_cert_chain(cert, key)
    srv = socket.create_server((hub.host, 0))
    port = srv.getsockname()[1]

    def serve() -> None:
        conn, _ = srv.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with ctx.wrap_socket(conn, server_side=True) as s:
            while data := s.recv(64):
                s.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    client_ctx = ssl.create_default_context(cafile=str(hub.ca_cert))
    out = []
    with socket.create_connection((hub.host, port)) as raw:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with client_ctx.wrap_socket(raw, server_hostname=hub.host) as s:
            for _ in range(rounds):
                t = time.perf_counter()
                s.sendall(b"x" * 40)
                s.recv(64)
                out.append(time.perf_counter() - t)
    srv.close()
    return out


def _device_figures(hub: LocalIoTHub, rounds: int) -> dict[str, list[float]]:
    from azure.iot.device import IoTHubDeviceClient

    figures: dict[str, list[float]] = {"connect": [], "get_twin": [], "patch": []}
    key = hub.add_device("bench-dev")
    for i in range(rounds):
        client = IoTHubDeviceClient.create_from_connection_string(
            hub.device_connection_string("bench-dev", key),
            server_verification_cert=hub.ca_cert.read_text(),
            connection_retry=False,
        )
        t = time.perf_counter()
        client.connect()
        figures["connect"].append(time.perf_counter() - t)
        client.get_twin()  # subscribes once
        for _ in range(5):
            t = time.perf_counter()
            client.get_twin()
            figures["get_twin"].append(time.perf_counter() - t)
            t = time.perf_counter()
            client.patch_twin_reported_properties({"i": i})
            figures["patch"].append(time.perf_counter() - t)
        client.shutdown()
    return figures


async def _rollout(hub: LocalIoTHub, devices: int, version: int) -> float:
    from agent.engine import AgentConfig
    from agent.hosts import LOOPBACK_HOSTS
    from deploy.ota import Release, publish
    from sim.clock import VirtualClock
    from sim.cloud.blobserver import BlobServer
    from sim.cloud.iothub import Enrollment
    from sim.cloud.iothub.device_twin import HubTwin
    from sim.cloud.iothub.sas import derive_device_key, new_key
    from sim.device import SimDevice, applied

    group = f"g{devices}-{time.monotonic_ns()}"
    product = f"p{devices}x{time.monotonic_ns() % 100000}"
    key = new_key()
    hub.enroll(Enrollment(group, group=True, primary_key=key,
                          initial_tags={"productType": product, "deviceGroup": "g"}))  # fmt: skip
    image = os.urandom(32 * 1024)
    sims = []
    for i in range(devices):
        rid = f"{group}-{i:02d}"
        twin = HubTwin.provisioned(hub, rid, symmetric_key=derive_device_key(key, rid))
        config = AgentConfig(allow_http_loopback=True, storage_hosts=LOOPBACK_HOSTS)
        sims.append(SimDevice(seed=i, config=config,
                              clock=VirtualClock(io_time_scale=0.05), twin=twin))  # fmt: skip
    async with BlobServer() as blobs:
        started = time.perf_counter()
        runs = [asyncio.ensure_future(d.run_until(applied(version), max_wall_s=300)) for d in sims]
        while (await hub.acall(lambda h: sum(1 for n in h.device_ids if n.startswith(group)
                                             and h.twin(n).connect_count))) < devices:  # fmt: skip
            await asyncio.sleep(0.01)
        release = Release(image=image, version=version, product=product, group="g")
        await publish(
            release, storage=blobs.connection_string, iothub=hub.service_connection_string
        )
        results = await asyncio.gather(*runs)
        wall = time.perf_counter() - started
    if not all(r.reached for r in results):
        raise RuntimeError("a device did not apply the rollout")
    return wall


def main(argv: list[str]) -> int:
    rounds = 5
    with LocalIoTHub(host=free_loopback_address(), evaluation_interval_s=3600) as hub:
        os.environ["REQUESTS_CA_BUNDLE"] = str(hub.ca_cert)
        baseline = _tls_echo_rtt(hub, 50)
        figures = _device_figures(hub, rounds)
        small = [asyncio.run(_rollout(hub, 5, v)) for v in (1, 2, 3)]
        large = [asyncio.run(_rollout(hub, 50, v)) for v in (4, 5, 6)]
    base = _median_ms(baseline)
    print("local IoT Hub, real azure-iot-device over MQTT/TLS on loopback (medians)")
    print(f"  TLS echo round trip (baseline)   {base:7.2f} ms")
    print(f"  connect (TLS + CONNACK)          {_median_ms(figures['connect']):7.2f} ms")
    for name, label in (
        ("get_twin", "twin GET round trip"),
        ("patch", "reported patch round trip"),
    ):
        value = _median_ms(figures[name])
        print(f"  {label:<32} {value:7.2f} ms ({value / base:.1f} x baseline)")
    s, big = statistics.median(small), statistics.median(large)
    print(f"  rollout, 5 devices via DPS       {s:7.2f} s wall")
    print(
        f"  rollout, 50 devices via DPS      {big:7.2f} s wall ({big / s:.1f} x the 5-device run)"
    )
    return 0
