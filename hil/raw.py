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

WREN, WRDI, VWREN = 0x06, 0x04, 0x50
RDSR1, RDSR2, RDSR3 = 0x05, 0x35, 0x15
WRSR1, WRSR2, WRSR3 = 0x01, 0x31, 0x11
READ, FAST_READ, PP = 0x03, 0x0B, 0x02
SE, BE32, BE64 = 0x20, 0x52, 0xD8
SUSPEND, RESUME = 0x75, 0x7A
JEDEC, MFR_DEV, RELEASE_PD, UNIQUE, SFDP = 0x9F, 0x90, 0xAB, 0x4B, 0x5A
SEC_ERASE, SEC_PROGRAM, SEC_READ = 0x44, 0x42, 0x48
RESET_ENABLE, RESET = 0x66, 0x99
BUSY, WEL = 0x01, 0x02
SR2_SUS = 0x80
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
        return self.frame(bytes((JEDEC,)), 3, "jedec id")

    def manufacturer_device_id(self) -> bytes:
        return self.frame(bytes((MFR_DEV, 0, 0, 0)), 2, "manufacturer/device id")

    def release_power_down_id(self) -> int:
        return self.frame(bytes((RELEASE_PD, 0, 0, 0)), 1, "release power-down / id")[0]

    def unique_id(self) -> bytes:
        return self.frame(bytes((UNIQUE, 0, 0, 0, 0)), 8, "unique id")

    def sfdp(self, address: int, length: int) -> bytes:
        return self.frame(bytes((SFDP, *_addr(address), 0)), length, "sfdp")

    # status (8.2.4-8.2.6)
    def sr(self, n: int = 1) -> int:
        opcode = {1: RDSR1, 2: RDSR2, 3: RDSR3}[n]
        return self.frame(bytes((opcode,)), 1, f"sr{n}")[0]

    def write_sr(self, n: int, value: int, *, volatile: bool = False) -> None:
        self.frame(bytes((VWREN if volatile else WREN,)), 0, "wren")
        self.frame(bytes(({1: WRSR1, 2: WRSR2, 3: WRSR3}[n], value)), 0, f"write sr{n}")

    def wren(self) -> None:
        self.frame(bytes((WREN,)), 0, "wren")

    def wrdi(self) -> None:
        self.frame(bytes((WRDI,)), 0, "wrdi")

    # data (8.2.7, 8.2.13, 8.2.17-8.2.19)
    def read(self, address: int, length: int) -> bytes:
        return self.frame(bytes((READ, *_addr(address))), length, "read")

    def program(self, address: int, data: bytes, *, wren: bool = True) -> None:
        if wren:
            self.wren()
        self.frame(bytes((PP, *_addr(address))) + bytes(data), 0, "page program")

    def erase(self, address: int, opcode: int = SE, *, wren: bool = True) -> None:
        if wren:
            self.wren()
        self.frame(bytes((opcode, *_addr(address))), 0, f"erase {opcode:02X}")

    def suspend(self) -> None:
        self.frame(bytes((SUSPEND,)), 0, "suspend")

    def resume(self) -> None:
        self.frame(bytes((RESUME,)), 0, "resume")

    def reset(self) -> None:
        self.frame(bytes((RESET_ENABLE,)), 0, "reset enable")
        self.frame(bytes((RESET,)), 0, "reset")
        self.clock.sleep(30e-6)  # tRST (datasheet 8.2.44)

    # security registers 1-3 at 0x1000, 0x2000, 0x3000 (8.2.32-8.2.34)
    def security_read(self, register: int, offset: int, length: int) -> bytes:
        return self.frame(bytes((SEC_READ, *_addr(register << 12 | offset), 0)), length, "sec read")

    def security_program(self, register: int, offset: int, data: bytes) -> None:
        self.wren()
        self.frame(bytes((SEC_PROGRAM, *_addr(register << 12 | offset))) + data, 0, "sec program")

    def security_erase(self, register: int) -> None:
        self.wren()
        self.frame(bytes((SEC_ERASE, *_addr(register << 12))), 0, "sec erase")

    def wait_idle(self, timeout_s: float, poll_s: float = POLL_S) -> tuple[float, int]:
        """Poll SR1 until BUSY clears; return (seconds waited, status reads)."""
        start = self.clock.monotonic()
        polls = 0
        while True:
            polls += 1
            if not self.sr(1) & BUSY:
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
