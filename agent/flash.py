"""SPI NOR flash driver (Winbond W25Q128JV family) over the :class:`agent.spi.SpiPort` seam.

The same code runs in simulation (a port onto :mod:`sim.chip.w25q128`, or the plain
:mod:`sim.ports.ram`) and on the bench (pyftdi's ``SpiPort``). It sends only standard
single-I/O commands from the W25Q128JV datasheet section 8 and waits through the
injected :class:`agent.clock.Clock`, so under a virtual clock it never sleeps for real.

Waiting (datasheet 8.2.4, Read Status Register-1 BUSY bit): SR1 is polled once at
once, then again after the operation's datasheet typical time, then every 1/64 of
its datasheet maximum; a chip still BUSY ``timeout_margin`` times past the maximum
raises :class:`FlashTimeout`. :class:`agent.errors.PowerLoss` raised by the port is
never caught here.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise

from agent.clock import Clock
from agent.spi import SpiPort
from agent.w25q128jv import BLOCK_32K, BLOCK_64K, PAGE, SECTOR, SIZE, SR1, Op

READ_DATA_MAX_HZ = 50e6  # datasheet 9.6: fR, clock for 03h
PAYLOAD_MAX = 0xFF00  # pyftdi SpiController.PAYLOAD_MAX_LENGTH, each direction
SFDP_SIGNATURE = b"SFDP"  # JESD216 6.2.1
_RDSR1, _WREN = bytes([Op.READ_STATUS1]), bytes([Op.WRITE_ENABLE])
_BUSY, _WEL = int(SR1.BUSY), int(SR1.WEL)  # plain ints: tested on every status poll
_READ_DATA, _FAST_READ = int(Op.READ_DATA), int(Op.FAST_READ)  # plain ints: every read
_PAGE_PROGRAM = int(Op.PAGE_PROGRAM)  # plain int: every page


def _power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


@dataclass(frozen=True)
class FlashPart:
    """One SPI NOR part: identity, geometry and datasheet program/erase times.

    Maxima bound the driver's timeouts; typicals only decide when to poll first.
    W25Q128JV figures: datasheet section 9.6 (AC electrical characteristics).
    """

    name: str
    jedec_id: bytes
    size: int
    page_size: int = PAGE
    sector_size: int = SECTOR
    block32_size: int = BLOCK_32K
    block64_size: int = BLOCK_64K
    t_pp_max_s: float = 3e-3  # tPP page program
    t_se_max_s: float = 0.400  # tSE 4 KiB sector erase
    t_be32_max_s: float = 1.6  # tBE1 32 KiB block erase
    t_be64_max_s: float = 2.0  # tBE2 64 KiB block erase
    t_ce_max_s: float = 200.0  # tCE chip erase
    t_w_max_s: float = 15e-3  # tW write status register
    t_pp_typ_s: float = 0.4e-3
    t_se_typ_s: float = 0.045
    t_be32_typ_s: float = 0.120
    t_be64_typ_s: float = 0.150
    t_ce_typ_s: float = 40.0

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("FlashPart.name must not be empty")
        if not isinstance(self.jedec_id, bytes) or len(self.jedec_id) != 3:
            raise ValueError(f"FlashPart.jedec_id must be 3 bytes, got {self.jedec_id!r}")
        sizes = ("page_size", "sector_size", "block32_size", "block64_size", "size")
        for field in sizes:
            if not _power_of_two(getattr(self, field)):
                raise ValueError(
                    f"FlashPart.{field} must be a power of two, got {getattr(self, field)}"
                )
        for small, big in pairwise(sizes):
            if getattr(self, small) > getattr(self, big):
                raise ValueError(f"FlashPart.{small} must not exceed {big}")
        if self.size > 1 << 24:
            raise ValueError(f"FlashPart.size {self.size} needs 4-byte addresses (not supported)")
        for field in (f for f in self.__dataclass_fields__ if f.startswith("t_")):
            if not getattr(self, field) > 0:
                raise ValueError(f"FlashPart.{field} must be positive, got {getattr(self, field)}")
        for kind in ("pp", "se", "be32", "be64", "ce"):
            if getattr(self, f"t_{kind}_typ_s") > getattr(self, f"t_{kind}_max_s"):
                raise ValueError(f"FlashPart.t_{kind}_typ_s must not exceed t_{kind}_max_s")


W25Q128JV_IQ = FlashPart("W25Q128JV-IQ/JQ", b"\xef\x40\x18", SIZE)
W25Q128JV_IM = FlashPart("W25Q128JV-IM/JM", b"\xef\x70\x18", SIZE)
PARTS: Mapping[bytes, FlashPart] = {p.jedec_id: p for p in (W25Q128JV_IQ, W25Q128JV_IM)}


class FlashError(Exception):
    """The flash did not behave as its datasheet says."""


class UnknownFlash(FlashError):
    """The JEDEC ID read is in no part table (or the SFDP density contradicts it)."""


class FlashTimeout(FlashError):
    """The chip stayed BUSY past the datasheet maximum for the operation."""


class FlashVerifyError(FlashError):
    """Read-back after a program or erase differs from what was written."""


class ProtectedError(FlashError):
    """A program or erase did not take effect because write enable or protection refused it."""


def _hex(data: bytes) -> str:
    return " ".join(f"{b:02x}" for b in data)


def _what(op: str, address: int | None) -> str:
    return op if address is None else f"{op} at 0x{address:06x}"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.4g} ms" if seconds < 10 else f"{seconds:.4g} s"


class SpiFlash:
    """A probed SPI NOR flash: read, program (page-split), erase (largest unit), wait.

    ``verify`` reads back every program and erase. ``poll_interval_s`` fixes the
    BUSY poll interval (default: 1/64 of the operation's datasheet maximum).
    ``max_transfer`` caps the bytes read per exchange (pyftdi allows 0xFF00).
    ``check_sfdp`` cross-checks the part table's size against SFDP density
    (JESD216 basic flash parameter table, 2nd DWORD) when the chip has SFDP.
    """

    def __init__(
        self,
        port: SpiPort,
        clock: Clock,
        *,
        verify: bool = False,
        parts: Mapping[bytes, FlashPart] = PARTS,
        poll_interval_s: float | None = None,
        timeout_margin: float = 1.5,
        max_transfer: int = 32 * 1024,
        check_sfdp: bool = True,
    ) -> None:
        if poll_interval_s is not None and not poll_interval_s > 0:
            raise ValueError(f"poll_interval_s must be positive, got {poll_interval_s}")
        if not timeout_margin >= 1:
            raise ValueError(f"timeout_margin must be at least 1, got {timeout_margin}")
        if not 1 <= max_transfer <= PAYLOAD_MAX:
            raise ValueError(f"max_transfer must be 1..{PAYLOAD_MAX}, got {max_transfer}")
        self._port = port
        self._exchange = port.exchange  # bound once: the read path calls it for every read
        self._clock = clock
        self._verify = verify
        self._poll_interval_s = poll_interval_s
        self._margin = timeout_margin
        self._max_transfer = max_transfer
        ident = self.jedec_id()
        if ident not in parts:
            hint = " (no chip answering?)" if ident in (b"\xff" * 3, b"\x00" * 3) else ""
            raise UnknownFlash(f"unknown SPI flash: JEDEC ID {_hex(ident)}{hint}")
        self.part: FlashPart = parts[ident]
        self.size = self.part.size
        self.page_size = self.part.page_size
        self.sector_size = self.part.sector_size
        part = self.part
        self._times = {  # datasheet parameter: (typical, maximum) seconds
            "tPP": (part.t_pp_typ_s, part.t_pp_max_s),
            "tSE": (part.t_se_typ_s, part.t_se_max_s),
            "tBE1": (part.t_be32_typ_s, part.t_be32_max_s),
            "tBE2": (part.t_be64_typ_s, part.t_be64_max_s),
            "tCE": (part.t_ce_typ_s, part.t_ce_max_s),
        }
        if check_sfdp:
            density = self.sfdp_density()
            if density is not None and density != self.size:
                raise UnknownFlash(
                    f"JEDEC ID {_hex(ident)} says {self.part.name} of {self.size} bytes "
                    f"but SFDP density says {density} bytes"
                )

    # Identity and status ------------------------------------------------------------

    def jedec_id(self) -> bytes:
        """Manufacturer, memory type and capacity (9Fh, datasheet 8.2.29)."""
        return bytes(self._port.exchange(bytes([Op.JEDEC_ID]), 3))

    def unique_id(self) -> bytes:
        """The factory 64-bit unique ID (4Bh after 4 dummy bytes, datasheet 8.2.27)."""
        return bytes(self._port.exchange(bytes([Op.UNIQUE_ID, 0, 0, 0, 0]), 8))

    def read_status(self) -> int:
        """Status Register-1: SRP SEC TB BP2 BP1 BP0 WEL BUSY (05h, datasheet 7.1)."""
        return self._port.exchange(_RDSR1, 1)[0]

    def read_sr2(self) -> int:
        """Status Register-2: SUS CMP LB3 LB2 LB1 (R) QE SRL (35h)."""
        return self._port.exchange(bytes([Op.READ_STATUS2]), 1)[0]

    def read_sr3(self) -> int:
        """Status Register-3: HOLD/RST DRV1 DRV0 (R) (R) WPS (R) (R) (15h)."""
        return self._port.exchange(bytes([Op.READ_STATUS3]), 1)[0]

    def sfdp_density(self) -> int | None:
        """Array size in bytes from SFDP (5Ah), or None when the chip has no SFDP."""
        header = self._read_sfdp(0, 16)
        if header[:4] != SFDP_SIGNATURE:
            return None
        # First parameter header (JESD216 6.2.2): the JEDEC basic table, PTP at 12..14.
        pointer = int.from_bytes(header[12:15], "little")
        dword2 = int.from_bytes(self._read_sfdp(pointer + 4, 4), "little")
        bits = 1 << (dword2 & 0x7FFFFFFF) if dword2 & 0x80000000 else dword2 + 1
        return bits // 8

    def _read_sfdp(self, address: int, length: int) -> bytes:
        out = bytes([Op.READ_SFDP]) + address.to_bytes(3, "big") + b"\x00"
        return bytes(self._port.exchange(out, length))

    # Reading --------------------------------------------------------------------------

    def read(self, address: int, length: int) -> bytes:
        """Read ``length`` bytes from ``address`` (03h, or 0Bh above 50 MHz), in chunks."""
        if address < 0 or length < 0 or address + length > self.size:
            self._check_range("read", address, length)
        if self._port.frequency > READ_DATA_MAX_HZ:
            opcode, dummy = _FAST_READ, b"\x00"
        elif length <= self._max_transfer:  # littlefs's every read: one exchange, built flat
            return bytes(self._exchange((_READ_DATA << 24 | address).to_bytes(4, "big"), length))
        else:
            opcode, dummy = _READ_DATA, b""
        chunks = []
        end = address + length
        while address < end:
            n = min(self._max_transfer, end - address)
            out = bytes([opcode]) + address.to_bytes(3, "big") + dummy
            chunks.append(self._port.exchange(out, n))
            address += n
        return b"".join(chunks)

    # Programming ----------------------------------------------------------------------

    def program(self, address: int, data: bytes | bytearray | memoryview) -> None:
        """Program ``data`` at ``address`` with 02h, one page at a time (datasheet 8.2.13).

        Programming only clears bits: the range must be erased first. Each page
        write is split at page boundaries, since the chip wraps within a page.
        """
        data = bytes(data)
        self._check_range("program", address, len(data))
        page = self.page_size
        exchange, write_enable, finish = self._exchange, self._write_enable, self._finish
        pos = 0
        while pos < len(data):
            at = address + pos
            n = min(page - at % page, len(data) - pos)
            write_enable("page program", at)
            exchange((_PAGE_PROGRAM << 24 | at).to_bytes(4, "big") + data[pos : pos + n])
            finish("page program", at, "tPP")
            pos += n
        if self._verify and data:
            self._check_readback("program", address, data)

    # Erasing --------------------------------------------------------------------------

    def erase(self, address: int, length: int) -> None:
        """Erase a sector-aligned range, greedily with the largest aligned unit that fits.

        64 KiB blocks (D8h), 32 KiB blocks (52h), else 4 KiB sectors (20h)
        (datasheet 8.2.15 to 8.2.17).
        """
        self._check_range("erase", address, length)
        for field, value in (("address", address), ("length", length)):
            if value % self.sector_size:
                raise ValueError(
                    f"erase {field} 0x{value:x} is not a multiple of the "
                    f"{self.sector_size}-byte sector"
                )
        part = self.part
        units = (
            (part.block64_size, Op.BLOCK64_ERASE, "64 KiB block erase", "tBE2"),
            (part.block32_size, Op.BLOCK32_ERASE, "32 KiB block erase", "tBE1"),
            (part.sector_size, Op.SECTOR_ERASE, "sector erase", "tSE"),
        )
        start, end = address, address + length
        while address < end:
            for unit, opcode, name, param in units:
                if address % unit == 0 and end - address >= unit:
                    self._erase_unit(opcode, address, name, param)
                    address += unit
                    break
        if self._verify and length:
            self._check_readback("erase", start, b"\xff" * length)

    def erase_sector(self, address: int) -> None:
        """Erase the 4 KiB sector at a sector-aligned ``address`` (20h)."""
        self.erase(address, self.sector_size)

    def chip_erase(self) -> None:
        """Erase the whole array (C7h, datasheet 8.2.18); takes up to tCE."""
        self._erase_unit(Op.CHIP_ERASE, None, "chip erase", "tCE")
        if self._verify:
            self._check_readback("erase", 0, b"\xff" * self.size)

    def _erase_unit(self, opcode: int, address: int | None, op: str, param: str) -> None:
        self._write_enable(op, address)
        tail = b"" if address is None else address.to_bytes(3, "big")
        self._port.exchange(bytes([opcode]) + tail)
        self._finish(op, address, param)

    # Waiting --------------------------------------------------------------------------

    def wait_ready(self, timeout_s: float, what: str, *, first_wait_s: float = 0.0) -> int:
        """Poll SR1 until BUSY clears and return it; FlashTimeout after ``timeout_s``.

        Polls once at once, then after ``first_wait_s``, then at the poll interval,
        sleeping on the injected clock in between (never a busy loop).
        """
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        start = self._clock.monotonic()
        status = self._poll(timeout_s, first_wait_s)
        if status & _BUSY:
            elapsed = self._clock.monotonic() - start
            raise FlashTimeout(f"{self.part.name} still BUSY {_ms(elapsed)} after {what}")
        return status

    def _poll(self, timeout_s: float, first_wait_s: float) -> int:
        """SR1 once BUSY clears, or the last SR1 (BUSY set) once ``timeout_s`` passed."""
        clock = self._clock
        interval = self._poll_interval_s or timeout_s / (64 * self._margin)
        wait = min(first_wait_s, timeout_s) or interval
        start = clock.monotonic()
        exchange = self._exchange
        while True:
            status = exchange(_RDSR1, 1)[0]
            if not status & _BUSY:
                return status
            elapsed = clock.monotonic() - start
            if elapsed >= timeout_s:
                return status
            clock.sleep(min(wait, timeout_s - elapsed))
            wait = interval

    def _finish(self, op: str, address: int | None, param: str) -> None:
        """Wait out an operation; WEL still set afterwards means the chip ignored it."""
        typ, worst = self._times[param]
        start = self._clock.monotonic()
        status = self._poll(worst * self._margin, typ)
        if status & _BUSY:
            elapsed = self._clock.monotonic() - start
            raise FlashTimeout(
                f"{self.part.name} still BUSY {_ms(elapsed)} after {_what(op, address)} "
                f"(datasheet max {param} {_ms(worst)})"
            )
        if status & _WEL:
            # A completed program/erase clears WEL (datasheet 7.1.2); a refused one never starts.
            detail = self._protection(status)
            what = _what(op, address)
            raise ProtectedError(f"{what} was ignored by the chip (WEL still 1 after it); {detail}")

    def _write_enable(self, op: str, address: int | None) -> None:
        exchange = self._exchange
        exchange(_WREN)
        status = exchange(_RDSR1, 1)[0]
        if not status & _WEL:
            raise ProtectedError(
                f"write enable (06h) did not latch before {_what(op, address)}; "
                f"{self._protection(status)}"
            )

    def _protection(self, sr1: int) -> str:
        """The status bits that decide write protection, named (datasheet 7.1)."""
        sr2, sr3 = self.read_sr2(), self.read_sr3()
        return (
            f"SR1=0x{sr1:02x} (SRP={sr1 >> 7 & 1} SEC={sr1 >> 6 & 1} TB={sr1 >> 5 & 1} "
            f"BP={sr1 >> 2 & 7} WEL={sr1 >> 1 & 1} BUSY={sr1 & 1}) "
            f"SR2=0x{sr2:02x} (CMP={sr2 >> 6 & 1} SRL={sr2 & 1}) "
            f"SR3=0x{sr3:02x} (WPS={sr3 >> 2 & 1})"
        )

    # Checks ---------------------------------------------------------------------------

    def _check_range(self, op: str, address: int, length: int) -> None:
        if address < 0 or length < 0 or address + length > self.size:
            raise ValueError(
                f"{op} of {length} bytes at address 0x{address:x} is outside the "
                f"{self.size}-byte {self.part.name}"
            )

    def _check_readback(self, op: str, address: int, expected: bytes) -> None:
        got = self.read(address, len(expected))
        if got == expected:
            return
        first = next(i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b)
        bad = sum(a != b for a, b in zip(got, expected, strict=True))
        at = address + first
        raise FlashVerifyError(
            f"{op} verify failed at 0x{at:06x}: expected {_hex(expected[first : first + 8])}, "
            f"read {_hex(got[first : first + 8])} ({bad} of {len(expected)} bytes differ)"
        )
