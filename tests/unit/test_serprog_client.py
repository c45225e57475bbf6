"""The agent's serprog client (agent/serprog.py) against the project's bridge over TCP:
the Serial Flasher Protocol Specification v1's O_SPIOP, S_SPI_FREQ, O_DELAY/O_EXEC."""

import pytest

from agent.errors import PowerLoss
from agent.flash import SpiFlash
from agent.serprog import SerprogError, open_serprog, parse_url
from sim.tools.serprog import SerprogServer

pytestmark = pytest.mark.sim


@pytest.fixture
def connect(bridge):
    """open_serprog on the bridge; every connection is closed after the test."""
    opened = []

    def open_(**kwargs):
        port, clock = open_serprog(bridge, **kwargs)
        opened.append(port)
        return port, clock

    yield open_
    for port in opened:
        port.close()


@pytest.fixture
def bridge(w25q128_port, w25q128):
    with SerprogServer(w25q128_port, clock=w25q128.clock, turnaround_s=0) as server:
        host, port = server.address
        yield f"serprog://{host}:{port}"


def test_the_driver_programs_and_reads_back_over_serprog(connect, w25q128):
    port, clock = connect(frequency=8e6)
    assert port.exchange(b"\x9f", 3) == b"\xef\x40\x18"
    flash = SpiFlash(port, clock)
    flash.erase(0x3000, 4096)  # BUSY for tSE: the waits are O_DELAYs on the bridge's clock
    flash.program(0x3000, b"over the wire")
    assert flash.read(0x3000, 13) == b"over the wire"
    assert bytes(w25q128.array[0x3000:0x300D]) == b"over the wire"
    assert port.frequency == 8e6


def test_a_bus_wait_is_spent_on_the_bridges_clock(connect, w25q128):
    _, clock = connect()
    before, mirror = w25q128.clock.monotonic(), clock.monotonic()
    clock.sleep(0.25)
    assert w25q128.clock.monotonic() - before == pytest.approx(0.25, abs=1e-6)
    assert clock.monotonic() - mirror == pytest.approx(0.25, abs=1e-6)


def test_an_unpowered_flash_is_a_power_loss(connect, w25q128):
    port, _ = connect()
    w25q128.power_off()
    with pytest.raises(PowerLoss, match="no power"):
        port.exchange(b"\x9f", 3)


def test_transfers_serprog_cannot_frame_are_refused(connect):
    port, _ = connect()
    with pytest.raises(ValueError, match="one half-duplex"):
        port.exchange(b"\x9f", 3, duplex=True)
    with pytest.raises(ValueError, match="one half-duplex"):
        port.exchange(b"\x03\x00\x00\x00", 0, stop=False)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:4000", "serprog://127.0.0.1", "serprog://:4000", "serprog://h:0"]
)
def test_bad_urls_name_the_form(url):
    with pytest.raises(ValueError, match="serprog://HOST:PORT"):
        parse_url(url)


def test_nobody_listening_is_a_serprog_error(unused_tcp_port):
    with pytest.raises(SerprogError, match="cannot connect"):
        open_serprog(f"serprog://127.0.0.1:{unused_tcp_port}")
