"""The W25Q128JV model's non-volatile state: the array, NV status bits, security registers, wear.

The array is a :class:`sim.chip.sectors.SectorArray`: erased sectors cost no memory and
snapshots share every sector unchanged since the previous one (copy-on-write per
4 KiB sector). It owns persistence: with an image file, every write also lands in the
file memory-mapped, so a new process sees the data at once, plus a ``<image>.nv.json``
sidecar for the registers and wear, replaced atomically by ``flush`` and by ``save_nv``
whenever that state changed, so a process killed with SIGKILL leaves the last state on
disk.
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
        self._saved: tuple[object, ...] | None = None  # the state the sidecar holds
        if self.image is None:
            self.array = SectorArray(SIZE)
        else:
            mapped = self._open(self.image)
            self.array = SectorArray.from_bytes(mapped, mirror=mapped)

    def _sidecar(self) -> Path:
        assert self.image is not None
        return self.image.with_name(self.image.name + ".nv.json")

    def _open(self, path: Path) -> mmap.mmap:
        """Map ``path`` (created erased if missing); ``ValueError`` naming the file and
        what is wrong with it or its sidecar."""
        if path.is_dir():
            raise ValueError(f"image {str(path)!r} is a directory, not a file")
        if not path.parent.is_dir():
            raise ValueError(f"image {str(path)!r}: folder {str(path.parent)!r} does not exist")
        try:
            if not path.exists():
                with path.open("xb") as f:
                    for _ in range(SECTORS // 16):
                        f.write(ERASED_SECTOR * 16)
            size = path.stat().st_size
            if size != SIZE:
                raise ValueError(f"image {str(path)!r} must be exactly {SIZE} bytes, not {size}")
            fd = os.open(path, os.O_RDWR)
        except OSError as exc:
            raise ValueError(f"image {str(path)!r}: {exc.strerror}") from None
        try:
            self._mmap = mmap.mmap(fd, SIZE)
        finally:
            os.close(fd)
        side = self._sidecar()
        if side.exists():
            self._load_nv(side)
        self._saved = None
        self.save_nv()
        return self._mmap

    def _load_nv(self, side: Path) -> None:
        try:
            state = json.loads(side.read_text(encoding="utf-8"))
            status = [int(v) for v in state["status"]]
            security = [bytearray(bytes.fromhex(h)) for h in state["security"]]
            wear = array("I", state["wear"])
            stuck_raw = state.get("stuck", {})
            stuck = {int(s): {int(o): int(m) for o, m in b.items()} for s, b in stuck_raw.items()}
            if len(status) != 3 or not all(0 <= v <= 0xFF for v in status):
                raise ValueError("status must be three register values 0..255")
            if len(security) != 3 or any(len(r) != PAGE for r in security):
                raise ValueError(f"security must be three registers of {PAGE} bytes")
            if len(wear) != SECTORS:
                raise ValueError(f"wear must have {SECTORS} counts, has {len(wear)}")
        except (OSError, ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            detail = exc.strerror if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}"
            raise ValueError(
                f"sidecar {str(side)!r} is not a valid register/wear file (truncated?): "
                f"{detail}".replace("\n", " ")
            ) from None
        self.status, self.security, self.wear, self.stuck = status, security, wear, stuck

    def _nv_state(self) -> tuple[object, ...]:
        return (
            tuple(self.status),
            tuple(bytes(r) for r in self.security),
            self.wear.tobytes(),
            tuple((s, tuple(sorted(b.items()))) for s, b in sorted(self.stuck.items())),
        )

    def save_nv(self) -> bool:
        """Replace the sidecar atomically if the registers or wear changed since it was
        last written; True when it wrote. No-op for an in-memory chip."""
        if self.image is None or self._mmap is None or self._mmap.closed:
            return False
        state = self._nv_state()
        if state == self._saved:
            return False
        document = {
            "status": self.status,
            "security": [bytes(r).hex() for r in self.security],
            "wear": list(self.wear),
            "stuck": {str(s): {str(o): m for o, m in b.items()} for s, b in self.stuck.items()},
        }
        side = self._sidecar()
        tmp = side.with_name(side.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            json.dump(document, f)
        # a reader (or a process after a kill -9) sees the old file or the new one; the
        # page cache outlives the process, so no fsync: this guards against a crash of
        # the bridge, not of the host
        os.replace(tmp, side)
        self._saved = state
        return True

    def flush(self) -> None:
        """Write a file-backed array and the registers to the image and its sidecar."""
        if self._mmap is None or self._mmap.closed:
            return
        self._mmap.flush()
        self._saved = None  # write it whatever it holds
        self.save_nv()

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
