"""The agent's OTA end to end on the shared flash port: the simulator or a bench rig.

The same tests run on the W25Q128 model (``-m sim``) and through pyftdi on a rig
(``-m hil --rig FILE``; the virtual FT232H in CI). The blob server (loopback HTTP),
the twin and the MCU are simulated on both sides; the flash, littlefs on it and the
agent are the real ones. Power cuts take one path on both sides: the bench's
:class:`hil.powercut.BenchCutPort` cuts the supply after the Nth program/erase command
(issue 6, "Power cuts on the bench"), and :class:`hil.device.BenchDevice` boots a fresh
agent, as :class:`sim.device.SimDevice` does in simulation.
"""

import hashlib
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from agent.download import DownloadPolicy
from agent.engine import AgentConfig
from agent.flash import W25Q128JV_IQ, SpiFlash
from agent.hosts import LOOPBACK_HOSTS
from agent.staging import CURRENT_PATH, STAGED_PATH
from agent.storage import Geometry, Storage
from hil.device import BenchDevice
from hil.powercut import DEFAULT_OFF_TIME_S, SECTOR_ERASES, BenchCut
from sim.cloud.blobserver import BlobServer
from sim.cloud.twin import publish_ota
from sim.device import applied

pytestmark = []  # the sim/hil marker comes with each flash_target param

IMAGE_BYTES = 64 * 1024
CHECKPOINT_BYTES = 16 * 1024  # four checkpoints per image: a cut costs at most one
READ_CHUNK_BYTES = 4 * 1024
CONTAINER, BLOB = "ota", "mcu.bin"
# The Nth program/erase of the first boot at which the cut lands: past the format, the
# record and the first checkpoints (~30 operations), before the image's 256 pages end.
CUT_MID_DOWNLOAD = 120
# Half the typical page program (tPP 0.4 ms, datasheet 9.6): inside a program, and inside
# any erase or status write, which take longer.
TORN_DELAY_S = W25Q128JV_IQ.t_pp_typ_s / 2
# The Nth erase of the first boot, and a quarter of tSE (45 ms typical, datasheet 9.6)
# into it: a cut a real rig's USB round trip cannot miss.
ERASE_MID_DOWNLOAD = 22
TORN_ERASE_DELAY_S = W25Q128JV_IQ.t_se_typ_s / 4


def make_image(seed: int) -> bytes:
    return random.Random(f"ota-image:{seed}").randbytes(IMAGE_BYTES)


@pytest.fixture
def make_device(
    flash_target: Any, flash_supply: Any, ota_geometry: Geometry
) -> Iterator[Callable[..., BenchDevice]]:
    """Build a device on the shared port; its littlefs lies in ``ota_geometry``."""
    devices: list[BenchDevice] = []

    def make(cuts: Sequence[BenchCut] = (), supply: Any = None, port: Any = None) -> BenchDevice:
        config = AgentConfig(
            geometry=ota_geometry,
            allow_http_loopback=True,
            storage_hosts=LOOPBACK_HOSTS,
            download=DownloadPolicy(
                checkpoint_bytes=CHECKPOINT_BYTES, read_chunk_bytes=READ_CHUNK_BYTES
            ),
        )
        device = BenchDevice(
            port=port or flash_target.port,
            clock=flash_target.clock,
            supply=supply or flash_supply,
            off_time_s=flash_target.rig.off_time_s if flash_target.rig else DEFAULT_OFF_TIME_S,
            config=config,
            cuts=cuts,
            model=flash_target.chip,
        )
        devices.append(device)
        return device

    yield make
    for device in devices:
        device.power_up()  # the region's restore needs a powered chip


def offer(device: BenchDevice, server: BlobServer, version: int, image: bytes) -> None:
    """The operator's ``ota.py``: upload ``image`` and publish it as ``version``."""
    server.put_blob(CONTAINER, BLOB, image)
    publish_ota(
        device.twin,
        version=version,
        image=image,
        url=server.blob_url(CONTAINER, BLOB),
        sas=server.make_sas(CONTAINER),
    )


def files_on_flash(flash_target: Any, geometry: Geometry) -> dict[str, bytes | None]:
    """The staged and current images in the device's littlefs (None when absent)."""
    storage = Storage.mount(
        SpiFlash(flash_target.port, flash_target.clock), geometry, format_blank=False
    )
    try:
        return {
            path: storage.read_file(path) if storage.exists(path) else None
            for path in (STAGED_PATH, CURRENT_PATH)
        }
    finally:
        storage.unmount()


class BusyAtCut:
    """Wraps a supply switch; records, at each cut, whether the model behind the port
    was mid-operation (BUSY, datasheet 7.1.1). Only a model can say; silicon cannot be
    asked once its supply is gone."""

    def __init__(self, supply: Any, model: Any) -> None:
        self._supply = supply
        self._model = model
        self.busy: list[bool] = []

    @property
    def powered(self) -> bool:
        return bool(self._supply.powered)

    def power_off(self) -> None:
        if self._model is not None and self._model.powered:
            self.busy.append(self._model.busy)
        self._supply.power_off()

    def power_on(self) -> None:
        self._supply.power_on()


def sha256(data: bytes | bytearray) -> str:
    return hashlib.sha256(bytes(data)).hexdigest()


async def test_clean_ota_applies_the_exact_image(
    flash_target, make_device, blob_server, ota_geometry
):
    """Reference design, "Flow": download, verify SHA-256, apply, report ``applied``
    with the version; the MCU then holds exactly the published image and littlefs keeps
    it as the last good image."""
    image = make_image(1)
    device = make_device()
    offer(device, blob_server, 3, image)
    result = await device.run_until(applied(3))
    assert result.reached, result.reported
    assert (device.boots, device.fired) == (1, [])
    assert sha256(device.target.image) == sha256(image)
    assert device.target.current_version() == 3
    assert sum(d.kept_bytes for d in device.downloads) == IMAGE_BYTES
    assert files_on_flash(flash_target, ota_geometry) == {STAGED_PATH: None, CURRENT_PATH: image}


async def test_agent_writes_only_inside_its_littlefs_region(
    flash_target, make_device, blob_server, ota_geometry
):
    """Issue 6: bench tests that destroy data work only in the region the rig allows.
    Every program and erase address the agent sends (02h, 20h, 52h, D8h; datasheet 8.2)
    lies in the littlefs region, which the fixture put inside the rig's test region."""
    spy = AddressSpy(flash_target.port)
    image = make_image(2)
    device = make_device(port=spy)
    offer(device, blob_server, 1, image)
    result = await device.run_until(applied(1))
    assert result.reached, result.reported
    low, high = ota_geometry.offset, ota_geometry.offset + ota_geometry.region_size
    assert spy.addresses, "the agent sent no program or erase"
    assert all(low <= a < high for a in spy.addresses), [
        hex(a) for a in spy.addresses if not low <= a < high
    ]


class AddressSpy:
    """A pass-through port that notes the address of every program and erase command."""

    WRITES = frozenset({0x02, 0x20, 0x52, 0xD8})

    def __init__(self, port: Any) -> None:
        self._port = port
        self.addresses: list[int] = []

    def exchange(self, out=b"", readlen=0, start=True, stop=True, duplex=False, droptail=0):
        if start and len(out) >= 4 and out[0] in self.WRITES:
            self.addresses.append(int.from_bytes(bytes(out[1:4]), "big"))
        return self._port.exchange(out, readlen, start, stop, duplex, droptail)

    def read(self, readlen=0, start=True, stop=True):
        return self._port.read(readlen, start, stop)

    def write(self, out, start=True, stop=True):
        self.exchange(out, 0, start, stop)

    @property
    def frequency(self) -> float:
        return self._port.frequency

    def set_frequency(self, frequency: float) -> None:
        self._port.set_frequency(frequency)


@pytest.mark.needs_power_cut
async def test_cut_after_nth_program_erase_resumes_and_applies(
    flash_target, make_device, blob_server
):
    """Issue 6, "Power cuts on the bench": the supply is cut after the Nth program/erase
    command; the next boot resumes from what was committed (issue 4: a cut costs at most
    one checkpoint interval of download) and the MCU ends with the exact image."""
    image = make_image(3)
    device = make_device(cuts=[BenchCut(after_op=CUT_MID_DOWNLOAD)])
    offer(device, blob_server, 1, image)
    result = await device.run_until(applied(1))
    assert result.reached, result.reported
    assert [(cut.plan.after_op, cut.boot) for cut in device.fired] == [(CUT_MID_DOWNLOAD, 1)]
    assert device.boots == 2
    first_boot = sum(d.kept_bytes for d in device.agents[0].downloads)
    assert 0 < first_boot < IMAGE_BYTES, "the cut did not land inside the download"
    kept = sum(d.kept_bytes for d in device.downloads)
    assert IMAGE_BYTES <= kept <= IMAGE_BYTES + CHECKPOINT_BYTES
    assert sha256(device.target.image) == sha256(image)


@pytest.mark.needs_power_cut
async def test_torn_cut_inside_an_operation_resumes_and_applies(
    flash_target, flash_supply, make_device, blob_server
):
    """Issue 6: the supply is cut ``delay_s`` into the Nth program/erase, so the chip tears
    it (datasheet 9.1: data under a write in progress at power-down is undefined); littlefs
    and the agent recover and the MCU ends with the exact image."""
    image = make_image(4)
    supply = BusyAtCut(flash_supply, flash_target.chip)
    device = make_device(
        cuts=[BenchCut(after_op=CUT_MID_DOWNLOAD, delay_s=TORN_DELAY_S)], supply=supply
    )
    offer(device, blob_server, 2, image)
    result = await device.run_until(applied(2))
    assert result.reached, result.reported
    assert len(device.fired) == 1 and device.boots == 2
    if flash_target.chip is not None:  # a model can say the cut fell inside the operation
        assert supply.busy == [True]
    kept = sum(d.kept_bytes for d in device.downloads)
    assert IMAGE_BYTES <= kept <= IMAGE_BYTES + CHECKPOINT_BYTES
    assert sha256(device.target.image) == sha256(image)


@pytest.mark.needs_power_cut
async def test_cut_inside_a_sector_erase_resumes_and_applies(
    flash_target, flash_supply, make_device, blob_server
):
    """Datasheet 9.1 and 8.2.17: a sector erase cut part-way leaves its sector neither
    old nor erased; littlefs must not trust it (it erases again before it programs) and
    the agent resumes within one checkpoint and applies the exact image."""
    image = make_image(5)
    supply = BusyAtCut(flash_supply, flash_target.chip)
    plan = BenchCut(after_op=ERASE_MID_DOWNLOAD, delay_s=TORN_ERASE_DELAY_S, opcodes=SECTOR_ERASES)
    device = make_device(cuts=[plan], supply=supply)
    offer(device, blob_server, 4, image)
    result = await device.run_until(applied(4))
    assert result.reached, result.reported
    assert len(device.fired) == 1 and device.boots == 2
    if flash_target.chip is not None:
        assert supply.busy == [True]
    first_boot = sum(d.kept_bytes for d in device.agents[0].downloads)
    assert 0 < first_boot < IMAGE_BYTES, "the cut did not land inside the download"
    kept = sum(d.kept_bytes for d in device.downloads)
    assert IMAGE_BYTES <= kept <= IMAGE_BYTES + CHECKPOINT_BYTES
    assert sha256(device.target.image) == sha256(image)


@pytest.mark.needs_power_cut
async def test_a_cut_in_each_of_three_boots_costs_at_most_a_checkpoint_each(
    flash_target, make_device, blob_server
):
    """Issue 4 (resume) on the bench: a cut in each of three boots in a row, after a
    program, torn inside a program and torn inside an erase; every boot resumes from what
    the last one committed, so at most three checkpoint intervals are downloaded twice."""
    image = make_image(6)
    cuts = [
        BenchCut(after_op=CUT_MID_DOWNLOAD),
        BenchCut(after_op=60, delay_s=TORN_DELAY_S),
        BenchCut(after_op=4, delay_s=TORN_ERASE_DELAY_S, opcodes=SECTOR_ERASES),
    ]
    device = make_device(cuts=cuts)
    offer(device, blob_server, 5, image)
    result = await device.run_until(applied(5))
    assert result.reached, result.reported
    assert [cut.boot for cut in device.fired] == [1, 2, 3] and device.boots == 4
    kept = sum(d.kept_bytes for d in device.downloads)
    assert IMAGE_BYTES <= kept <= IMAGE_BYTES + len(cuts) * CHECKPOINT_BYTES
    assert sha256(device.target.image) == sha256(image)
