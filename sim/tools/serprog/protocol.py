"""The serprog wire protocol: command bytes, answers, limits and 24-bit framing.

*Serial Flasher Protocol Specification, version 1* (flashrom source tree,
``Documentation/serprog-protocol.txt``): every command is one opcode byte and fixed
parameters, the answer ACK (06h) plus data or NAK (15h); multi-byte values are
little-endian, lengths and addresses 24-bit. :data:`SUPPORTED` is this bridge's
command map (SPI only).
"""

from __future__ import annotations

ACK = 0x06
NAK = 0x15

# Opcodes, Serial Flasher Protocol Specification v1 command table.
NOP = 0x00
Q_IFACE = 0x01
Q_CMDMAP = 0x02
Q_PGMNAME = 0x03
Q_SERBUF = 0x04
Q_BUSTYPE = 0x05
Q_CHIPSIZE = 0x06
Q_OPBUF = 0x07
Q_WRNMAXLEN = 0x08
R_BYTE = 0x09
R_NBYTES = 0x0A
O_INIT = 0x0B
O_WRITEB = 0x0C
O_WRITEN = 0x0D
O_DELAY = 0x0E
O_EXEC = 0x0F
SYNCNOP = 0x10
Q_RDNMAXLEN = 0x11
S_BUSTYPE = 0x12
O_SPIOP = 0x13
S_SPI_FREQ = 0x14
S_PIN_STATE = 0x15

IFACE_VERSION = 1
BUS_SPI = 0x08  # Q_BUSTYPE bit 3: SPI
SERBUF_SIZE = 0xFFFF  # spec: "guaranteed working flow control" (TCP) answers a big bogus value
OPBUF_SIZE = 4096  # bytes of operation buffer; an O_DELAY takes 5
MAX_WRITE_N = 0xFFFFFF  # largest O_SPIOP slen, the 24-bit maximum
MAX_READ_N = 0xFFFFFF  # largest O_SPIOP rlen, the 24-bit maximum
DEFAULT_NAME = b"ota-hil sim"

SUPPORTED = frozenset(
    {
        NOP,
        Q_IFACE,
        Q_CMDMAP,
        Q_PGMNAME,
        Q_SERBUF,
        Q_BUSTYPE,
        Q_OPBUF,
        Q_WRNMAXLEN,
        O_INIT,
        O_DELAY,
        O_EXEC,
        SYNCNOP,
        Q_RDNMAXLEN,
        S_BUSTYPE,
        O_SPIOP,
        S_SPI_FREQ,
        S_PIN_STATE,
    }
)
_NAMES = {
    NOP: "NOP",
    Q_IFACE: "Q_IFACE",
    Q_CMDMAP: "Q_CMDMAP",
    Q_PGMNAME: "Q_PGMNAME",
    Q_SERBUF: "Q_SERBUF",
    Q_BUSTYPE: "Q_BUSTYPE",
    Q_OPBUF: "Q_OPBUF",
    Q_WRNMAXLEN: "Q_WRNMAXLEN",
    O_INIT: "O_INIT",
    O_DELAY: "O_DELAY",
    O_EXEC: "O_EXEC",
    SYNCNOP: "SYNCNOP",
    Q_RDNMAXLEN: "Q_RDNMAXLEN",
    S_BUSTYPE: "S_BUSTYPE",
    S_SPI_FREQ: "S_SPI_FREQ",
    S_PIN_STATE: "S_PIN_STATE",
}


def command_map(opcodes: frozenset[int] = SUPPORTED) -> bytes:
    """The 32-byte Q_CMDMAP answer: command n is bit n % 8 of byte n // 8."""
    bitmap = bytearray(32)
    for opcode in opcodes:
        bitmap[opcode // 8] |= 1 << (opcode % 8)
    return bytes(bitmap)


def _u24(data: bytes, offset: int = 0) -> int:
    return data[offset] | data[offset + 1] << 8 | data[offset + 2] << 16


def _p24(value: int) -> bytes:
    return value.to_bytes(3, "little")
