"""A plain bytearray behind the SPI port interface: the flash driver's baseline.

:class:`RamSpiPort` answers the few W25Q128JV commands :class:`agent.flash.SpiFlash`
sends, with NOR semantics (programs AND bits and wrap within their page, erases set
0xFF, WEL gates both; datasheet 8.2) but no timing: it is never BUSY and the clock
never moves. It is the speed baseline for ``python -m sim bench flash`` and a second
port the driver's tests run on. It is not a chip model: no status-register writes,
no protection, no power cuts (use :mod:`sim.chip.w25q128` for those).
"""

from dataclasses import dataclass

from agent.w25q128jv import ADDRESSED, BLOCK_64K, CHIP_ERASES, ERASE_UNITS, PAGE, SIZE, SR1, Op
from sim.chip.sectors import SectorArray
from sim.ports.wrapper import ExchangePort

READS_WITH_ADDRESS: dict[int, int] = {  # opcode: dummy bytes after the address
    Op.READ_DATA: 0,
    Op.FAST_READ: 1,
    Op.READ_SFDP: 1,
}
# plain ints for the per-transaction checks (an enum member costs an attribute lookup)
_JEDEC, _RDSR1, _UID, _SFDP = (
    int(op) for op in (Op.JEDEC_ID, Op.READ_STATUS1, Op.UNIQUE_ID, Op.READ_SFDP)
)
_RDSR23 = (int(Op.READ_STATUS2), int(Op.READ_STATUS3))
_PP, _WREN, _WRDI = (int(op) for op in (Op.PAGE_PROGRAM, Op.WRITE_ENABLE, Op.WRITE_DISABLE))
_WEL = int(SR1.WEL)


@dataclass(frozen=True)
class SpiCommand:
    """One /CS-framed transaction: opcode, 24-bit address if any, data bytes in or out."""

    opcode: int
    address: int | None
    length: int


class RamSpiPort(ExchangePort):
    """A bytearray speaking enough SPI NOR for the driver, with an optional command log."""

    def __init__(
        self,
        size: int = SIZE,
        *,
        jedec_id: bytes = b"\xef\x40\x18",
        unique_id: bytes = b"RAMPORT0",
        frequency: float = 30e6,
        log: bool = False,
    ) -> None:
        if size <= 0 or size % BLOCK_64K or size > 1 << 24:
            raise ValueError(f"size must be a multiple of 64 KiB up to 16 MiB, got {size}")
        if len(jedec_id) != 3:
            raise ValueError(f"jedec_id must be 3 bytes, got {jedec_id!r}")
        if len(unique_id) != 8:
            raise ValueError(f"unique_id must be 8 bytes, got {unique_id!r}")
        # a bytearray, or the chip store's SectorArray when shared with a MemoryFlash
        self.memory: bytearray | SectorArray = bytearray(b"\xff" * size)
        self.jedec_id = bytes(jedec_id)
        self.unique_id = bytes(unique_id)
        self.wel = False
        self.log: list[SpiCommand] | None = [] if log else None
        self._frequency = float(frequency)
        self._tx = bytearray()  # bytes clocked out since /CS fell
        self._read = 0  # bytes clocked in since /CS fell
        self._sfdp = self._sfdp_table(size)

    @property
    def frequency(self) -> float:
        return self._frequency

    def set_frequency(self, frequency: float) -> None:
        self._frequency = float(frequency)

    def exchange(
        self,
        out: bytes | bytearray = b"",
        readlen: int = 0,
        start: bool = True,
        stop: bool = True,
        duplex: bool = False,
        droptail: int = 0,
    ) -> bytes:
        """Half-duplex transfer; ``start``/``stop`` frame the command as /CS does."""
        if duplex or droptail:
            raise NotImplementedError("RamSpiPort supports half-duplex transfers only")
        if start:
            self._tx.clear()
            self._read = 0
        self._tx += out
        data = self._answer(readlen) if readlen else b""
        self._read += readlen
        if stop:
            self._deselect()
        return data

    def _answer(self, n: int) -> bytes:
        """Bytes the chip shifts out next; 0xFF (pulled-up MISO) for anything unknown."""
        tx, pos = self._tx, self._read
        op = tx[0] if tx else None
        if op == _JEDEC:
            return (self.jedec_id + b"\xff" * (pos + n))[pos : pos + n]
        if op == _RDSR1:
            return bytes([_WEL if self.wel else 0]) * n
        if op in _RDSR23:
            return b"\x00" * n
        if op == _UID and len(tx) >= 5:
            return (self.unique_id + b"\xff" * (pos + n))[pos : pos + n]
        if op in READS_WITH_ADDRESS and len(tx) >= 4 + READS_WITH_ADDRESS[op]:
            address = int.from_bytes(tx[1:4], "big") + pos
            mem = self._sfdp if op == _SFDP else self.memory
            address %= len(mem)  # reads wrap at the end of the array (datasheet 8.2.6)
            data = bytes(mem[address : address + n])
            while len(data) < n:
                data += bytes(mem[: n - len(data)])
            return data
        return b"\xff" * n

    def _deselect(self) -> None:
        """/CS rises: writes and erases happen now, if WEL was set (datasheet 8.2)."""
        tx = self._tx
        if not tx:
            return
        op = tx[0]
        address = int.from_bytes(tx[1:4], "big") if op in ADDRESSED and len(tx) >= 4 else None
        if self.log is not None:
            length = len(tx) - 4 if op == _PP else self._read
            self.log.append(SpiCommand(op, address, length))
        if op == _WREN:
            self.wel = True
        elif op == _WRDI:
            self.wel = False
        elif op == _PP and self.wel and address is not None and len(tx) > 4:
            self._program(address % len(self.memory), bytes(tx[4:]))
            self.wel = False
        elif op in ERASE_UNITS and self.wel and address is not None:
            unit = ERASE_UNITS[op]
            base = address % len(self.memory) // unit * unit
            self.memory[base : base + unit] = b"\xff" * unit
            self.wel = False
        elif op in CHIP_ERASES and self.wel:
            self.memory[:] = b"\xff" * len(self.memory)
            self.wel = False

    def _program(self, address: int, data: bytes) -> None:
        """AND the data into one page, wrapping at its end; only the last 256 bytes count."""
        base, offset = address - address % PAGE, address % PAGE
        if offset == 0 and len(data) == PAGE:  # the common case: one whole page
            old = int.from_bytes(self.memory[base : base + PAGE], "big")
            new = old & int.from_bytes(data, "big")
            self.memory[base : base + PAGE] = new.to_bytes(PAGE, "big")
            return
        kept = data[-PAGE:]
        first = (offset + len(data) - len(kept)) % PAGE  # where the first kept byte lands
        pattern = bytearray(b"\xff" * PAGE)
        head = kept[: PAGE - first]
        pattern[first : first + len(head)] = head
        pattern[: len(kept) - len(head)] = kept[len(head) :]
        old = int.from_bytes(self.memory[base : base + PAGE], "big")
        new = old & int.from_bytes(pattern, "big")
        self.memory[base : base + PAGE] = new.to_bytes(PAGE, "big")

    @staticmethod
    def _sfdp_table(size: int) -> bytes:
        """SFDP header, one parameter header and the basic table's density (JESD216)."""
        header = b"SFDP" + bytes([0x06, 0x01, 0x00, 0xFF])  # rev 1.6, 1 header
        param = bytes([0x00, 0x06, 0x01, 9]) + (0x80).to_bytes(3, "little") + b"\xff"
        table = bytearray(b"\xff" * 36)
        table[4:8] = (size * 8 - 1).to_bytes(4, "little")  # 2nd DWORD: density in bits - 1
        return (header + param).ljust(0x80, b"\xff") + bytes(table)
