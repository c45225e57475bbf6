"""The agent over the real cloud path: its own AzureIoTTwin (azure-iot-device, MQTT/TLS)
provisioned through the local hub's DPS, the instruction from a configuration created
by the deploy tool with the real azure-iot-hub SDK, the image from the blob server.

Issue 10, "The agent over it" and "Done when"."""

import asyncio
import hashlib
import random

import pytest

from agent.engine import AgentConfig
from agent.hosts import LOOPBACK_HOSTS
from agent.report import to_reported
from deploy.ota import Release, publish
from sim.clock import VirtualClock
from sim.cloud.blobserver import BlobServer
from sim.cloud.faults.plan import FaultPlan
from sim.cloud.iothub import Enrollment
from sim.cloud.iothub.device_twin import HubTwin
from sim.cloud.iothub.sas import derive_device_key, new_key
from sim.device import SimDevice, applied, reported_status
from tests.common.iothub import PAHO_RECONNECT_LEAK, device_token, raw_connack, username

pytestmark = [pytest.mark.sim, PAHO_RECONNECT_LEAK]

PRODUCT, GROUP = "washer", "field_test"


def _image(seed: int, size: int = 64 * 1024) -> bytes:
    return random.Random(f"iothub:{seed}").randbytes(size)


def _enroll(hub, tags):
    key = new_key()
    hub.enroll(
        Enrollment(f"g-{tags['deviceGroup']}", group=True, primary_key=key, initial_tags=tags)
    )
    return key


def _device(hub, registration_id, group_key, *, seed):
    twin = HubTwin.provisioned(
        hub, registration_id, symmetric_key=derive_device_key(group_key, registration_id)
    )
    clock = VirtualClock(io_time_scale=0.05)
    return SimDevice(
        seed=seed,
        config=AgentConfig(allow_http_loopback=True, storage_hosts=LOOPBACK_HOSTS),
        clock=clock,
        twin=twin,
    )


async def _wait(predicate, timeout_s=30.0):
    async with asyncio.timeout(timeout_s):
        while not await predicate():
            await asyncio.sleep(0.01)


async def test_agent_provisioned_by_dps_applies_a_configuration_and_survives_a_hub_restart(
    iothub,
):
    """One device: DPS registration, MQTT/TLS, a configuration made by the deploy tool
    through azure-iot-hub; mid-download the hub stops (reports are kept) and restarts
    while the desired section moves on, so the SDK redelivers it: the agent takes it as
    a continuation and ends applied, its reports arriving in the order made."""
    key = _enroll(iothub, {"productType": PRODUCT, "deviceGroup": GROUP})
    image = _image(1, 256 * 1024)
    plan = FaultPlan.from_dict(
        {"rules": [{"id": "slow", "fault": "bandwidth", "params": {"rate_bps": 400_000}}]}
    )
    async with BlobServer(plan=plan) as blobs:
        device = _device(iothub, "gw-solo", key, seed=1)
        run = asyncio.ensure_future(device.run_until(applied(1), max_wall_s=60))
        await _wait(
            lambda: iothub.acall(
                lambda h: "gw-solo" in h.device_ids and h.twin("gw-solo").connect_count > 0
            )
        )
        await publish(
            Release(image=image, version=1, product=PRODUCT, group=GROUP),
            storage=blobs.connection_string,
            iothub=iothub.service_connection_string,
        )

        def status(h):
            return reported_status(h.twin("gw-solo").reported).get("Status")

        await _wait(lambda: iothub.acall(lambda h: status(h) == "downloading"))
        await asyncio.get_running_loop().run_in_executor(None, iothub.stop)
        await iothub.acall(lambda h: h.twin("gw-solo").patch_desired({"note": "while away"}))
        await asyncio.sleep(0.3)
        await asyncio.get_running_loop().run_in_executor(None, iothub.start)
        result = await asyncio.wait_for(run, 60)
    assert result.reached and bytes(device.target.image) == image
    made = [to_reported(r) for agent in device.agents for r in agent.reports]
    assert device.twin.reported_log == made, "a report made while offline was lost"
    log = [reported_status(p) for p in device.twin.reported_log]
    statuses = [s.get("Status") for s in log]
    assert statuses[-2:] == ["applying", "applied"] and statuses.count("applied") == 1
    progress = [s["Downloaded"] for s in log if s.get("Status") == "downloading"]
    assert progress == sorted(progress), "reports arrived out of order"
    assert iothub.call(lambda h: h.twin("gw-solo").connect_count) >= 2
    twin = iothub.twin("gw-solo")
    assert twin["configurations"]["ota_v1"]["status"] == "Applied"


async def test_fifty_devices_by_dps_the_targeted_apply_the_others_receive_nothing(iothub):
    """Done when: 50 devices provisioned through DPS connect with the real device SDK;
    the deploy tool publishes to the blob server and the hub through the real SDKs;
    the 30 targeted devices download, verify, apply and report applied; the 20 others
    receive nothing; the configuration's metrics count them; a wrong key is refused."""
    targeted_key = _enroll(iothub, {"productType": PRODUCT, "deviceGroup": GROUP})
    other_key = _enroll(iothub, {"productType": PRODUCT, "deviceGroup": "pilot"})
    image = _image(2, 32 * 1024)
    devices = {}
    for i in range(50):
        name = f"gw-{i:02d}"
        devices[name] = _device(iothub, name, targeted_key if i < 30 else other_key, seed=i)
    async with BlobServer() as blobs:
        runs = {
            n: asyncio.ensure_future(d.run_until(applied(1), max_wall_s=120))
            for n, d in devices.items()
        }
        await _wait(lambda: iothub.acall(lambda h: len(h.device_ids) == 50), 60)
        await _wait(
            lambda: iothub.acall(lambda h: all(h.twin(n).connect_count for n in h.device_ids)), 60
        )
        await publish(
            Release(image=image, version=1, product=PRODUCT, group=GROUP),
            storage=blobs.connection_string,
            iothub=iothub.service_connection_string,
        )
        targeted = [n for i, n in enumerate(devices) if i < 30]
        results = await asyncio.wait_for(asyncio.gather(*(runs[n] for n in targeted)), 120)
        await asyncio.sleep(0.3)
        for run in runs.values():
            run.cancel()
        await asyncio.gather(*runs.values(), return_exceptions=True)
    assert all(r.reached for r in results)
    for i, (name, device) in enumerate(devices.items()):
        if i < 30:
            assert (
                hashlib.sha256(bytes(device.target.image)).digest()
                == hashlib.sha256(image).digest()
            )
        else:
            assert "extFwInfo" not in iothub.twin(name)["properties"]["desired"]
            assert bytes(device.target.image) == b""
    from azure.iot.hub import IoTHubConfigurationManager

    iothub.evaluate()
    cm = IoTHubConfigurationManager.from_connection_string(iothub.service_connection_string)
    config = cm.get_configuration("ota_v1")
    assert config.system_metrics.results == {"targetedCount": 30, "appliedCount": 30}
    assert config.metrics.results["applied"] == 30
    wrong = raw_connack(
        iothub,
        client_id="gw-00",
        username=username(iothub, "gw-00"),
        password=device_token(iothub, "gw-00", new_key()),  # signed with a wrong key
    )
    assert wrong == 5
