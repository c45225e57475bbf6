"""The simulated device: reboots after cuts, bounded runs, many devices in one process."""

import asyncio
import hashlib
import random

import pytest

from sim.cloud.blobserver import BlobServer
from sim.cloud.twin import publish_ota
from sim.device import SimDevice, applied

pytestmark = pytest.mark.sim


def _image(seed: int, size: int = 48 * 1024) -> bytes:
    return random.Random(seed).randbytes(size)


async def test_a_device_with_nothing_to_do_gives_up_after_its_wall_time_bound():
    """An idle agent stops the virtual clock; ``max_wall_s`` still ends the run."""
    device = SimDevice(seed=1)
    result = await device.run_until(applied(1), max_wall_s=0.3)
    assert not result.reached
    assert result.boots == 1


async def test_power_cycle_kills_the_agent_wherever_it_is_and_a_new_one_boots():
    """Issue 4: ``power_cycle()`` kills the agent and the device boots a new agent."""
    image = _image(2)
    async with BlobServer() as server:
        server.put_blob("ota", "mcu.bin", image)
        device = SimDevice(seed=2)
        publish_ota(
            device.twin,
            version=1,
            image=image,
            url=server.blob_url("ota", "mcu.bin"),
            sas=server.make_sas("ota"),
        )
        cycled = False

        def on_boot(dev: SimDevice) -> None:
            nonlocal cycled
            if not cycled:
                cycled = True
                asyncio.get_running_loop().call_soon(dev.power_cycle)

        result = await device.run_until(applied(1), on_boot=on_boot)
    assert result.reached
    assert result.cuts == 1 and result.boots == 2
    assert hashlib.sha256(device.target.image).digest() == hashlib.sha256(image).digest()


async def test_many_devices_update_concurrently_in_one_process():
    """Issue 4: many devices can run in one process, each on its own virtual clock."""
    image = _image(3)
    async with BlobServer() as server:
        server.put_blob("ota", "mcu.bin", image)
        url, sas = server.blob_url("ota", "mcu.bin"), server.make_sas("ota")
        devices = [SimDevice(seed=n) for n in range(4)]
        for device in devices:
            publish_ota(device.twin, version=1, image=image, url=url, sas=sas)
        results = await asyncio.gather(*(d.run_until(applied(1)) for d in devices))
    assert all(r.reached for r in results)
    assert {bytes(d.target.image) for d in devices} == {image}
    assert len({id(d.clock) for d in devices}) == len(devices)
