"""The agent at boot when the chip cannot be used: it reports, keeps serving, retries,
and never formats what it cannot read.

When littlefs could not mount a non-blank region, both superblocks were corrupt, the
JEDEC ID was wrong or absent, or the chip was stuck BUSY, the exception escaped
``Agent.run()`` and nothing reached the twin, which went on saying ``applied`` for the
old version. Now the device reports ``error`` / ``Flash unusable`` with a ``Detail``
naming the cause, stays connected to its twin, tries again every
``AgentConfig.storage_retry_s`` (jittered, on the injected clock) and writes nothing
to a chip it cannot trust. Datasheet: W25Q128JV 8.2.4 (BUSY: "the device will ignore
further instructions except for the Read Status Register and Erase/Program Suspend").
"""

import dataclasses
import random

import pytest

from agent.storage import Storage
from sim.chip.w25q128 import W25Q128
from sim.clock import VirtualClock
from sim.device import SIM_SPI_HZ, applied, reported_status
from sim.ports.model import SimSpiPort
from sim.ports.wrapper import PortWrapper
from tests.common.agent import config, make_image, rig

pytestmark = pytest.mark.sim

RETRY_S = 300.0
RUN_S = 10 * RETRY_S  # ten retry intervals of device time
PROGRAM_OR_ERASE = {0x02, 0x20, 0x52, 0xD8, 0xC7, 0x06, 0x01, 0x31, 0x11}


class Probe(PortWrapper):
    """Counts JEDEC probes (one per boot attempt) and every write-class opcode sent;
    with ``busy`` set it is a chip stuck BUSY: SR1 reads BUSY, data reads return the
    floating bus (FF), and programs and erases are ignored."""

    def __init__(self, port, *, busy: bool = False) -> None:
        super().__init__(port)
        self.busy = busy
        self.probes = 0
        self.writes = 0

    def exchange(self, out=b"", readlen=0, start=True, stop=True, duplex=False, droptail=0):
        opcode = out[0] if out else None
        self.probes += opcode == 0x9F
        if opcode in PROGRAM_OR_ERASE:
            self.writes += 1
        if self.busy and opcode not in (0x9F, 0x5A):
            if opcode == 0x05:
                return bytes([0x01]) * readlen
            return b"\xff" * readlen
        return super().exchange(out, readlen, start, stop, duplex, droptail)


class DeadPort(PortWrapper):
    """No chip on the bus: MISO floats high, every byte reads FF."""

    def exchange(self, out=b"", readlen=0, start=True, stop=True, duplex=False, droptail=0):
        return b"\xff" * readlen


def agent_config():
    return dataclasses.replace(config(), storage_retry_s=RETRY_S)


def formatted_chip(seed: int = 0) -> W25Q128:
    """A chip holding a littlefs with an image file, as a device in the field has."""
    from agent.flash import SpiFlash

    clock = VirtualClock()
    chip = W25Q128(clock, seed=seed)
    flash = SpiFlash(SimSpiPort(chip, frequency=SIM_SPI_HZ), clock)
    storage = Storage.mount(flash)
    storage.makedirs("ota")
    storage.write_atomic("ota/current.bin", random.Random(seed).randbytes(20_000))
    storage.unmount()
    return chip


async def run_unusable(r, probe: Probe) -> None:
    r.offer(2, make_image(31))  # an instruction arrives while the chip is unusable
    result = await r.run(lambda reported: False, max_device_time_s=RUN_S, real_timeout_s=60)
    assert not result.reached
    assert result.boots == 1, "the agent kept running: the exception did not escape run()"
    section = r.reported
    assert (section["Status"], section["Error"]) == ("error", "Flash unusable")
    elapsed = result.device_time_s  # at least RUN_S: the run stops once past it
    assert probe.probes >= 5, f"only {probe.probes} attempts in {elapsed:g} s: no retries"
    assert probe.probes <= elapsed / (0.5 * RETRY_S) + 1, "retried faster than storage_retry_s"
    assert probe.writes == 0, "a chip that cannot be trusted was written to"


@pytest.mark.parametrize(
    "damage",
    ["foreign-data", "both-superblocks"],
)
async def test_an_unmountable_region_that_is_not_blank_is_reported_never_formatted(damage):
    chip = formatted_chip()
    if damage == "foreign-data":
        chip.array[0 : 64 * 1024] = random.Random(5).randbytes(64 * 1024)
    else:
        chip.array[0 : 2 * 4096] = bytes(2 * 4096)  # both superblocks (blocks 0 and 1)
    before = bytes(chip.array)
    probe = Probe(SimSpiPort(chip, frequency=SIM_SPI_HZ))
    async with rig(agent_config=agent_config(), chip=chip, port=probe, power=chip) as r:
        await run_unusable(r, probe)
        assert "not blank" in r.reported["Detail"] and "refusing to format" in r.reported["Detail"]
    assert bytes(chip.array) == before


@pytest.mark.parametrize(
    ("jedec", "words"),
    [(b"\xc2\x20\x18", "JEDEC ID c2 20 18"), (None, "no chip answering")],
    ids=["foreign-chip", "no-chip"],
)
async def test_a_wrong_or_absent_jedec_id_is_reported_and_retried(jedec, words):
    clock = VirtualClock()
    chip = W25Q128(clock, jedec_id=jedec or b"\xef\x40\x18")
    inner = SimSpiPort(chip, frequency=SIM_SPI_HZ)
    probe = Probe(DeadPort(inner) if jedec is None else inner)
    async with rig(agent_config=agent_config(), chip=chip, port=probe, power=chip) as r:
        await run_unusable(r, probe)
        assert words in r.reported["Detail"]


async def test_a_chip_stuck_busy_is_never_formatted_and_is_used_once_it_recovers():
    """Stuck BUSY, the chip answers FF to reads: judged blank, it would be formatted.
    The agent waits for BUSY to clear before trusting a read, reports, retries, and
    applies the instruction that arrived meanwhile once the chip answers again, in the
    same boot."""
    chip = formatted_chip(seed=3)
    before = bytes(chip.array)
    probe = Probe(SimSpiPort(chip, frequency=SIM_SPI_HZ), busy=True)
    image = make_image(32)
    async with rig(agent_config=agent_config(), chip=chip, port=probe, power=chip) as r:
        await run_unusable(r, probe)
        assert "BUSY" in r.reported["Detail"]
        assert bytes(chip.array) == before
        probe.busy = False
        r.offer(3, image)
        result = await r.run(applied(3), max_device_time_s=r.device.clock.monotonic() + 4 * RETRY_S)
    assert result.reached and result.boots == 2  # run() was stopped once by the first run
    assert r.device.target.image == image
    errors = [
        s for s in map(reported_status, r.device.twin.reported_log) if s.get("Status") == "error"
    ]
    assert errors and all(e["Error"] == "Flash unusable" for e in errors)
