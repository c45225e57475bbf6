"""The W25Q128JV model's non-volatile state: the array, NV status bits, security registers, wear.

The array is a :class:`sim.chip.sectors.SectorArray`: erased sectors cost no memory and
snapshots share every sector unchanged since the previous one (copy-on-write per
4 KiB sector). It owns persistence: with an image file, every write also lands in the
file memory-mapped, so a new process sees the data at once, plus a ``<image>.nv.json``
sidecar for the registers and wear, written by ``flush``.
"""

import json
import mmap
import os
from array import array
from pathlib import Path

from agent.w25q128jv import PAGE, SECTORS, SIZE
from sim.chip.sectors import ERASED_SECTOR, SectorArray
from sim.chip.state import ChipSnapshot

__all__ = ["ERASED_SECTOR", "NvStore"]


class NvStore:
    """Array + registers that survive power-off."""

    def __init__(self, image: str | os.PathLike | None, status: list[int], unique_id: bytes):
        self.status = list(status)  # SR1, SR2, SR3 non-volatile copies
        self.security = [bytearray(b"\xff" * PAGE) for _ in range(3)]
        self.wear = array("I", bytes(4 * SECTORS))
        self.stuck: dict[int, dict[int, int]] = {}  # sector -> {byte offset: bits stuck at 0}
        self.unique_id = unique_id
        self.image = Path(image) if image is not None else None
        self._mmap: mmap.mmap | None = None
        if self.image is None:
            self.array = SectorArray(SIZE)
        else:
            mapped = self._open(self.image)
            self.array = SectorArray.from_bytes(mapped, mirror=mapped)

    def _sidecar(self) -> Path:
        assert self.image is not None
        return self.image.with_name(self.image.name + ".nv.json")

    def _open(self, path: Path) -> mmap.mmap:
        if not path.exists():
            with path.open("wb") as f:
                for _ in range(SECTORS // 16):
                    f.write(ERASED_SECTOR * 16)
        size = path.stat().st_size
        if size != SIZE:
            raise ValueError(f"image {str(path)!r} must be exactly {SIZE} bytes, not {size}")
        fd = os.open(path, os.O_RDWR)
        try:
            self._mmap = mmap.mmap(fd, SIZE)
        finally:
            os.close(fd)
        side = self._sidecar()
        if side.exists():
            state = json.loads(side.read_text())
            self.status = [int(v) for v in state["status"]]
            self.security = [bytearray(bytes.fromhex(h)) for h in state["security"]]
            self.wear = array("I", state["wear"])
            stuck = state.get("stuck", {})
            self.stuck = {int(s): {int(o): m for o, m in b.items()} for s, b in stuck.items()}
        return self._mmap

    def flush(self) -> None:
        """Write a file-backed array and the registers to the image and its sidecar."""
        if self._mmap is None or self._mmap.closed:
            return
        self._mmap.flush()
        state = {
            "status": self.status,
            "security": [bytes(r).hex() for r in self.security],
            "wear": list(self.wear),
            "stuck": {str(s): {str(o): m for o, m in b.items()} for s, b in self.stuck.items()},
        }
        self._sidecar().write_text(json.dumps(state))

    def close(self) -> None:
        if self._mmap is not None and not self._mmap.closed:
            self.flush()
            self.array.detach()
            self._mmap.close()

    def snapshot(self) -> ChipSnapshot:
        return ChipSnapshot(
            sectors=self.array.freeze(),
            status_nv=(self.status[0], self.status[1], self.status[2]),
            security=(bytes(self.security[0]), bytes(self.security[1]), bytes(self.security[2])),
            wear=array("I", self.wear),
            stuck=tuple((s, tuple(b.items())) for s, b in self.stuck.items()),
            unique_id=self.unique_id,
        )

    def restore(self, snap: ChipSnapshot) -> None:
        self.array.load(snap.sectors)
        self.status = list(snap.status_nv)
        self.security = [bytearray(r) for r in snap.security]
        self.wear = array("I", snap.wear)
        self.stuck = {s: dict(b) for s, b in snap.stuck}
        self.unique_id = snap.unique_id
