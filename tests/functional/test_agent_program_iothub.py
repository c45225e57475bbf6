"""``python -m agent run`` as a gateway runs it: a separate process, its flash over serprog
(the simulator's bridge onto the W25Q128JV model, ``--clock bus``), the local IoT Hub over
MQTT/TLS from a device connection string, the image from the blob server, and the MCU as a
command (issue 13, "Agents across a process boundary")."""

import asyncio
import hashlib
import random
import sys

import pytest

from sim.chip.w25q128 import W25Q128
from sim.clock import VirtualClock
from sim.cloud.blobserver import BlobServer
from sim.cloud.twin import ota_desired_patch
from sim.ports.model import SimSpiPort
from sim.tools.serprog import SerprogServer

pytestmark = pytest.mark.sim

PROGRAMMER = "import sys, pathlib; pathlib.Path(sys.argv[1]).write_bytes(sys.stdin.buffer.read())"


def reported(iothub, device_id):
    return iothub.twin(device_id)["properties"]["reported"].get("extFwInfo", {})


async def test_the_agent_program_applies_an_update_from_the_local_iot_hub(iothub, tmp_path):
    chip = W25Q128(VirtualClock(), seed=0)
    image = random.Random(13).randbytes(40_000)
    key = iothub.add_device("gw-1")
    mcu = tmp_path / "mcu.bin"
    with SerprogServer(SimSpiPort(chip, frequency=8e6), clock=chip.clock, turnaround_s=0) as bridge:
        host, port = bridge.address
        async with BlobServer() as blobs:
            blobs.put_blob("ota", "fw.bin", image)
            proc = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "agent", "run", "--spi", f"serprog://{host}:{port}"),
                *("--clock", "bus", "--ca-cert", str(iothub.ca_cert), "--allow-http-loopback"),
                *("--storage-host", "127.0.0.0/8"),
                *("--target", f"command:{sys.executable} -c '{PROGRAMMER}' {mcu}"),
                *("--version-file", str(tmp_path / "mcu-version")),
                env={
                    "OTA_CONNECTION_STRING": iothub.device_connection_string("gw-1", key),
                    "PATH": "/usr/bin:/bin",
                    "PYTHONPATH": ":".join(sys.path),
                },
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                patch = ota_desired_patch(
                    version=1,
                    image=image,
                    url=blobs.blob_url("ota", "fw.bin"),
                    sas=blobs.make_sas("ota"),
                )
                await iothub.acall(lambda h: h.twin("gw-1").patch_desired(patch))
                async with asyncio.timeout(60):
                    while reported(iothub, "gw-1").get("Status") != "applied":
                        assert proc.returncode is None, (await proc.stderr.read()).decode()
                        await asyncio.sleep(0.05)
            finally:
                proc.terminate()
                await proc.wait()
    assert reported(iothub, "gw-1")["Version"] == 1
    assert hashlib.sha256(mcu.read_bytes()).digest() == hashlib.sha256(image).digest()
    assert (tmp_path / "mcu-version").read_text().strip() == "1"
