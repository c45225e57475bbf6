"""A tiny opcode-level driver over SimSpiPort for the W25Q128JV conformance tests.

Tests talk to the chip the way a flash driver does (opcodes through the SPI port);
``chip.array`` is used only as a backdoor to check or preset contents.
"""

from sim.chip.w25q128 import W25Q128
from sim.ports.model import SimSpiPort


class Nor:
    """Opcode-level access to a simulated chip through :class:`SimSpiPort`."""

    def __init__(self, chip: W25Q128 | None = None, **options) -> None:
        self.chip = chip if chip is not None else W25Q128(**options)
        self.port = SimSpiPort(self.chip)
        self.clock = self.chip.clock

    def cmd(
        self,
        opcode: int,
        addr: int | None = None,
        data: bytes = b"",
        readlen: int = 0,
        dummy: int = 0,
    ) -> bytes:
        out = bytes((opcode,))
        if addr is not None:
            out += addr.to_bytes(3, "big")
        return self.port.exchange(out + bytes(dummy) + data, readlen)

    def sr(self, n: int = 1) -> int:
        return self.cmd({1: 0x05, 2: 0x35, 3: 0x15}[n], readlen=1)[0]

    def wren(self) -> None:
        self.cmd(0x06)

    def wait(self, poll_s: float = 10e-6, limit_s: float = 300.0) -> float:
        t0 = self.clock.monotonic()
        while self.sr() & 0x01:
            if self.clock.monotonic() - t0 > limit_s:
                raise TimeoutError("chip stuck BUSY")
            self.clock.sleep(poll_s)
        return self.clock.monotonic() - t0

    def read(self, addr: int, n: int) -> bytes:
        return self.cmd(0x03, addr, readlen=n)

    def program(self, addr: int, data: bytes, *, wel: bool = True, wait: bool = True) -> None:
        if wel:
            self.wren()
        self.cmd(0x02, addr, data)
        if wait:
            self.wait()

    def erase(
        self, opcode: int, addr: int | None = None, *, wel: bool = True, wait: bool = True
    ) -> None:
        if wel:
            self.wren()
        self.cmd(opcode, addr)
        if wait:
            self.wait()

    def write_status(self, opcode: int, *values: int, volatile: bool = False) -> None:
        self.cmd(0x50 if volatile else 0x06)
        self.cmd(opcode, data=bytes(values))
        self.wait()
