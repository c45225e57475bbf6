"""The serprog bridge, byte by byte, against a socket client written here.

Every rule comes from flashrom's *Serial Flasher Protocol Specification, version 1*
(``Documentation/serprog-protocol.txt`` in flashrom's source; Debian ships it as
``/usr/share/doc/flashrom/serprog-protocol.txt.gz``), cited below as "spec".
"""

import socket
import struct

import pytest

from agent.errors import PowerLoss
from sim.clock import VirtualClock
from sim.tools.serprog import SerprogServer
from sim.tools.serprog.cli import main, parse_listen

pytestmark = pytest.mark.sim

ACK, NAK = 0x06, 0x15
CLIENT_TIMEOUT_S = 10  # only guards against a hung test; no assertion depends on it


class RecordingPort:
    """An SPI port that records every exchange and answers 00 01 02 ..."""

    MAX_HZ = 30e6

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, int, bool, bool, bool]] = []
        self._frequency = 1e6
        self.powered = True

    def exchange(self, out=b"", readlen=0, start=True, stop=True, duplex=False, droptail=0):
        if not self.powered:
            raise PowerLoss("cut")
        self.calls.append((bytes(out), readlen, start, stop, duplex))
        return bytes(i & 0xFF for i in range(readlen))

    def read(self, readlen=0, start=True, stop=True):
        return self.exchange(b"", readlen, start, stop)

    def write(self, out, start=True, stop=True):
        self.exchange(out, 0, start, stop)

    @property
    def frequency(self) -> float:
        return self._frequency

    def set_frequency(self, frequency: float) -> None:
        self._frequency = min(frequency, self.MAX_HZ)


class Client:
    """A blocking serprog client: send bytes, receive exactly n bytes."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=CLIENT_TIMEOUT_S)

    def ask(self, request: bytes, answer_len: int) -> bytes:
        self.sock.sendall(request)
        return self.recv(answer_len)

    def recv(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise EOFError(f"peer closed after {data!r}, expected {n} bytes")
            data += chunk
        return data

    def close(self) -> None:
        self.sock.close()


def spi_op(out: bytes, rlen: int) -> bytes:
    """O_SPIOP: opcode 13h, 24-bit LE slen, 24-bit LE rlen, then the bytes to send."""
    return bytes([0x13]) + len(out).to_bytes(3, "little") + rlen.to_bytes(3, "little") + out


@pytest.fixture
def port():
    return RecordingPort()


@pytest.fixture
def clock():
    return VirtualClock()


@pytest.fixture
def server(port, clock):
    with SerprogServer(port, clock=clock, turnaround_s=0.0) as srv:
        yield srv


@pytest.fixture
def client(server):
    c = Client(server.address)
    yield c
    c.close()


def test_nop_answers_ack(client):
    """spec 0x00: NOP takes no parameters and answers ACK."""
    assert client.ask(b"\x00", 1) == bytes([ACK])


def test_syncnop_answers_nak_then_ack(client):
    """spec: command 0x10 (SYNCNOP) has the special return NAK+ACK for synchronization."""
    assert client.ask(b"\x10", 2) == bytes([NAK, ACK])


def test_interface_version_is_one_little_endian(client):
    """spec 0x01: ACK + 16-bit version; flashrom refuses any version but 1."""
    assert client.ask(b"\x01", 3) == bytes([ACK, 0x01, 0x00])


def test_command_map_lists_exactly_the_spi_command_set(client):
    """spec 0x02: 32 bytes, command n at byte n/8 bit n%8; parallel-only commands absent."""
    answer = client.ask(b"\x02", 33)
    assert answer[0] == ACK
    bitmap = answer[1:]
    advertised = {n for n in range(256) if bitmap[n // 8] >> (n % 8) & 1}
    spi_set = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x07, 0x08, 0x0B, 0x0E, 0x0F}
    spi_set |= {0x10, 0x11, 0x12, 0x13, 0x14, 0x15}
    assert advertised == spi_set


def test_programmer_name_is_16_bytes_null_padded(client):
    """spec 0x03: ACK + 16-byte string with null padding."""
    answer = client.ask(b"\x03", 17)
    assert answer[0] == ACK
    name = answer[1:]
    assert len(name) == 16
    text, _, padding = name.partition(b"\0")
    assert text and text.isascii()
    assert set(padding) <= {0}


def test_serial_buffer_size_is_big_because_tcp_has_flow_control(client):
    """spec 0x04: with guaranteed flow control answer a big bogus value, e.g. 0xFFFF."""
    answer = client.ask(b"\x04", 3)
    assert answer[0] == ACK
    assert struct.unpack("<H", answer[1:])[0] == 0xFFFF


def test_bustype_is_spi_only(client):
    """spec 0x05: ACK + flags, bit 3 = SPI; this bridge has no parallel, LPC or FWH bus."""
    assert client.ask(b"\x05", 2) == bytes([ACK, 0x08])


def test_operation_buffer_size_is_reported_in_16_bits(client):
    """spec 0x07: ACK + 16-bit size, enough for at least one 5-byte O_DELAY."""
    answer = client.ask(b"\x07", 3)
    assert answer[0] == ACK
    assert struct.unpack("<H", answer[1:])[0] >= 5


@pytest.mark.parametrize("opcode", [0x08, 0x11], ids=["Q_WRNMAXLEN", "Q_RDNMAXLEN"])
def test_max_lengths_are_24_bit_little_endian(client, opcode):
    """spec 0x08/0x11: ACK + 24-bit length; this bridge takes the whole 24-bit range."""
    answer = client.ask(bytes([opcode]), 4)
    assert answer[0] == ACK
    assert int.from_bytes(answer[1:], "little") == 0xFFFFFF


@pytest.mark.parametrize(
    ("flags", "reply"),
    [(0x08, ACK), (0x0F, ACK), (0x01, NAK), (0x00, NAK)],
    ids=["spi", "any-includes-spi", "parallel-only", "none"],
)
def test_set_bustype_accepts_only_sets_containing_spi(client, flags, reply):
    """spec 0x12: more than one bit set lets the programmer choose; SPI is its only bus."""
    assert client.ask(bytes([0x12, flags]), 1) == bytes([reply])


def test_spi_op_is_one_cs_framed_exchange(client, port):
    """spec 0x13: slen bytes sent, rlen bytes read, in one operation (one /CS assertion)."""
    answer = client.ask(spi_op(b"\x9f", 3), 4)
    assert answer == bytes([ACK, 0, 1, 2])
    assert port.calls == [(b"\x9f", 3, True, True, False)]


def test_spi_op_lengths_are_24_bit_little_endian(client, port):
    """spec: all multibyte values are little-endian, lengths are 24-bit (here > 255)."""
    out = bytes([0x02, 0, 0, 0]) + bytes(range(256))  # slen 0x000104
    answer = client.ask(spi_op(out, 0x123), 1 + 0x123)
    assert answer[0] == ACK
    assert answer[1:] == bytes(i & 0xFF for i in range(0x123))
    assert port.calls == [(out, 0x123, True, True, False)]


def test_spi_ops_in_sequence_are_separate_exchanges(client, port):
    """spec 0x13: each O_SPIOP is its own operation (WREN then RDSR: two /CS frames)."""
    assert client.ask(spi_op(b"\x06", 0) + spi_op(b"\x05", 1), 3) == bytes([ACK, ACK, 0])
    assert [call[:2] for call in port.calls] == [(b"\x06", 0), (b"\x05", 1)]


def test_spi_frequency_answers_the_frequency_actually_set(client, port):
    """spec 0x14: map to a supported frequency and send back the value chosen with ACK."""
    answer = client.ask(b"\x14" + struct.pack("<I", 50_000_000), 5)
    assert answer[0] == ACK
    assert struct.unpack("<I", answer[1:])[0] == 30_000_000
    assert port.frequency == 30e6


def test_spi_frequency_zero_is_nakked(client, port):
    """spec 0x14: value 0 is reserved and should be NAKed by the programmer."""
    assert client.ask(b"\x14" + bytes(4), 1) == bytes([NAK])
    assert port.frequency == 1e6


def test_disabled_pin_drivers_refuse_spi_ops(client, port):
    """spec 0x15: with its drivers disabled the programmer leaves the chip alone."""
    assert client.ask(b"\x15\x00", 1) == bytes([ACK])
    assert client.ask(spi_op(b"\x9f", 3), 1) == bytes([NAK])
    assert port.calls == []
    assert client.ask(b"\x15\x01", 1) == bytes([ACK])
    assert client.ask(spi_op(b"\x9f", 3), 4)[0] == ACK


def test_unknown_command_is_nakked_and_the_stream_stays_in_step(client):
    """spec: an unimplemented command is invalid; its answer is NAK and nothing more."""
    assert client.ask(b"\xff\x00", 2) == bytes([NAK, ACK])


@pytest.mark.parametrize("opcode", [0x06, 0x09, 0x0A, 0x0C, 0x0D])
def test_parallel_bus_commands_are_nakked(client, opcode):
    """spec: Q_CHIPSIZE, R_BYTE, R_NBYTES, O_WRITEB, O_WRITEN serve non-SPI buses only."""
    assert client.ask(bytes([opcode]), 1) == bytes([NAK])


def test_executing_the_operation_buffer_waits_its_delays_on_the_clock(client, clock):
    """spec 0x0E/0x0F: O_DELAY queues microseconds, O_EXEC runs (and clears) the buffer."""
    delays = b"\x0e" + struct.pack("<I", 10_000) + b"\x0e" + struct.pack("<I", 2_500)
    assert client.ask(delays, 2) == bytes([ACK, ACK])
    assert clock.monotonic() == 0.0
    assert client.ask(b"\x0f", 1) == bytes([ACK])
    assert clock.monotonic() == pytest.approx(0.0125)
    assert client.ask(b"\x0f", 1) == bytes([ACK])
    assert clock.monotonic() == pytest.approx(0.0125)


def test_initialising_the_operation_buffer_drops_queued_delays(client, clock):
    """spec 0x0B: O_INIT initialises (empties) the operation buffer."""
    client.ask(b"\x0e" + struct.pack("<I", 10_000), 1)
    assert client.ask(b"\x0b\x0f", 2) == bytes([ACK, ACK])
    assert clock.monotonic() == 0.0


def test_each_spi_op_costs_the_turnaround_on_the_clock(port):
    """Model: a serprog adapter answers one O_SPIOP per round trip (turnaround_s)."""
    clock = VirtualClock()
    with SerprogServer(port, clock=clock, turnaround_s=1e-3) as srv:
        c = Client(srv.address)
        try:
            c.ask(spi_op(b"\x05", 1) * 3, 6)
        finally:
            c.close()
    assert clock.monotonic() == pytest.approx(3e-3)


def test_spi_op_on_an_unpowered_device_is_nakked(client, port):
    """A port raising PowerLoss completes no I/O; the programmer reports failure (NAK)."""
    port.powered = False
    assert client.ask(spi_op(b"\x9f", 3) + b"\x00", 2) == bytes([NAK, ACK])


def test_connections_are_served_one_after_another_on_the_same_port(server, port):
    """flashrom opens one connection per run; the device persists between runs."""
    for _ in range(2):
        c = Client(server.address)
        try:
            assert c.ask(spi_op(b"\x9f", 3), 4)[0] == ACK
        finally:
            c.close()
    assert len(port.calls) == 2


def test_a_port_error_drops_that_client_but_the_server_keeps_serving(server, port):
    """A fault in the port ends one client's session; the next flashrom run still works."""
    port.exchange = None  # calling it raises TypeError inside the session
    broken = Client(server.address)
    try:
        broken.sock.sendall(spi_op(b"\x9f", 3))
        assert broken.sock.recv(1) == b""
    finally:
        broken.close()
    del port.exchange
    c = Client(server.address)
    try:
        assert c.ask(spi_op(b"\x9f", 3), 4)[0] == ACK
    finally:
        c.close()


def test_close_ends_the_current_connection(port):
    """close() must not hang on a connected client: the client sees end of stream."""
    srv = SerprogServer(port)
    srv.start()
    c = Client(srv.address)
    try:
        assert c.ask(b"\x00", 1) == bytes([ACK])
        srv.close()
        assert c.sock.recv(1) == b""
    finally:
        c.close()


@pytest.mark.parametrize(
    ("text", "message"),
    [("127.0.0.1", "HOST:PORT"), ("127.0.0.1:x", "number"), ("127.0.0.1:70000", "0..65535")],
)
def test_listen_address_errors_name_the_problem(text, message):
    """Bad input gets a clear error naming what was wrong."""
    with pytest.raises(ValueError, match=message):
        parse_listen(text)


def test_cli_rejects_a_bad_listen_address(capsys):
    """``python -m sim serprog --listen nope`` exits 2 and says what was wrong."""
    assert main(["--listen", "nope"]) == 2
    assert "--listen must be HOST:PORT" in capsys.readouterr().err


def test_listen_address_parses_host_and_port():
    """``--listen HOST:PORT`` as flashrom's ``ip=HOST:PORT``."""
    assert parse_listen("127.0.0.1:4321") == ("127.0.0.1", 4321)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"port_number": -1}, "port_number"), ({"turnaround_s": -1.0}, "turnaround_s")],
)
def test_server_options_are_validated(port, kwargs, field):
    """Options are checked on construction, and the error names the field."""
    with pytest.raises(ValueError, match=field):
        SerprogServer(port, **kwargs)
