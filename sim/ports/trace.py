"""SPI traces a logic-analyzer tool reads: transaction logs written as VCD.

A log of :class:`sim.ports.model.SpiTransaction` (from :class:`sim.ports.model.SimSpiPort`
with ``log=True``, or from :class:`TracePort` in front of any port: the virtual FT232H's,
a real rig's) becomes a Value Change Dump (IEEE 1364 section 18) with four wires under
scope ``spi``: ``cs`` (/CS, active low), ``sck``, ``mosi``, ``miso``. Bits go out MSB
first in SPI mode 0 (or 3): data changes while SCK is low and is sampled on its rising
edge (W25Q128JV datasheet 6.1.1), at each transaction's SCK frequency and device time.

sigrok decodes it (``docs/w25q128jv.md``, "Traces")::

    sigrok-cli -I vcd:compress=1000 -i trace.vcd \\
        -P spi:clk=sck:mosi=mosi:miso=miso:cs=cs,spiflash -A spiflash

and PulseView opens the same file (File, Import Value Change Dump). Idle time between
transactions is kept as it was on the device's clock; ``compress`` shortens it on import.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from vcd import VCDWriter

from agent.clock import Clock
from agent.w25q128jv import ADDRESSED
from sim.ports.model import LOG_BYTES, SpiTransaction
from sim.ports.wrapper import PortWrapper

TIMESCALE_NS = 1  # one VCD tick: 1 ns resolves a 30 MHz SCK's 16.7 ns half period
GAP_NS = 50  # /CS setup and hold around each transaction (tSLCH, tCHSH >= 5 ns, datasheet 9.6)


def write_vcd(
    transactions: Iterable[SpiTransaction],
    out: str | Path | IO[str],
    *,
    mode: int = 0,
    comment: str = "ota-hil SPI trace",
) -> int:
    """Write ``transactions`` to ``out`` (a path or a text file); returns how many."""
    if mode not in (0, 3):
        raise ValueError(f"mode must be 0 or 3 (the W25Q128JV's SPI modes), got {mode!r}")
    if isinstance(out, str | Path):
        with open(out, "w", encoding="ascii") as stream:
            return write_vcd(transactions, stream, mode=mode, comment=comment)
    idle_sck = 1 if mode == 3 else 0
    count = 0
    vcd = VCDWriter(out, timescale=f"{TIMESCALE_NS} ns", date="", comment=comment)
    try:
        cs = vcd.register_var("spi", "cs", "wire", size=1, init=1)
        sck = vcd.register_var("spi", "sck", "wire", size=1, init=idle_sck)
        mosi = vcd.register_var("spi", "mosi", "wire", size=1, init=1)
        miso = vcd.register_var("spi", "miso", "wire", size=1, init=1)
        now = 0
        for tx in transactions:
            now = _draw(vcd, (cs, sck, mosi, miso), tx, max(now, _ns(tx.time_s)), idle_sck)
            count += 1
    finally:
        # a last timestamp after the last /CS rise, so a decoder sees the transaction end
        vcd.close(now + 20 * GAP_NS)
    return count


def _ns(seconds: float) -> int:
    return round(seconds * 1e9 / TIMESCALE_NS)


def _draw(vcd: VCDWriter, wires: tuple[Any, ...], tx: SpiTransaction, t: int, idle: int) -> int:
    """One transaction from ``t``: /CS low, 8 clocks per byte, /CS high; returns the end."""
    cs, sck, mosi, miso = wires
    half = max(1, round(0.5e9 / (tx.sck_hz or 8e6) / TIMESCALE_NS))
    vcd.change(cs, t, 0)
    t += GAP_NS
    for out_byte, in_byte in zip(tx.mosi, tx.miso.ljust(len(tx.mosi), b"\xff"), strict=True):
        for bit in range(7, -1, -1):
            if idle:  # mode 3: the falling edge shifts, the rising edge samples
                vcd.change(sck, t, 0)
            vcd.change(mosi, t, (out_byte >> bit) & 1)
            vcd.change(miso, t, (in_byte >> bit) & 1)
            vcd.change(sck, t + half, 1)
            if not idle:
                vcd.change(sck, t + 2 * half, 0)
            t += 2 * half
    t += GAP_NS
    vcd.change(cs, t, 1)
    vcd.change(mosi, t, 1)
    vcd.change(miso, t, 1)
    return t + GAP_NS


def vcd_text(transactions: Iterable[SpiTransaction], *, mode: int = 0) -> str:
    """The VCD of ``transactions`` as a string."""
    buffer = io.StringIO()
    write_vcd(transactions, buffer, mode=mode)
    return buffer.getvalue()


class TracePort(PortWrapper):
    """Records every transaction through any :class:`agent.spi.SpiPort` (a pyftdi port on
    a rig, the virtual FT232H's) as :class:`~sim.ports.model.SpiTransaction` in :attr:`log`.

    Only what the master sees is known here: on a half-duplex exchange MISO during the
    command is not returned by pyftdi, so it is drawn as 0xFF (released data line).
    """

    def __init__(self, port: Any, clock: Clock, *, log_bytes: int = LOG_BYTES) -> None:
        super().__init__(port)
        self._clock = clock
        self.log_bytes = log_bytes
        self.log: list[SpiTransaction] = []
        self._open: list[Any] | None = None  # [time, mosi, miso, clocked, out_len, in_len]

    def exchange(
        self,
        out: bytes | bytearray = b"",
        readlen: int = 0,
        start: bool = True,
        stop: bool = True,
        duplex: bool = False,
        droptail: int = 0,
    ) -> bytes:
        if start or self._open is None:
            self._open = [self._clock.monotonic(), bytearray(), bytearray(), 0, 0, 0]
        got = super().exchange(out, readlen, start, stop, duplex, droptail)
        entry = self._open
        sent = bytes(out) + (b"" if duplex else b"\xff" * readlen)
        seen = got if duplex else b"\xff" * len(out) + got
        room = self.log_bytes - len(entry[1])
        if room > 0:
            entry[1] += sent[:room]
            entry[2] += seen[:room]
        entry[3] += len(sent)
        entry[4] += len(out)
        entry[5] += len(out) if duplex else readlen
        if stop:
            self._close(entry)
        return got

    def _close(self, entry: list[Any]) -> None:
        self._open = None
        mosi = bytes(entry[1])
        opcode = mosi[0] if mosi else None
        address = None
        if opcode in ADDRESSED and len(mosi) >= 4:
            address = int.from_bytes(mosi[1:4], "big")
        self.log.append(
            SpiTransaction(
                entry[0],
                opcode,
                address,
                entry[4],
                entry[5],
                mosi,
                bytes(entry[2]),
                entry[3],
                self.frequency,
            )
        )
