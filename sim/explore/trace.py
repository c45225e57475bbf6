"""The flash trace around each power cut, for ``python -m sim replay``.

A logging port (:class:`sim.ports.model.SimSpiPort` with ``log=True``) records every
transaction; :class:`PowerMarks` notes where in that log each power loss was first
seen, and :func:`trace_lines` prints the transactions before it with the torn one
flagged, then the first transactions of the next boot.
"""

from __future__ import annotations

from agent.errors import PowerLoss
from agent.w25q128jv import STATE_CHANGING, Op
from sim.ports.aimed_cut import KINDS
from sim.ports.model import SimSpiPort, SpiTransaction
from sim.ports.wrapper import PortWrapper


class PowerMarks(PortWrapper):
    """A logging :class:`sim.ports.model.SimSpiPort` wrapper that marks where in its log each
    power loss was first seen (the first transaction the dead chip refused), so a trace
    shows the operations around the cut itself rather than the next boot's."""

    def __init__(self, port: SimSpiPort) -> None:
        super().__init__(port)
        self.port = port
        self.marks: list[tuple[int, float]] = []  # (log length, device time) per loss
        self._dead = False

    @property
    def log(self) -> list[SpiTransaction]:
        return self.port.log or []

    def exchange(
        self,
        out: bytes | bytearray = b"",
        readlen: int = 0,
        start: bool = True,
        stop: bool = True,
        duplex: bool = False,
        droptail: int = 0,
    ) -> bytes:
        try:
            got = super().exchange(out, readlen, start, stop, duplex, droptail)
        except PowerLoss:
            if not self._dead:
                self._dead = True
                self.marks.append((len(self.log), self.port.chip.clock.monotonic()))
            raise
        self._dead = False
        return got


def trace_lines(marks: PowerMarks, around: int = 12) -> list[str]:
    """For each power loss: the ``around`` SPI transactions before it (the state-changing
    one it tore is flagged), the loss, and the first few transactions of the next boot."""
    log = marks.log
    lines: list[str] = []

    def line(i: int, flag: str = "") -> str:
        tx = log[i]
        op = tx.opcode
        name = _op_name(op)
        addr = "" if tx.address is None else f" @ {tx.address:#08x}"
        return f"  [{tx.time_s:12.6f} s] #{i:7d} {name}{addr} out={tx.out_len} in={tx.in_len}{flag}"

    for n, (end, when) in enumerate(marks.marks, 1):
        start = max(0, end - around)
        torn = max((i for i in range(start, end) if log[i].opcode in STATE_CHANGING), default=None)
        lines.append(f"-- power cut {n}: the last {end - start} transactions before it --")
        lines += [
            line(i, "   <- cut during/after this" if i == torn else "") for i in range(start, end)
        ]
        lines.append(f"  <power lost; first refused transaction at {when:.6f} s (device time)>")
        nxt = marks.marks[n][0] if n < len(marks.marks) else len(log)
        after = list(range(end, min(end + 3, nxt)))
        if after:
            lines.append("  next boot:")
            lines += [line(i) for i in after]
    return lines


def _op_name(opcode: int | None) -> str:
    """The instruction's name as the trace shows it (``page_program``), or its hex byte."""
    if opcode is None:
        return "?"
    if opcode in KINDS:
        return KINDS[opcode]
    return Op(opcode).name.lower() if opcode in Op._value2member_map_ else f"{opcode:#04x}"
