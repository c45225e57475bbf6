"""SimMcuTarget.set_state: the MCU put in a known state without an install."""

import io

import pytest

from sim.clock import VirtualClock
from sim.mcu import SimMcuTarget

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
