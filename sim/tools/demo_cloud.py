"""The demo's two cloud paths: how the instruction reaches the simulated gateway.

- :class:`HubPath` (the default) is the whole real path: the operator's deploy tool
  (``deploy/ota.py``, the real ``azure-storage-blob`` and ``azure-iot-hub`` SDKs) uploads
  the image to the blob server and creates the automatic device configuration in the
  local IoT Hub (:mod:`sim.cloud.iothub`); the gateway provisions itself through the
  hub's DPS with a group enrollment's derived key, connects over MQTT/TLS with the real
  device SDK (:class:`agent.azure.AzureIoTTwin`), and the hub's next configuration
  evaluation writes the instruction to its twin.
- :class:`InProcessPath` publishes ``extFwInfo`` straight to an in-process twin
  (:class:`sim.cloud.twin.InProcessTwin`), as explorers do where speed matters.

Each path is an async context manager: ``publish`` puts the image on the blob server
and the instruction on its way; ``news`` gives what the cloud did since it was last
asked, for the demo's narration.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Protocol

from agent.engine import AgentConfig
from sim.clock import VirtualClock
from sim.cloud.blobserver import BlobServer
from sim.cloud.twin import publish_ota
from sim.device import SimDevice

CONTAINER = "ota"
PRODUCT, GROUP = "washer", "demo"
DEVICE_ID = "gw-demo"
ENROLLMENT = "washers"
EVALUATION_INTERVAL_S = 0.1  # the local hub's, in real seconds (IoT Hub: about 300)


class CloudPath(Protocol):
    """What the demo needs from a path (an async context manager)."""

    label: str
    blob: str
    device: SimDevice

    async def __aenter__(self) -> CloudPath: ...

    async def __aexit__(self, *exc: Any) -> None: ...

    async def publish(self) -> list[str]: ...

    def news(self) -> list[str]: ...


class InProcessPath:
    """The in-process twin: the operator's patch goes straight to the device's twin."""

    label = "in-process twin (sim.cloud.twin; no network between the operator and the device)"
    blob = "mcu.bin"  # one name for every version, as the original's ota.py

    def __init__(self, server: BlobServer, image: bytes, *, seed: int, config: AgentConfig):
        self.server = server
        self.image = image
        self.device = SimDevice(seed=seed, config=config)

    async def __aenter__(self) -> InProcessPath:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        return None

    async def publish(self) -> list[str]:
        self.server.put_blob(CONTAINER, self.blob, self.image)
        url = self.server.blob_url(CONTAINER, self.blob)
        sas = self.server.make_sas(CONTAINER)
        publish_ota(self.device.twin, version=1, image=self.image, url=url, sas=sas)
        return ["operator published extFwInfo version 1 to the twin"]

    def news(self) -> list[str]:
        return []


class HubPath:
    """The whole real path (see the module doc)."""

    label = (
        "local IoT Hub: deploy tool (azure-storage-blob, azure-iot-hub) -> hub configuration"
        " -> DPS + MQTT/TLS (azure-iot-device) -> blob server"
    )

    def __init__(self, server: BlobServer, image: bytes, *, seed: int, config: AgentConfig):
        from deploy.ota import Release  # the Azure SDKs load only on this path
        from sim.cloud.iothub import LocalIoTHub, free_loopback_address

        self.server = server
        self.image = image
        self.seed = seed
        self.config = config
        self.release = Release(image=image, version=1, product=PRODUCT, group=GROUP)
        self.blob = self.release.blob
        self.hub = LocalIoTHub(
            host=free_loopback_address(), evaluation_interval_s=EVALUATION_INTERVAL_S
        )
        self.device: SimDevice
        self._seen: dict[str, Any] = {"connects": 0, "applied": False}

    async def __aenter__(self) -> HubPath:
        from sim.cloud.iothub import Enrollment
        from sim.cloud.iothub.device_twin import HubTwin
        from sim.cloud.iothub.sas import derive_device_key, new_key

        await self.hub.__aenter__()
        key = new_key()
        tags = {"productType": PRODUCT, "deviceGroup": GROUP}
        await asyncio.to_thread(
            self.hub.enroll,
            Enrollment(ENROLLMENT, group=True, primary_key=key, initial_tags=tags),
        )
        twin = HubTwin.provisioned(
            self.hub, DEVICE_ID, symmetric_key=derive_device_key(key, DEVICE_ID)
        )
        self.device = SimDevice(seed=self.seed, config=self.config, twin=twin, clock=VirtualClock())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.hub.__aexit__(exc_type, exc, tb)

    async def publish(self) -> list[str]:
        """``python -m deploy ota`` as a function: upload, SAS, configuration."""
        from deploy.ota import publish

        with _trusting(str(self.hub.ca_cert)):
            configuration = await publish(
                self.release,
                storage=self.server.connection_string,
                iothub=self.hub.service_connection_string,
            )
        return [
            f"local IoT Hub on {self.hub.host}:{self.hub.mqtt_port} (MQTT/TLS) with DPS "
            f"enrollment group {ENROLLMENT!r} (tags productType={PRODUCT}, deviceGroup={GROUP})",
            f"deploy tool uploaded {CONTAINER}/{self.blob} (read-only SAS for that blob) and "
            f"created configuration {configuration.id} for {configuration.target_condition}",
        ]

    def news(self) -> list[str]:
        """Connections of the device and the configuration reaching its twin, as they happen."""

        def look(h: Any) -> tuple[int, bool]:
            if not h.has_device(DEVICE_ID):
                return 0, False
            applied = h.twin_json(DEVICE_ID)["configurations"].get(self.release.config_id)
            status = applied.get("status") if isinstance(applied, dict) else None
            return h.twin(DEVICE_ID).connect_count, status == "Applied"

        connects, applied = self.hub.call(look)
        lines = []
        if connects > self._seen["connects"]:
            how = "provisioned through DPS, " if self._seen["connects"] == 0 else ""
            lines.append(f"{DEVICE_ID} {how}connected over MQTT/TLS (connection #{connects})")
            self._seen["connects"] = connects
        if applied and not self._seen["applied"]:
            self._seen["applied"] = True
            lines.append(
                f"hub evaluation: configuration {self.release.config_id} written to "
                f"{DEVICE_ID}'s desired properties"
            )
        return lines


@contextmanager
def _trusting(ca_pem: str) -> Iterator[None]:
    """The service SDK (msrest/requests) trusts the local hub's CA while publishing."""
    before = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = ca_pem
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("REQUESTS_CA_BUNDLE", None)
        else:
            os.environ["REQUESTS_CA_BUNDLE"] = before


PATHS: dict[str, Callable[..., CloudPath]] = {"hub": HubPath, "in-process": InProcessPath}
