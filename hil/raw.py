"""Raw W25Q128JV instructions over any SpiPort, with a transcript of every byte.

The probe, the differential check and the shared conformance tests speak to the
chip one /CS frame at a time (datasheet section 8.2), below the driver, so that
every response byte and status read can be recorded and compared. Waiting uses
the injected clock; timeouts come from the datasheet maxima in
:data:`agent.flash.W25Q128JV_IQ` (section 9.6).
"""

from dataclasses import dataclass, field

from agent.clock import Clock
from agent.flash import W25Q128JV_IQ
from agent.spi import SpiPort
from agent.w25q128jv import READ_STATUS, SR1, WRITE_STATUS, Op

POLL_S = 20e-6  # first gap between status reads: well below tPP typical (0.4 ms)
POLL_MAX_S = 1e-3  # longest gap: 2% of tSE typical (45 ms)


class Timeout(Exception):
    """The chip stayed BUSY past the datasheet maximum (with margin)."""


@dataclass(frozen=True)
class Frame:
    """One /CS frame: what was sent, what came back, and when (clock seconds)."""

    out: bytes
    got: bytes
    at_s: float
    note: str = ""


@dataclass
class RawNor:
    """One chip behind ``port``; every frame is appended to ``transcript``."""

    port: SpiPort
    clock: Clock
    transcript: list[Frame] = field(default_factory=list)
    record: bool = True

    def frame(self, out: bytes, readlen: int = 0, note: str = "") -> bytes:
        """Send ``out`` then read ``readlen`` bytes under one /CS low."""
        got = bytes(self.port.exchange(out, readlen))
        if self.record:
            self.transcript.append(Frame(bytes(out), got, self.clock.monotonic(), note))
        return got

    # identity (datasheet 8.2.27-8.2.31)
    def jedec_id(self) -> bytes:
        return self.frame(bytes((Op.JEDEC_ID,)), 3, "jedec id")

    def manufacturer_device_id(self) -> bytes:
        return self.frame(bytes((Op.MANUFACTURER_DEVICE_ID, 0, 0, 0)), 2, "manufacturer/device id")

    def release_power_down_id(self) -> int:
        return self.frame(bytes((Op.RELEASE_POWER_DOWN, 0, 0, 0)), 1, "release power-down / id")[0]

    def unique_id(self) -> bytes:
        return self.frame(bytes((Op.UNIQUE_ID, 0, 0, 0, 0)), 8, "unique id")

    def sfdp(self, address: int, length: int) -> bytes:
        return self.frame(bytes((Op.READ_SFDP, *_addr(address), 0)), length, "sfdp")

    # status (8.2.4-8.2.6)
    def sr(self, n: int = 1) -> int:
        return self.frame(bytes((READ_STATUS[n - 1],)), 1, f"sr{n}")[0]

    def write_sr(self, n: int, value: int, *, volatile: bool = False) -> None:
        enable = Op.VOLATILE_SR_WRITE_ENABLE if volatile else Op.WRITE_ENABLE
        self.frame(bytes((enable,)), 0, "wren")
        self.frame(bytes((WRITE_STATUS[n - 1], value)), 0, f"write sr{n}")

    def wren(self) -> None:
        self.frame(bytes((Op.WRITE_ENABLE,)), 0, "wren")

    def wrdi(self) -> None:
        self.frame(bytes((Op.WRITE_DISABLE,)), 0, "wrdi")

    # data (8.2.7, 8.2.13, 8.2.17-8.2.19)
    def read(self, address: int, length: int) -> bytes:
        return self.frame(bytes((Op.READ_DATA, *_addr(address))), length, "read")

    def program(self, address: int, data: bytes, *, wren: bool = True) -> None:
        if wren:
            self.wren()
        self.frame(bytes((Op.PAGE_PROGRAM, *_addr(address))) + bytes(data), 0, "page program")

    def erase(self, address: int, opcode: int = Op.SECTOR_ERASE, *, wren: bool = True) -> None:
        if wren:
            self.wren()
        self.frame(bytes((opcode, *_addr(address))), 0, f"erase {opcode:02X}")

    def suspend(self) -> None:
        self.frame(bytes((Op.SUSPEND,)), 0, "suspend")

    def resume(self) -> None:
        self.frame(bytes((Op.RESUME,)), 0, "resume")

    def reset(self) -> None:
        self.frame(bytes((Op.ENABLE_RESET,)), 0, "reset enable")
        self.frame(bytes((Op.RESET_DEVICE,)), 0, "reset")
        self.clock.sleep(30e-6)  # tRST (datasheet 8.2.44)

    # security registers 1-3 at 0x1000, 0x2000, 0x3000 (8.2.32-8.2.34)
    def security_read(self, register: int, offset: int, length: int) -> bytes:
        return self.frame(
            bytes((Op.READ_SECURITY, *_addr(register << 12 | offset), 0)), length, "sec read"
        )

    def security_program(self, register: int, offset: int, data: bytes) -> None:
        self.wren()
        self.frame(
            bytes((Op.PROGRAM_SECURITY, *_addr(register << 12 | offset))) + data, 0, "sec program"
        )

    def security_erase(self, register: int) -> None:
        self.wren()
        self.frame(bytes((Op.ERASE_SECURITY, *_addr(register << 12))), 0, "sec erase")

    def wait_idle(self, timeout_s: float, poll_s: float = POLL_S) -> tuple[float, int]:
        """Poll SR1 until BUSY clears; return (seconds waited, status reads)."""
        start = self.clock.monotonic()
        polls = 0
        while True:
            polls += 1
            if not self.sr(1) & SR1.BUSY:
                return self.clock.monotonic() - start, polls
            if self.clock.monotonic() - start > timeout_s:
                raise Timeout(f"BUSY after {timeout_s * 1e3:.1f} ms ({polls} status reads)")
            self.clock.sleep(poll_s)
            poll_s = min(poll_s * 1.25, POLL_MAX_S)  # fine early, cheap on long erases


# Datasheet maxima (section 9.6) with a 2x margin, as timeouts for wait_idle.
T_PP_S = 2 * W25Q128JV_IQ.t_pp_max_s
T_SE_S = 2 * W25Q128JV_IQ.t_se_max_s
T_BE64_S = 2 * W25Q128JV_IQ.t_be64_max_s
T_W_S = 2 * W25Q128JV_IQ.t_w_max_s


def _addr(address: int) -> tuple[int, int, int]:
    if not 0 <= address < 1 << 24:
        raise ValueError(f"address 0x{address:X} does not fit 24 bits")
    return (address >> 16) & 0xFF, (address >> 8) & 0xFF, address & 0xFF
