"""The clean run's per-operation chip states, kept as keyframes and what each operation
changed (issue 11: "Peak memory of a sweep <= 150 MiB"): every one rebuilds equal to the
snapshot the chip gave, for programs, erases, status writes and security registers."""

import random

import pytest

from agent.flash import SpiFlash
from agent.w25q128jv import SECTOR, Op
from sim.chip.w25q128 import W25Q128
from sim.clock import VirtualClock
from sim.explore.snapshots import SnapshotLog
from sim.ports.model import SimSpiPort

pytestmark = pytest.mark.sim


def _same(a, b) -> bool:
    return (
        a.sectors == b.sectors
        and a.status_nv == b.status_nv
        and a.security == b.security
        and a.wear == b.wear
        and a.stuck == b.stuck
        and a.unique_id == b.unique_id
    )


@pytest.mark.parametrize("keyframe", [1, 3, 64])
def test_every_logged_snapshot_rebuilds_equal_to_the_chips(keyframe):
    """Random page programs (some over a whole sector), 4 KiB and 64 KiB erases, a
    status-register write and a security-register program, a snapshot after each: the
    log gives back each one equal, whichever keyframe interval it keeps."""
    rng = random.Random(keyframe)
    clock = VirtualClock()
    chip = W25Q128(clock)
    port = SimSpiPort(chip, frequency=30e6)
    flash = SpiFlash(port, clock)
    log, actual = SnapshotLog(keyframe), []
    for step in range(160):
        roll = rng.random()
        if roll < 0.6:
            at = rng.randrange(0, 64 * SECTOR, 16)
            flash.program(at, rng.randbytes(rng.choice([1, 16, 256, 600, SECTOR])))
        elif roll < 0.8:
            flash.erase_sector(rng.randrange(64) * SECTOR)
        elif roll < 0.85:
            flash.erase(0, 16 * SECTOR)
        elif step % 2:
            port.exchange(bytes([Op.WRITE_ENABLE]))
            port.exchange(bytes([Op.WRITE_STATUS2, rng.choice([0x00, 0x02])]))
            clock.advance(0.02)
        else:
            port.exchange(bytes([Op.WRITE_ENABLE]))
            port.exchange(bytes([Op.PROGRAM_SECURITY, 0x00, 0x10, step % 256, step % 251]))
            clock.advance(0.01)
        snap = chip.snapshot()
        log.append(snap)
        actual.append(snap)
    assert len(log) == len(actual)
    for index, snap in enumerate(actual):
        assert _same(log.snapshot(index), snap), index


def test_a_rebuilt_snapshot_restores_the_chip_it_came_from():
    """Restoring a rebuilt snapshot gives the chip's bytes back as they were then."""
    clock = VirtualClock()
    chip = W25Q128(clock)
    flash = SpiFlash(SimSpiPort(chip, frequency=30e6), clock)
    log, images = SnapshotLog(8), []
    for n in range(20):
        flash.program(n * 256, bytes([n]) * 256)
        log.append(chip.snapshot())
        images.append(chip.array.read(0, 20 * 256))
    chip.restore(log.snapshot(11))
    assert chip.array.read(0, 20 * 256) == images[11]


def test_an_index_outside_the_log_is_refused():
    log = SnapshotLog()
    log.append(W25Q128(VirtualClock()).snapshot())
    with pytest.raises(IndexError):
        log.snapshot(1)
    with pytest.raises(ValueError, match="keyframe"):
        SnapshotLog(0)
