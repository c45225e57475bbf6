"""A virtual FT232H: its USB descriptors, FTDI vendor requests and bulk framing.

What a host sees on the wire of a single-port FT232H (FT232H datasheet sections
4 and 8; the vendor requests as libftdi and pyftdi send them):

* descriptors: VID 0x0403, PID 0x6014, bcdDevice 0x0900, one configuration with
  one vendor-class interface and two bulk endpoints, 0x81 IN and 0x02 OUT, of
  512 bytes (USB 2.0 high speed);
* vendor requests (bmRequestType 0x40/0xC0): reset and purges, modem control,
  flow control, baud rate, line properties, modem status, event/error chars,
  latency timer, bit mode (0x02 enters MPSSE) and pin read;
* bulk IN: every packet of up to 512 bytes starts with two modem-status bytes,
  so it carries at most 510 bytes of data; with nothing queued a read returns
  the two status bytes alone.
"""

from dataclasses import dataclass, field

from .mpsse import MpsseBus, MpsseEngine

FTDI_VID = 0x0403
FT232H_PID = 0x6014
FT232H_BCD = 0x0900
EP_IN = 0x81
EP_OUT = 0x02
MAX_PACKET = 512  # high-speed bulk endpoints
STATUS_BYTES = 2

# Vendor requests (bRequest), as pyftdi's Ftdi.SIO_REQ_* and libftdi's SIO_* name them.
SIO_RESET = 0x00
SIO_SET_MODEM_CTRL = 0x01
SIO_SET_FLOW_CTRL = 0x02
SIO_SET_BAUDRATE = 0x03
SIO_SET_DATA = 0x04
SIO_POLL_MODEM_STATUS = 0x05
SIO_SET_EVENT_CHAR = 0x06
SIO_SET_ERROR_CHAR = 0x07
SIO_SET_LATENCY_TIMER = 0x09
SIO_GET_LATENCY_TIMER = 0x0A
SIO_SET_BITMODE = 0x0B
SIO_READ_PINS = 0x0C
SIO_READ_EEPROM = 0x90

RESET_SIO, PURGE_RX, PURGE_TX = 0, 1, 2
BITMODE_RESET, BITMODE_MPSSE = 0x00, 0x02

# Idle modem status: CTS, DSR (byte 0) and transmitter empty, holding register empty
# (byte 1, 0x60), in the layout pyftdi's Ftdi.MODEM_STATUS decodes.
MODEM_STATUS = bytes((0x32, 0x60))

GET_DESCRIPTOR = 0x06
DESC_STRING = 0x03
LANGID_EN_US = 0x0409


class UsbStall(Exception):
    """The device refuses a request (a STALL handshake on the control pipe)."""


@dataclass(frozen=True)
class UsbStrings:
    """The string descriptors (indices 1, 2, 3), as an FT232H's EEPROM holds them."""

    manufacturer: str = "FTDI"
    product: str = "Single RS232-HS"
    serial: str = "VFT232H0"

    def get(self, index: int) -> str:
        try:
            return (self.manufacturer, self.product, self.serial)[index - 1]
        except IndexError:
            raise UsbStall(f"no string descriptor {index}") from None


@dataclass
class SioState:
    """Settings the vendor requests write, kept so that tests can check them."""

    latency_ms: int = 16
    bitmode: int = BITMODE_RESET
    bitmask: int = 0
    baudrate_value: int = 0
    flow_control: int = 0
    modem_control: int = 0
    line_properties: int = 0
    event_char: int = 0
    error_char: int = 0
    requests: list[int] = field(default_factory=list)


class VirtualFt232h:
    """One FT232H port whose MPSSE engine drives ``bus``."""

    def __init__(self, bus: MpsseBus, *, strings: UsbStrings | None = None) -> None:
        self.strings = strings or UsbStrings()
        self.engine = MpsseEngine(bus)
        self.sio = SioState()
        self._to_host = bytearray()

    @property
    def mpsse(self) -> bool:
        return self.sio.bitmode == BITMODE_MPSSE

    def control_out(self, request: int, value: int, index: int, data: bytes) -> int:
        """A vendor OUT request; returns the data-stage length (0: pyftdi's success)."""
        self.sio.requests.append(request)
        if request == SIO_RESET:
            if value in (RESET_SIO, PURGE_RX):
                self._to_host.clear()
            if value in (RESET_SIO, PURGE_TX):
                self.engine.discard_pending()
        elif request == SIO_SET_BITMODE:
            mode, self.sio.bitmask = value >> 8, value & 0xFF
            if mode == BITMODE_MPSSE and not self.mpsse:
                self.engine.reset()
            self.sio.bitmode = mode
        elif request == SIO_SET_LATENCY_TIMER:
            if not 1 <= value <= 255:
                raise UsbStall(f"latency timer {value} ms is out of range 1-255")
            self.sio.latency_ms = value
        elif request == SIO_SET_BAUDRATE:
            self.sio.baudrate_value = value | (index & 0xFF00) << 8
        elif request == SIO_SET_FLOW_CTRL:
            self.sio.flow_control = index & 0xFF00
        elif request == SIO_SET_MODEM_CTRL:
            self.sio.modem_control = value
        elif request == SIO_SET_DATA:
            self.sio.line_properties = value
        elif request == SIO_SET_EVENT_CHAR:
            self.sio.event_char = value
        elif request == SIO_SET_ERROR_CHAR:
            self.sio.error_char = value
        else:
            raise UsbStall(f"unknown FTDI vendor OUT request 0x{request:02X}")
        return len(data)

    def control_in(self, request: int, value: int, index: int, length: int) -> bytes:
        """A vendor IN request; returns at most ``length`` bytes."""
        self.sio.requests.append(request)
        if request == SIO_POLL_MODEM_STATUS:
            answer = MODEM_STATUS
        elif request == SIO_GET_LATENCY_TIMER:
            answer = bytes((self.sio.latency_ms,))
        elif request == SIO_READ_PINS:
            answer = bytes((self.engine.levels & 0xFF,))
        elif request == SIO_READ_EEPROM:
            answer = b"\xff\xff"  # a blank EEPROM: pyftdi falls back to defaults
        else:
            raise UsbStall(f"unknown FTDI vendor IN request 0x{request:02X}")
        return answer[:length]

    def string_descriptor(self, index: int) -> bytes:
        """USB 2.0 section 9.6.7: index 0 lists LANGIDs, others are UTF-16LE text."""
        if index == 0:
            body = LANGID_EN_US.to_bytes(2, "little")
        else:
            body = self.strings.get(index).encode("utf-16-le")
        return bytes((2 + len(body), DESC_STRING)) + body

    def bulk_out(self, data: bytes) -> int:
        """Host to chip: MPSSE commands in MPSSE mode, discarded UART data otherwise."""
        if self.mpsse:
            self._to_host += self.engine.feed(bytes(data))
        return len(data)

    def bulk_in(self, size: int) -> bytes:
        """Chip to host: packets of two status bytes and up to 510 data bytes."""
        packets = bytearray()
        while len(packets) + STATUS_BYTES <= size:
            room = min(MAX_PACKET, size - len(packets)) - STATUS_BYTES
            chunk = self._to_host[:room]
            del self._to_host[:room]
            packets += MODEM_STATUS + chunk
            if len(chunk) < MAX_PACKET - STATUS_BYTES or not self._to_host:
                break  # a short packet ends the transfer
        return bytes(packets)

    @property
    def queued(self) -> int:
        """Bytes waiting for the host to read them."""
        return len(self._to_host)
