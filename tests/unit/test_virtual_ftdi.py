"""The virtual FT232H: its MPSSE engine (FTDI AN_108), its USB framing, and pyftdi on top."""

import pytest
import usb.core
from pyftdi.spi import SpiController
from pyftdi.usbtools import UsbTools

from hil.virtual_ftdi import (
    FlashPins,
    FlashWiring,
    MpsseEngine,
    UnsupportedMpsseCommand,
    UsbStrings,
    VirtualFt232h,
    plugged,
)
from hil.virtual_ftdi.device import MODEM_STATUS, PURGE_RX, SIO_RESET, SIO_SET_BITMODE
from sim.clock import VirtualClock

pytestmark = pytest.mark.sim


class RecordingBus:
    """An MpsseBus that records pin changes and answers MISO from a script."""

    def __init__(self, miso: bytes = b"", inputs: int = 0) -> None:
        self.drives: list[tuple[int, int]] = []
        self.shifted: list[tuple[bytes, float]] = []
        self.bits: list[tuple[int, int]] = []
        self.miso = bytearray(miso)
        self.inputs = inputs

    def drive(self, levels: int, outputs: int) -> None:
        self.drives.append((levels, outputs))

    def sample(self) -> int:
        return self.inputs

    def shift(self, out: bytes, sck_hz: float) -> bytes:
        self.shifted.append((out, sck_hz))
        got, self.miso[:] = bytes(self.miso[: len(out)]), self.miso[len(out) :]
        return got.ljust(len(out), b"\x00")

    def shift_bits(self, out: int, nbits: int, sck_hz: float) -> int:
        self.bits.append((out, nbits))
        return 0b101 & ((1 << nbits) - 1)


class FakeChip:
    """A chip that logs its pins and answers 9Fh with a JEDEC ID, else echoes zeros."""

    def __init__(self) -> None:
        self.powered = True
        self.log: list[str] = []
        self._frame = bytearray()

    def select(self) -> None:
        self.log.append("select")
        self._frame.clear()

    def deselect(self) -> None:
        self.log.append("deselect")

    def transfer(self, data: bytes) -> bytes:
        start = len(self._frame)
        self._frame += data
        self.log.append(data.hex())
        if self._frame[:1] == b"\x9f":
            reply = b"\xff\xef\x40\x18".ljust(len(self._frame), b"\xff")
            return reply[start : len(self._frame)]
        return bytes(len(data))

    def power_off(self) -> None:
        self.powered = False
        self.log.append("power off")

    def power_on(self) -> None:
        self.powered = True
        self.log.append("power on")


def test_set_bits_low_and_high_drive_levels_and_directions():
    """AN_108 3.6.1/3.6.3: 0x80 and 0x82 take a value byte then a direction byte."""
    bus = RecordingBus()
    engine = MpsseEngine(bus)
    engine.feed(bytes((0x80, 0x08, 0x0B, 0x82, 0x01, 0x03)))
    assert bus.drives == [(0x08, 0x0B), (0x0108, 0x030B)]


def test_get_bits_reads_driven_outputs_and_external_inputs():
    """AN_108 3.6.2/3.6.4: 0x81 and 0x83 answer one byte of pin levels each."""
    engine = MpsseEngine(RecordingBus(inputs=0xA5F4))
    got = engine.feed(bytes((0x80, 0x0B, 0x0B, 0x81, 0x83)))
    assert got == bytes(((0xF4 & ~0x0B) | 0x0B, 0xA5))


def test_clock_divisor_sets_sck_with_and_without_divide_by_5():
    """AN_108 3.8.2: TCK = 60 MHz / ((1 + divisor) * 2), or 12 MHz / (...) with div-by-5."""
    engine = MpsseEngine(RecordingBus())
    engine.feed(bytes((0x86, 0x02, 0x00)))
    assert engine.sck_hz == pytest.approx(2e6)
    engine.feed(bytes((0x8A, 0x86, 0x02, 0x00)))
    assert engine.sck_hz == pytest.approx(10e6)


def test_bad_command_answers_fa_then_the_opcode():
    """AN_108 4.2 (bad commands): the chip echoes 0xFA and the unknown opcode."""
    assert MpsseEngine(RecordingBus()).feed(bytes((0xAA, 0x87))) == b"\xfa\xaa"


def test_write_bytes_split_across_usb_writes_runs_once_complete():
    """pyftdi splits writes at the FIFO size: a command waits for all its payload bytes."""
    bus = RecordingBus()
    engine = MpsseEngine(bus)
    engine.feed(bytes((0x11, 0x03, 0x00, 1, 2)))
    assert bus.shifted == []
    engine.feed(bytes((3, 4, 0x87)))
    assert [out for out, _ in bus.shifted] == [bytes((1, 2, 3, 4))]


def test_read_bytes_returns_what_miso_carried():
    """AN_108 3.3 (0x20/0x24): clock length+1 bytes in; MOSI idles high."""
    bus = RecordingBus(miso=b"\xde\xad\xbe")
    got = MpsseEngine(bus).feed(bytes((0x24, 0x02, 0x00, 0x87)))
    assert got == b"\xde\xad\xbe"
    assert bus.shifted[0][0] == b"\xff\xff\xff"


def test_duplex_bytes_send_and_return_the_same_count():
    """AN_108 3.4 (0x31): bytes out on -ve edge and in on +ve edge, at once."""
    bus = RecordingBus(miso=b"\x01\x02")
    got = MpsseEngine(bus).feed(bytes((0x31, 0x01, 0x00, 0xAB, 0xCD)))
    assert (got, bus.shifted[0][0]) == (b"\x01\x02", b"\xab\xcd")


def test_lsb_first_reverses_bit_order_on_the_wire():
    """AN_108 3.2 (bit 3 of the opcode): LSB first puts bit 0 on the wire first."""
    bus = RecordingBus(miso=b"\x80")
    got = MpsseEngine(bus).feed(bytes((0x39, 0x00, 0x00, 0x01)))
    assert (bus.shifted[0][0], got) == (b"\x80", b"\x01")


def test_bit_mode_read_returns_bits_right_aligned():
    """AN_108 3.3 (0x22): length+1 bits, shifted in from bit 0 for MSB first."""
    bus = RecordingBus()
    assert MpsseEngine(bus).feed(bytes((0x22, 0x02))) == bytes((0b101,))
    assert bus.bits == [(0xFF, 3)]


def test_loopback_returns_mosi_on_miso():
    """AN_108 3.7 (0x84): loopback connects TDI/DO to TDO/DI internally."""
    engine = MpsseEngine(RecordingBus(miso=b"\x00\x00"))
    assert engine.feed(bytes((0x84, 0x31, 0x01, 0x00, 0x12, 0x34))) == b"\x12\x34"


def test_unmodelled_valid_command_raises_rather_than_guessing():
    """AN_108 3.9 (0x88 wait on I/O high) is valid MPSSE that the engine does not model."""
    with pytest.raises(UnsupportedMpsseCommand, match="0x88"):
        MpsseEngine(RecordingBus()).feed(bytes((0x88,)))


def _mpsse_device(bus) -> VirtualFt232h:
    device = VirtualFt232h(bus)
    device.control_out(SIO_SET_BITMODE, 0x0200, 1, b"")
    return device


def test_every_bulk_in_packet_starts_with_two_modem_status_bytes():
    """FT232H datasheet 4: each 512-byte IN packet carries 2 status bytes and 510 data bytes."""
    device = _mpsse_device(RecordingBus(miso=bytes(range(256)) * 4))
    device.bulk_out(bytes((0x24, 0xFF, 0x03, 0x87)))  # read 1024 bytes
    data = device.bulk_in(2048)
    packets = [data[i : i + 512] for i in range(0, len(data), 512)]
    assert [p[:2] for p in packets] == [MODEM_STATUS] * 3
    assert b"".join(p[2:] for p in packets) == bytes(range(256)) * 4


def test_bulk_in_with_nothing_queued_returns_only_the_status():
    """libftdi/pyftdi read loops treat a 2-byte packet as 'no data yet'."""
    assert _mpsse_device(RecordingBus()).bulk_in(512) == MODEM_STATUS


def test_purge_rx_drops_answers_the_host_has_not_read():
    """SIO reset request, value 1 (pyftdi purge_rx_buffer): queued answers are dropped."""
    device = _mpsse_device(RecordingBus())
    device.bulk_out(bytes((0x81,)))
    device.control_out(SIO_RESET, PURGE_RX, 1, b"")
    assert device.queued == 0


def test_bulk_data_outside_mpsse_mode_is_not_executed():
    """Bit mode 0 (reset) is UART mode: bytes written are serial data, not MPSSE commands."""
    bus = RecordingBus()
    device = VirtualFt232h(bus)
    device.bulk_out(bytes((0x80, 0xFF, 0xFF)))
    assert bus.drives == []


def test_unknown_vendor_request_stalls_as_a_usb_error():
    """An unsupported control request is refused with a STALL (pyusb USBError, EPIPE)."""
    with plugged(VirtualFt232h(RecordingBus())):
        dev = usb.core.find(backend=UsbTools.find_backend(), idVendor=0x0403)
        with pytest.raises(usb.core.USBError):
            dev.ctrl_transfer(0x40, 0x42, 0, 1, b"")
        usb.util.dispose_resources(dev)


def _open(chip, pins=None, url="ftdi://ftdi:232h/1", clock=None, **kwargs):
    clock = clock or VirtualClock()
    device = VirtualFt232h(FlashWiring(chip, clock, pins), **kwargs)
    return device, clock, url


def test_pyftdi_exchange_reaches_the_chip_between_cs_edges():
    """pyftdi SpiPort.exchange: /CS (AD3) low, bytes out, bytes in, /CS high."""
    chip = FakeChip()
    device, _, url = _open(chip)
    with plugged(device):
        ctrl = SpiController(cs_count=1)
        ctrl.configure(url, frequency=8e6)
        try:
            jedec = ctrl.get_port(0, freq=8e6, mode=0).exchange(b"\x9f", 3)
        finally:
            ctrl.close()
    assert bytes(jedec) == b"\xef\x40\x18"
    assert chip.log == ["select", "9f", "ffffff", "deselect"]


def test_clocked_bytes_advance_the_virtual_clock_by_their_sck_time():
    """8 SCK periods per byte: 4 bytes at 8 MHz (divisor from pyftdi) take 4 us."""
    device, clock, url = _open(FakeChip())
    with plugged(device):
        ctrl = SpiController(cs_count=1)
        ctrl.configure(url, frequency=8e6)
        try:
            port = ctrl.get_port(0, freq=7.5e6, mode=0)
            before = clock.monotonic()
            port.exchange(b"\x9f", 3)
        finally:
            ctrl.close()
    assert clock.monotonic() - before == pytest.approx(4 * 8 / 7.5e6)


def test_power_gpio_on_acbus_switches_the_chip_supply():
    """A load switch on AC0 (GPIO 8): driving it low cuts the chip's VCC, high restores it."""
    chip = FakeChip()
    device, _, url = _open(chip, FlashPins(power=8))
    with plugged(device):
        ctrl = SpiController(cs_count=1)
        ctrl.configure(url, frequency=8e6, direction=0x100, initial=0x100)
        try:
            gpio = ctrl.get_gpio()
            gpio.write(0x000)
            off = chip.powered
            gpio.write(0x100)
        finally:
            ctrl.close()
    assert (off, chip.powered) == (False, True)


def test_url_with_serial_number_selects_the_virtual_adapter():
    """pyftdi URL syntax ftdi://vendor:product:serial/interface reads string descriptor 3."""
    device, _, _ = _open(FakeChip(), strings=UsbStrings(serial="BENCH42"))
    with plugged(device):
        ctrl = SpiController(cs_count=1)
        ctrl.configure("ftdi://ftdi:232h:BENCH42/1", frequency=1e6)
        ic = ctrl.ftdi.ic_name
        ctrl.close()
    assert ic == "ft232h"


def test_unplugging_restores_pyftdi_backends():
    """plugged() must not leak the virtual backend into later, real, sessions."""
    saved = UsbTools.BACKENDS
    with plugged(VirtualFt232h(RecordingBus())):
        inside = UsbTools.BACKENDS
    assert inside != saved and saved == UsbTools.BACKENDS
