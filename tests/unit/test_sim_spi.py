"""SimSpiPort: pyftdi SpiPort's interface onto the chip model (issue 2 section 3)."""

import pytest

from agent.errors import PowerLoss
from agent.spi import SpiPort
from sim.chip.w25q128 import W25Q128
from sim.ports.model import SimSpiPort

pytestmark = pytest.mark.sim


@pytest.fixture
def port():
    return SimSpiPort(W25Q128(), log=True)


def test_port_satisfies_the_agent_spi_seam(port):
    """SimSpiPort implements agent.spi.SpiPort."""
    assert isinstance(port, SpiPort)


def test_half_duplex_exchange_returns_only_the_bytes_read_after_out(port):
    """exchange(out, readlen) returns readlen bytes clocked after out (pyftdi semantics)."""
    assert port.exchange(b"\x9f", 3) == b"\xef\x40\x18"


def test_duplex_exchange_returns_one_byte_per_byte_sent(port):
    """duplex=True returns what MISO carried during out, header bytes high-Z (FFh)."""
    assert port.exchange(b"\x9f\x00\x00\x00", duplex=True) == b"\xff\xef\x40\x18"


def test_start_and_stop_frame_one_transaction_over_several_calls(port):
    """start=False/stop=False keep /CS low between calls, as pyftdi does."""
    port.write(b"\x9f", stop=False)
    assert port.read(2, start=False, stop=False) == b"\xef\x40"
    assert port.read(1, start=False) == b"\x18"


def test_each_exchange_advances_the_clock_by_bits_over_frequency(port):
    """8 bits per byte at the SCK frequency (pyftdi frequency property)."""
    port.set_frequency(2e6)
    t0 = port.chip.clock.monotonic()
    port.exchange(b"\x03\x00\x00\x00", 6)
    assert port.chip.clock.monotonic() - t0 == pytest.approx(10 * 8 / 2e6)
    assert port.frequency == 2e6


def test_bad_frequency_is_refused_naming_it():
    """Bad input gets an error naming what was wrong."""
    with pytest.raises(ValueError, match="frequency"):
        SimSpiPort(W25Q128(), frequency=0)


def test_droptail_is_refused(port):
    """Partial bytes cannot be clocked: /CS rises on byte boundaries (module doc)."""
    with pytest.raises(ValueError, match="droptail"):
        port.exchange(b"\x9f", 3, droptail=1)


def test_exchange_raises_powerloss_while_unpowered(port):
    """Every exchange raises PowerLoss until power_on (agent.errors.PowerLoss)."""
    port.chip.power_off()
    with pytest.raises(PowerLoss):
        port.exchange(b"\x9f", 3)
    port.chip.power_on()
    assert port.exchange(b"\x9f", 3) == b"\xef\x40\x18"


def test_log_records_command_address_lengths_and_time(port):
    """The optional transaction log: one record per /CS frame (issue 2 section 3)."""
    port.exchange(b"\x03\x01\x02\x03", 16)
    port.write(b"\x06")
    first, second = port.log
    assert (first.opcode, first.address, first.out_len, first.in_len) == (0x03, 0x010203, 4, 16)
    assert (second.opcode, second.address) == (0x06, None)
    assert second.time_s > first.time_s


def test_log_is_off_by_default():
    """No log unless asked for: it costs time on the hot path."""
    assert SimSpiPort(W25Q128()).log is None


def test_busy_is_judged_at_the_end_of_the_transfer(port):
    """The clock advances for the bytes before the chip sees them, so a status read that
    ends after the operation's end reports it done (sim.ports.model module doc; datasheet 7.1.1)."""
    port.set_frequency(1e6)
    port.exchange(b"\x06")
    port.exchange(b"\x02\x00\x00\x00\x00")
    port.chip.clock.advance(0.4e-3 - 10e-6)  # tPP typ 0.4 ms (datasheet 9.6); 05h takes 16 us
    assert port.exchange(b"\x05", 1) == b"\x00"


def test_exchange_with_nothing_to_read_returns_no_bytes(port):
    """Half duplex with readlen=0 returns b"" (pyftdi SpiPort.exchange)."""
    assert port.exchange(b"\x06") == b""
