"""Where scenarios play: one blob server, the blobs on it, and the device as found in the
field before every scenario.

The field state is a formatted littlefs holding ``config/settings.json`` with version 1
applied by a clean OTA, so ``ota/current.bin`` holds it and the MCU runs it. A
:class:`Stage` prepares it once per chip configuration and uploads each image once (the
same bytes keep their ETag across runs, so an explorer's snapshots stay valid); a run
given no stage gets a fresh one and depends on nothing that ran before it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.download import DownloadPolicy
from agent.engine import AgentConfig
from agent.flash import SpiFlash
from agent.hosts import LOOPBACK_HOSTS
from agent.storage import Storage
from sim.chip.w25q128 import W25Q128, ChipSnapshot
from sim.clock import VirtualClock
from sim.cloud.blobserver import BlobServer
from sim.cloud.twin import ota_desired_patch
from sim.device import SIM_SPI_HZ, SimDevice, reported_status
from sim.explore.scenario import BASE_VERSION, Scenario, sha256_hex
from sim.mcu import InstallRecord
from sim.ports.model import SimSpiPort

CONTAINER = "ota"
SETTINGS_PATH = "config/settings.json"
SETTINGS = b'{"sampling_s": 30, "site": "bench-7", "note": "kept across every OTA"}\n'

Predicate = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True)
class Base:
    """A device as found in the field: a chip snapshot and the MCU running version 1."""

    snapshot: ChipSnapshot
    target_image: bytes
    target_version: int
    installs: tuple[InstallRecord, ...]


def blob_name(version: int) -> str:
    return f"fw-v{version}.bin"


def agent_config(scenario: Scenario) -> AgentConfig:
    """The agent's configuration in every scenario: loopback http, the scenario's checkpoint."""
    return AgentConfig(
        allow_http_loopback=True,
        storage_hosts=LOOPBACK_HOSTS,
        download=DownloadPolicy(checkpoint_bytes=scenario.checkpoint_bytes),
    )


def settled(version: int) -> Predicate:
    """Done when ``version`` is applied, or the device gave up with error / invalid."""

    def check(reported: dict[str, Any]) -> bool:
        info = reported_status(reported)
        if info.get("Status") == "applied" and info.get("Version") == version:
            return True
        return info.get("Status") in ("error", "invalid")

    return check


@dataclass
class Stage:
    """One blob server and what has been prepared on it for scenarios."""

    server: BlobServer
    _bases: dict[tuple[Any, ...], Base] = field(default_factory=dict)
    _uploaded: dict[str, str] = field(default_factory=dict)  # blob name -> sha256
    _instructions: dict[tuple[Any, ...], dict[str, Any]] = field(default_factory=dict)

    def upload(self, name: str, data: bytes) -> None:
        """Put ``data`` as blob ``name`` unless it holds those bytes already."""
        digest = sha256_hex(data)
        if self._uploaded.get(name) != digest:
            self.server.put_blob(CONTAINER, name, data)
            self._uploaded[name] = digest

    def replace(self, name: str, data: bytes) -> None:
        """Put ``data`` as blob ``name`` now, forgetting what was uploaded before."""
        self.server.put_blob(CONTAINER, name, data)
        self._uploaded.pop(name, None)

    def sas(self) -> str:
        """A read SAS for the container, as the operator's tool makes one."""
        return self.server.make_sas(CONTAINER)

    def publish(self, twin: Any, version: int, image: bytes, sas: str) -> None:
        """Publish ``version`` (its blob already uploaded) to ``twin`` as ``ota.py`` would.
        The instruction is made once per image and URL (its SHA-256 costs a pass over the
        image); each publish puts in its own SAS (a new one every second)."""
        url = self.server.blob_url(CONTAINER, blob_name(version))
        key = (version, url, len(image), sha256_hex(image))
        made = self._instructions.get(key)
        if made is None:
            made = ota_desired_patch(version=version, image=image, url=url, sas="")
            self._instructions[key] = made
        patch = copy.deepcopy(made)
        patch["extFwInfo"]["sas"] = sas
        twin.patch_desired(patch)

    async def base(self, scenario: Scenario) -> Base:
        """The field state for ``scenario``'s chip, prepared once per configuration."""
        key = (scenario.image_seed, scenario.base_image_size, scenario.timing, scenario.chip_seed)
        if key not in self._bases:
            self._bases[key] = await self._prepare_base(scenario)
        return self._bases[key]

    async def _prepare_base(self, scenario: Scenario) -> Base:
        clock = VirtualClock()
        self.server.service.network = clock.attach_network()
        chip = W25Q128(clock, seed=scenario.chip_seed, timing=scenario.timing)
        storage = Storage.mount(SpiFlash(SimSpiPort(chip, frequency=SIM_SPI_HZ), clock))
        storage.makedirs("config")
        storage.write_atomic(SETTINGS_PATH, SETTINGS)
        storage.unmount()
        device = SimDevice(chip=chip, seed=scenario.seed, config=agent_config(scenario))
        image = scenario.image(BASE_VERSION)
        self.replace(blob_name(BASE_VERSION), image)
        self.publish(device.twin, BASE_VERSION, image, self.sas())
        done = await device.run_until(settled(BASE_VERSION), max_boots=3)
        if not done.reached or device.target.current_version() != BASE_VERSION:
            raise RuntimeError(f"the base OTA (version 1) did not apply: {done}")
        return Base(
            chip.snapshot(),
            bytes(device.target.image),
            device.target.current_version(),
            tuple(device.target.installs),
        )
