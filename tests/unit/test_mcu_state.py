"""SimMcuTarget.set_state: the MCU put in a known state without an install."""

import io

import pytest

from agent.errors import PowerLoss
from sim.clock import VirtualClock
from sim.mcu import SharedImages, SimMcuTarget

pytestmark = pytest.mark.sim


def test_set_state_sets_version_and_image_without_an_install_record():
    """A device found in the field runs a version it was not seen to install: the
    invariants count only installs made during a run (issue 5, monotonic versions)."""
    target = SimMcuTarget(VirtualClock())
    target.set_state(7, b"\x01\x02\x03")
    assert target.current_version() == 7
    assert bytes(target.image) == b"\x01\x02\x03"
    assert target.installs == []


def test_an_install_after_set_state_replaces_both():
    """The state set is an ordinary starting point: the next install supersedes it."""
    target = SimMcuTarget(VirtualClock())
    target.set_state(1, b"old")
    target.install(io.BytesIO(b"new image"), 9, 2)
    assert (target.current_version(), bytes(target.image)) == (2, b"new image")


@pytest.mark.parametrize(
    ("version", "image", "match"),
    [(-1, b"", "version"), (True, b"", "version"), (1, b"x" * 17, "exceeds")],
)
def test_set_state_refuses_a_bad_version_or_an_oversized_image(version, image, match):
    """Bad input gets a clear error naming what was wrong (house rules)."""
    target = SimMcuTarget(VirtualClock(), capacity=16)
    with pytest.raises(ValueError, match=match):
        target.set_state(version, image)


def test_mcus_sharing_images_hold_one_copy_and_a_torn_install_writes_its_own():
    """A fleet's MCUs that installed the same bytes share them; a cut inside the next
    install tears that MCU's image only (the new prefix over its old image)."""
    images = SharedImages()
    one, two = (SimMcuTarget(VirtualClock(), images=images) for _ in range(2))
    for mcu in (one, two):
        mcu.install(io.BytesIO(b"A" * 8192), 8192, 1)
    assert one.image is two.image and bytes(one.image) == b"A" * 8192
    one.cut_after_bytes = 4096
    with pytest.raises(PowerLoss):
        one.install(io.BytesIO(b"B" * 8192), 8192, 2)
    assert bytes(one.image) == b"B" * 4096 + b"A" * 4096 and one.current_version() == 1
    assert bytes(two.image) == b"A" * 8192
    different = SimMcuTarget(VirtualClock(), images=images)
    different.install(io.BytesIO(b"C" * 8192), 8192, 1)
    assert bytes(different.image) == b"C" * 8192 and bytes(two.image) == b"A" * 8192
