"""Power cuts aimed at a kind of flash operation: "tear the 300th page program".

The chip schedules cuts by operation count or virtual time
(:meth:`sim.chip.w25q128.W25Q128.schedule_cut`); this port wrapper counts the
commands going by and arms a cut for the next latched operation when the Nth
command with a given opcode passes, so a scenario can say which operation a cut
lands in without knowing how many others come before it.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.spi import SpiPort
from agent.w25q128jv import Op
from sim.chip.w25q128 import W25Q128
from sim.ports.wrapper import PortWrapper

OPCODES: dict[str, int] = {  # the operation kinds a cut can aim at, as the chip counts them
    "page_program": Op.PAGE_PROGRAM,
    "sector_erase": Op.SECTOR_ERASE,
    "block32_erase": Op.BLOCK32_ERASE,
    "block64_erase": Op.BLOCK64_ERASE,
    "write_status": Op.WRITE_STATUS1,
}
KINDS = {opcode: kind for kind, opcode in OPCODES.items()}


@dataclass(frozen=True)
class AimedCut:
    """Cut during the ``nth`` (1-based) ``op`` command, ``fraction`` of the way through."""

    op: str
    nth: int
    fraction: float = 0.5

    def __post_init__(self) -> None:
        if self.op not in OPCODES:
            raise ValueError(f"AimedCut.op must be one of {sorted(OPCODES)}, got {self.op!r}")
        if isinstance(self.nth, bool) or not isinstance(self.nth, int) or self.nth < 1:
            raise ValueError(f"AimedCut.nth must be an int >= 1, got {self.nth!r}")
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"AimedCut.fraction must lie in [0, 1], got {self.fraction!r}")


class AimedCutPort(PortWrapper):
    """A :class:`agent.spi.SpiPort` in front of another that arms :class:`AimedCut` s.

    ``fired`` lists the cuts that were armed, with the address of the command, so
    a scenario can say where each cut landed.
    """

    def __init__(self, port: SpiPort, chip: W25Q128) -> None:
        super().__init__(port)
        self._chip = chip
        self._cut: AimedCut | None = None
        self._seen = 0
        self.fired: list[tuple[AimedCut, int]] = []

    def arm(self, cut: AimedCut) -> None:
        """Arm ``cut``, counting its commands from now; replaces any armed cut."""
        self._cut, self._seen = cut, 0

    def exchange(
        self,
        out: bytes | bytearray = b"",
        readlen: int = 0,
        start: bool = True,
        stop: bool = True,
        duplex: bool = False,
        droptail: int = 0,
    ) -> bytes:
        cut = self._cut
        if cut is not None and start and out and out[0] == OPCODES[cut.op]:
            self._seen += 1
            if self._seen == cut.nth:
                self._cut = None
                self._chip.schedule_cut(after_ops=1, fraction=cut.fraction)
                address = int.from_bytes(bytes(out[1:4]), "big") if len(out) >= 4 else -1
                self.fired.append((cut, address))
        return super().exchange(out, readlen, start, stop, duplex, droptail)
