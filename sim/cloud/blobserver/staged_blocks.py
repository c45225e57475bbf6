"""Put Block's uncommitted blocks, held in memory until Put Block List commits them.

Bounded as Azure bounds them ("Put Block": at most 100,000 uncommitted blocks per
blob, discarded a week after the blob was last touched) and, this server holding
them in memory, by a byte budget over all blobs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sim.cloud.blobserver.errors import BlobError

# Put Block: "a blob can have up to 100,000 uncommitted blocks"; uncommitted blocks are
# discarded when no Put Block or Put Block List touches the blob for a week.
MAX_UNCOMMITTED_BLOCKS = 100_000
UNCOMMITTED_TTL_S = 7 * 24 * 3600.0
MAX_UNCOMMITTED_BYTES = 256 * 1024 * 1024  # this server's memory bound over all blobs


@dataclass
class _Staged:
    blocks: dict[str, bytes] = field(default_factory=dict)
    touched: float = 0.0


class StagedBlocks:
    """Put Block's uncommitted blocks, per blob, until Put Block List commits them.

    Bounded as Azure bounds them: at most ``max_blocks`` per blob (409
    ``BlockCountExceedsLimit``), discarded ``ttl_s`` after the last Put Block or Put
    Block List on the blob; and, this server holding them in memory, at most
    ``max_bytes`` over all blobs (413 ``RequestBodyTooLarge``).
    """

    def __init__(
        self,
        *,
        max_blocks: int = MAX_UNCOMMITTED_BLOCKS,
        max_bytes: int = MAX_UNCOMMITTED_BYTES,
        ttl_s: float = UNCOMMITTED_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for name, value in (("max_blocks", max_blocks), ("max_bytes", max_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not ttl_s > 0:
            raise ValueError(f"ttl_s must be > 0, got {ttl_s!r}")
        self.max_blocks, self.max_bytes, self.ttl_s = max_blocks, max_bytes, ttl_s
        self._clock = clock
        self._blobs: dict[tuple[str, str], _Staged] = {}

    @property
    def total_bytes(self) -> int:
        self._expire()
        return sum(len(b) for s in self._blobs.values() for b in s.blocks.values())

    def stage_block(self, container: str, name: str, block_id: str, data: bytes) -> None:
        self._expire()
        staged = self._blobs.setdefault((container, name), _Staged())
        old = staged.blocks.get(block_id)
        if old is None and len(staged.blocks) >= self.max_blocks:
            raise BlobError(
                409,
                "BlockCountExceedsLimit",
                detail={"MaxLimit": str(self.max_blocks)},
            )
        room = self.max_bytes - self.total_bytes + (len(old) if old is not None else 0)
        if len(data) > room:
            raise BlobError(413, "RequestBodyTooLarge", detail={"MaxLimit": str(max(0, room))})
        staged.blocks[block_id] = data
        staged.touched = self._clock()

    def staged(self, container: str, name: str) -> dict[str, bytes]:
        self._expire()
        staged = self._blobs.get((container, name))
        if staged is None:
            return {}
        staged.touched = self._clock()
        return dict(staged.blocks)

    def clear_staged(self, container: str, name: str) -> None:
        self._blobs.pop((container, name), None)

    def _expire(self) -> None:
        cutoff = self._clock() - self.ttl_s
        for key in [k for k, s in self._blobs.items() if s.touched <= cutoff]:
            del self._blobs[key]
