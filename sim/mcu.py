"""A simulated external MCU: the target a verified image is finally applied to.

It has its own flash (which survives the gateway's power cycles) and a version
that changes only when an install completes, the way a bootloader writes its
image trailer last. An install can be made to fail, or be cut part-way, which
leaves a partly written image and the old version, so the agent must install
again after the next boot.

Many MCUs in one process (a fleet) that installed the same image can hold it once
(:class:`SharedImages`): each keeps a reference to one immutable copy, and a torn
install writes over a private copy of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from agent.errors import PowerLoss
from sim.clock import VirtualClock


class McuInstallError(Exception):
    """The MCU's programmer refused or failed the image."""


@dataclass
class InstallRecord:
    """One completed install, for the invariants: what the MCU ran and from when."""

    version: int
    sha256: str
    size: int
    at: float


class SharedImages:
    """Images held once however many MCUs installed them, keyed by their SHA-256."""

    def __init__(self) -> None:
        self._held: dict[str, bytes] = {}

    def share(self, image: bytes | bytearray, sha256: str) -> bytes:
        """The one immutable copy of ``image`` (made now if it is the first)."""
        held = self._held.get(sha256)
        if held is None or held != image:
            held = self._held[sha256] = bytes(image)
        return held


class SimMcuTarget:
    """Implements :class:`agent.target.McuTarget` with a byte array and a virtual clock.

    ``cut_after_bytes`` schedules a power cut once that many bytes of the next
    install are written; ``on_cut`` is called then (a device uses it to power
    the whole board off), and :class:`PowerLoss` is raised to the agent. With
    ``images``, a completed install keeps the image shared with every other MCU
    of that store that installed the same bytes.
    """

    def __init__(
        self,
        clock: VirtualClock,
        *,
        capacity: int = 16 * 1024 * 1024,
        version: int = 0,
        program_rate_bps: float = 256 * 1024,
        chunk_bytes: int = 4096,
        images: SharedImages | None = None,
    ) -> None:
        if capacity <= 0 or chunk_bytes <= 0 or program_rate_bps <= 0:
            raise ValueError("capacity, chunk_bytes and program_rate_bps must be > 0")
        self.clock = clock
        self.capacity = capacity
        self.image: bytes | bytearray = bytearray()
        self._version = version
        self.images = images
        self.program_rate_bps = program_rate_bps
        self.chunk_bytes = chunk_bytes
        self.fail_next_install: str | None = None
        self.cut_after_bytes: int | None = None
        self.on_cut: Callable[[], None] | None = None
        self.installs: list[InstallRecord] = []
        self.install_attempts = 0
        self._sha256: str | None = None  # of ``image``, until set_state or install changes it

    def current_version(self) -> int:
        return self._version

    def set_state(self, version: int, image: bytes) -> None:
        """Put the MCU in a known state without an install (no :class:`InstallRecord`):
        running ``version`` from ``image``, as a device found in the field or restored
        from an explorer's snapshot."""
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise ValueError(f"set_state: version must be an int >= 0, got {version!r}")
        if len(image) > self.capacity:
            raise ValueError(
                f"set_state: image of {len(image)} bytes exceeds the MCU's {self.capacity} bytes"
            )
        self.image = bytearray(image)
        self._version = version
        self._sha256 = None

    def image_sha256(self) -> str:
        """SHA-256 (lower-case hex) of the image the MCU holds; computed once per image
        (only :meth:`set_state` and :meth:`install` change it)."""
        if self._sha256 is None:
            self._sha256 = hashlib.sha256(self.image).hexdigest()
        return self._sha256

    def install(self, reader: BinaryIO, size: int, version: int) -> None:
        """Program ``size`` bytes from ``reader``; the version changes only at the end."""
        self.install_attempts += 1
        self._sha256 = None
        if size > self.capacity:
            raise McuInstallError(f"image of {size} bytes exceeds the MCU's {self.capacity} bytes")
        if self.fail_next_install is not None:
            reason, self.fail_next_install = self.fail_next_install, None
            raise McuInstallError(reason)
        image = bytearray()
        while len(image) < size:
            chunk = reader.read(min(self.chunk_bytes, size - len(image)))
            if not chunk:
                raise McuInstallError(f"image ended after {len(image)} of {size} bytes")
            image += chunk
            self.clock.advance(len(chunk) / self.program_rate_bps)
            if self.cut_after_bytes is not None and len(image) >= self.cut_after_bytes:
                self.cut_after_bytes = None
                torn = bytearray(self.image)  # the old image may be shared: write a copy
                torn[: len(image)] = image  # torn: the new prefix over the old image
                self.image = torn
                if self.on_cut is not None:
                    self.on_cut()
                raise PowerLoss(f"power cut {len(image)} bytes into the MCU install")
        digest = hashlib.sha256(image).hexdigest()
        self.image = image if self.images is None else self.images.share(image, digest)
        self._version = version
        self.installs.append(InstallRecord(version, digest, size, self.clock.monotonic()))
