"""The file system's logical content at a moment of a run: what the re-join shortcut compares.

:func:`flash_state` mounts a read-only view of a flash's sectors as a booting agent would
(never formatting) and hashes every file. Reading a file through littlefs costs
O(n log n) block-device calls: each data block is found by walking the CTZ skip-list back
from the file's head (littlefs DESIGN.md, "CTZ skip-lists"), about 10,000 calls for a
4 MiB image. A cut run's files are compared with a clean checkpoint's (``like``), and
most of their bytes lie in blocks the cut never touched, so the checkpoint's reading is
reused where it provably gives the same bytes; anything else is read and hashed in full.

* **The whole file** (the running image, ``ota/current.bin``): littlefs reads an open
  file as a function of its head block, its size and the bytes of the blocks it reads,
  nothing else (the file's cache starts empty). The checkpoint notes the head (the block
  of the one read ``lfs_file_read`` of the last byte makes) and every sector its whole
  read touched; the same size and head, and each of those sectors holding the same
  bytes, mean the very same reads and the same content.
* **A shared prefix** (the partial image, ``ota/staged.bin``, whose last blocks the cut
  run wrote again after resuming): the checkpoint also keeps its block list, checked
  consistent (every skip pointer agrees with the chain of first pointers, so every walk
  littlefs makes lands on the list's block: :mod:`sim.explore.ctz`), the bytes of those
  blocks, and the file's last bytes from ``tail_from``. The cut run's file of the same
  size is the checkpoint's down to some index *m*: its chain from its own head reaches
  the checkpoint's block at *m*, the blocks 0..*m* hold the same bytes, every pointer of
  its blocks above *m* agrees with that joined list, and ``tail_from`` lies in a block at
  or below *m* (the block littlefs reads for it is one of them). Then littlefs reads the
  same bytes as the checkpoint's file everywhere before ``tail_from``, and the rest is
  read through littlefs and compared with the kept bytes.

Inline files (kept in their directory's metadata, read with no block-device call) are
always read in full.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass, field

from agent.errors import PowerLoss
from agent.storage import ReadFile, Storage, StorageError
from agent.w25q128jv import SECTOR
from sim.explore import ctz
from sim.ports.view import ArrayView

#: Directories walked for the file system's content (the agent's and the field state's).
WALKED = ("/",)
_SHIFT = SECTOR.bit_length() - 1


@dataclass(frozen=True)
class FileRead:
    """How littlefs read one file of a checkpoint (see the module doc)."""

    head: int
    size: int
    sectors: tuple[tuple[int, bytes], ...]  # (sector index, its bytes then) the read touched
    sha256: str
    blocks: tuple[int, ...] = ()  # block per index 0..last, when the list is consistent
    block_bytes: tuple[bytes, ...] = ()  # their sectors' bytes then
    tail_from: int = 0  # where ``tail`` starts in the file
    tail: bytes = b""

    def still_reads(self, head: int, size: int, sectors: tuple[bytes, ...]) -> bool:
        """Whether littlefs reading a file of ``size`` from ``head`` over ``sectors`` makes
        these same reads (and so returns the same bytes)."""
        if head != self.head or size != self.size:
            return False
        return all(sectors[i] is data or sectors[i] == data for i, data in self.sectors)

    def shared_down_to(self, head: int, size: int, sectors: tuple[bytes, ...]) -> int | None:
        """The index *m* down to which a file of ``size`` at ``head`` over ``sectors`` is
        this one's (the module doc's conditions but the last), or None."""
        if size != self.size or not self.blocks or self.tail_from == 0:
            return None
        last = len(self.blocks) - 1
        lowest = ctz.index_of(self.tail_from, SECTOR)
        tail = {last: head}
        block, index = head, last
        while block != self.blocks[index]:
            if index <= lowest or block >= len(sectors):
                return None
            block = ctz.pointers(sectors[block], index)[0]
            index -= 1
            tail[index] = block
        shared = self.blocks
        for i in range(index + 1):
            b = shared[i]
            if sectors[b] is not self.block_bytes[i] and sectors[b] != self.block_bytes[i]:
                return None
        for i in range(index + 1, last + 1):
            for j, target in enumerate(ctz.pointers(sectors[tail[i]], i)):
                t = i - (1 << j)
                if target != (tail[t] if t > index else shared[t]):
                    return None
        return index


@dataclass(frozen=True)
class FlashState:
    """The file system's logical content: (path, SHA-256 hex) of every file, sorted.
    ``reads`` (not compared) says how each file was read, for :func:`flash_state`'s
    ``like``."""

    files: tuple[tuple[str, str], ...]
    reads: dict[str, FileRead] = field(default_factory=dict, compare=False, hash=False, repr=False)


class _Noting(ArrayView):
    """A read-only view of sectors that notes the sector of every read while ``seen``
    is a list."""

    def __init__(self, sectors: tuple[bytes, ...]) -> None:
        super().__init__(sectors=sectors)
        self.seen: list[int] | None = None

    def read(self, addr: int, n: int) -> bytes:
        if self.seen is not None:
            self.seen.append(addr >> _SHIFT)
        return super().read(addr, n)


def flash_state(
    sectors: tuple[bytes, ...], like: FlashState | None = None, *, keep_tail: int = 0
) -> FlashState | None:
    """Mount a read-only view of ``sectors`` as a booting agent would (never formatting)
    and hash every file; None when it does not mount (such a state re-joins nothing).
    ``like``: a state whose reading may be reused where it provably holds (see the
    module doc); ``keep_tail``: the bytes at the end of each file to keep for later
    comparisons (0: none)."""
    flash = _Noting(sectors)
    try:
        storage = Storage.mount(flash, format_blank=False)
    except (StorageError, PowerLoss):
        return None
    known = like.reads if like is not None else {}
    try:
        files: list[tuple[str, str]] = []
        reads: dict[str, FileRead] = {}
        todo = list(WALKED)
        while todo:
            folder = todo.pop()
            for name in storage.listdir(folder):
                path = folder.rstrip("/") + "/" + name
                try:
                    with storage.open_read(path) as f:
                        digest, read = _digest(f, flash, sectors, known.get(path), keep_tail)
                except (StorageError, IsADirectoryError):
                    todo.append(path)
                    continue
                files.append((path, digest))
                if read is not None:
                    reads[path] = read
        return FlashState(tuple(sorted(files)), reads)
    except (StorageError, FileNotFoundError):
        return None
    finally:
        flash.seen = None
        with contextlib.suppress(Exception):
            storage.unmount()


def _digest(
    f: ReadFile, flash: _Noting, sectors: tuple[bytes, ...], like: FileRead | None, keep: int
) -> tuple[str, FileRead | None]:
    """SHA-256 hex of the open file ``f`` and how it was read (None: inline or empty)."""
    size = f.size
    if size == 0:
        return hashlib.sha256(b"").hexdigest(), None
    seen: list[int] = []
    flash.seen = seen
    f.read_at(size - 1, 1)  # one read, in the head block (a CTZ file), or none (inline)
    head = seen[0] if seen else None
    if like is not None and head is not None:
        if like.still_reads(head, size, sectors):
            flash.seen = None
            return like.sha256, like
        if _same_tail(f, flash, sectors, like, head, size):
            flash.seen = None
            return like.sha256, like
        seen.clear()
        seen.append(head)
    data = f.read_at(0, size)
    flash.seen = None
    digest = hashlib.sha256(data).hexdigest()
    if head is None:
        return digest, None
    touched = tuple((i, sectors[i]) for i in sorted(set(seen)))
    return digest, _noted(sectors, head, size, touched, digest, data, keep)


def _same_tail(
    f: ReadFile,
    flash: _Noting,
    sectors: tuple[bytes, ...],
    like: FileRead,
    head: int,
    size: int,
) -> bool:
    """Whether ``f`` shares ``like``'s prefix (its block list down to an index *m*) and
    holds ``like``'s bytes from ``tail_from`` on (see the module doc)."""
    shared = like.shared_down_to(head, size, sectors)
    if shared is None:
        return False
    seen = flash.seen
    assert seen is not None
    seen.clear()
    f.read_at(like.tail_from, 1)  # a walk from the head, then the read of tail_from's block
    if not seen or seen[-1] not in like.blocks[: shared + 1]:
        return False
    return f.read_at(like.tail_from, size - like.tail_from) == like.tail


def _noted(
    sectors: tuple[bytes, ...],
    head: int,
    size: int,
    touched: tuple[tuple[int, bytes], ...],
    digest: str,
    data: bytes,
    keep: int,
) -> FileRead:
    """The checkpoint's record of a file read in full: with its consistent block list
    and last ``keep`` bytes when it has them."""
    if keep <= 0 or size <= keep:
        return FileRead(head, size, touched, digest)
    last = ctz.last_index(size, SECTOR)
    chain = ctz.chain(sectors, head, last)
    if len(chain) != last + 1 or not ctz.consistent(sectors, chain, range(1, last + 1)):
        return FileRead(head, size, touched, digest)
    blocks = tuple(chain[i] for i in range(last + 1))
    tail_from = size - keep
    return FileRead(
        head,
        size,
        touched,
        digest,
        blocks=blocks,
        block_bytes=tuple(sectors[b] for b in blocks),
        tail_from=tail_from,
        tail=data[tail_from:],
    )
