"""MQTT 3.1.1 packets, the subset a device endpoint serves (OASIS MQTT Version 3.1.1).

Only what IoT Hub's and DPS's MQTT endpoints speak ("Communicate with an IoT hub using the
MQTT protocol"): CONNECT/CONNACK, PUBLISH at QoS 0 and 1 with PUBACK, SUBSCRIBE/SUBACK,
UNSUBSCRIBE/UNSUBACK, PINGREQ/PINGRESP and DISCONNECT. QoS 2 is refused, as IoT Hub
refuses it. A malformed packet raises :class:`ProtocolError` (the server then closes the
network connection, section 4.8).
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass

# Control packet types (section 2.2.1).
CONNECT, CONNACK, PUBLISH, PUBACK = 1, 2, 3, 4
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK = 8, 9, 10, 11
PINGREQ, PINGRESP, DISCONNECT = 12, 13, 14

# CONNACK return codes (section 3.2.2.3).
ACCEPTED = 0
REFUSED_PROTOCOL_VERSION = 1
REFUSED_IDENTIFIER = 2
REFUSED_SERVER_UNAVAILABLE = 3
REFUSED_BAD_CREDENTIALS = 4
REFUSED_NOT_AUTHORIZED = 5

SUBACK_FAILURE = 0x80
MAX_REMAINING = 268_435_455  # four length bytes (section 2.2.3)
MAX_PACKET = 256 * 1024  # IoT Hub's message size limit; anything larger is refused


class ProtocolError(Exception):
    """The peer broke MQTT 3.1.1; the message says which rule."""


@dataclass(frozen=True)
class Connect:
    client_id: str
    username: str | None
    password: bytes | None
    clean_session: bool
    keep_alive: int


@dataclass(frozen=True)
class Publish:
    topic: str
    payload: bytes
    qos: int = 0
    packet_id: int | None = None
    retain: bool = False
    dup: bool = False


@dataclass(frozen=True)
class Subscribe:
    packet_id: int
    topics: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Unsubscribe:
    packet_id: int
    topics: tuple[str, ...]


@dataclass(frozen=True)
class Packet:
    """One control packet as read: type, the fixed header's flags, and its body."""

    kind: int
    flags: int
    body: bytes


# --- framing -------------------------------------------------------------------------


async def read_packet(reader: asyncio.StreamReader) -> Packet:
    """Read one packet; ``asyncio.IncompleteReadError`` when the peer closed."""
    first = (await reader.readexactly(1))[0]
    length, multiplier = 0, 1
    for _ in range(4):
        byte = (await reader.readexactly(1))[0]
        length += (byte & 0x7F) * multiplier
        if not byte & 0x80:
            break
        multiplier *= 128
    else:
        raise ProtocolError("remaining length longer than four bytes (section 2.2.3)")
    if length > MAX_PACKET:
        raise ProtocolError(f"packet of {length} bytes exceeds the {MAX_PACKET}-byte limit")
    body = await reader.readexactly(length) if length else b""
    return Packet(first >> 4, first & 0x0F, body)


def frame(kind: int, flags: int, body: bytes) -> bytes:
    """Fixed header (type, flags, variable-length remaining length) + body."""
    if len(body) > MAX_REMAINING:
        raise ValueError(f"packet body of {len(body)} bytes is too long for MQTT")
    out = bytearray([(kind << 4) | flags])
    n = len(body)
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            break
    return bytes(out) + body


def _string(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack("!H", len(data)) + data


class _Cursor:
    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = data, 0, what

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ProtocolError(f"{self.what}: truncated")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(struct.unpack("!H", self.take(2))[0])

    def binary(self) -> bytes:
        return self.take(self.u16())

    def string(self) -> str:
        try:
            return self.binary().decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError(f"{self.what}: string is not UTF-8 (section 1.5.3)") from None

    def rest(self) -> bytes:
        chunk, self.pos = self.data[self.pos :], len(self.data)
        return chunk

    @property
    def done(self) -> bool:
        return self.pos >= len(self.data)


# --- decoding ------------------------------------------------------------------------


def decode_connect(packet: Packet) -> Connect:
    """CONNECT (section 3.1); a protocol other than MQTT level 4 raises with ``level``."""
    c = _Cursor(packet.body, "CONNECT")
    name, level, flags, keep_alive = c.string(), c.u8(), c.u8(), c.u16()
    if name != "MQTT":
        raise ProtocolError(f"CONNECT: protocol name {name!r} is not 'MQTT'")
    if level != 4:
        raise UnsupportedLevel(level)
    if flags & 0x01:
        raise ProtocolError("CONNECT: reserved flag set (section 3.1.2.3)")
    client_id = c.string()
    if flags & 0x04:  # will flag: IoT Hub accepts a will; it is read and ignored here
        c.string()
        c.binary()
    username = c.string() if flags & 0x80 else None
    password = c.binary() if flags & 0x40 else None
    return Connect(client_id, username, password, bool(flags & 0x02), keep_alive)


class UnsupportedLevel(ProtocolError):
    """A CONNECT for another protocol level: answered with CONNACK 1 (section 3.1.2.2)."""

    def __init__(self, level: int) -> None:
        super().__init__(f"CONNECT: protocol level {level} is not 4 (MQTT 3.1.1)")
        self.level = level


def decode_publish(packet: Packet) -> Publish:
    """PUBLISH (section 3.3); QoS 2 is refused."""
    qos = (packet.flags >> 1) & 0x03
    if qos == 3:
        raise ProtocolError("PUBLISH: QoS 3 is malformed (section 3.3.1.2)")
    if qos == 2:
        raise ProtocolError("PUBLISH: QoS 2 is not supported by IoT Hub")
    c = _Cursor(packet.body, "PUBLISH")
    topic = c.string()
    packet_id = c.u16() if qos else None
    return Publish(
        topic, c.rest(), qos, packet_id, bool(packet.flags & 0x01), bool(packet.flags & 0x08)
    )


def decode_subscribe(packet: Packet) -> Subscribe:
    if packet.flags != 0x02:
        raise ProtocolError("SUBSCRIBE: fixed header flags must be 0010 (section 3.8.1)")
    c = _Cursor(packet.body, "SUBSCRIBE")
    packet_id = c.u16()
    topics: list[tuple[str, int]] = []
    while not c.done:
        topics.append((c.string(), c.u8() & 0x03))
    if not topics:
        raise ProtocolError("SUBSCRIBE: no topic filter (section 3.8.3)")
    return Subscribe(packet_id, tuple(topics))


def decode_unsubscribe(packet: Packet) -> Unsubscribe:
    c = _Cursor(packet.body, "UNSUBSCRIBE")
    packet_id = c.u16()
    topics: list[str] = []
    while not c.done:
        topics.append(c.string())
    return Unsubscribe(packet_id, tuple(topics))


def decode_packet_id(packet: Packet) -> int:
    return _Cursor(packet.body, "PUBACK").u16()


# --- encoding ------------------------------------------------------------------------


def encode_connack(code: int, *, session_present: bool = False) -> bytes:
    return frame(CONNACK, 0, bytes([1 if session_present and code == 0 else 0, code]))


def encode_publish(message: Publish) -> bytes:
    flags = (message.qos << 1) | (0x08 if message.dup else 0) | (0x01 if message.retain else 0)
    body = _string(message.topic)
    if message.qos:
        if message.packet_id is None:
            raise ValueError("a QoS 1 PUBLISH needs a packet id")
        body += struct.pack("!H", message.packet_id)
    return frame(PUBLISH, flags, body + message.payload)


def encode_puback(packet_id: int) -> bytes:
    return frame(PUBACK, 0, struct.pack("!H", packet_id))


def encode_suback(packet_id: int, codes: list[int]) -> bytes:
    return frame(SUBACK, 0, struct.pack("!H", packet_id) + bytes(codes))


def encode_unsuback(packet_id: int) -> bytes:
    return frame(UNSUBACK, 0, struct.pack("!H", packet_id))


PINGRESP_BYTES = frame(PINGRESP, 0, b"")


def topic_matches(pattern: str, topic: str) -> bool:
    """Topic filter matching with ``+`` and ``#`` (section 4.7); a filter starting with a
    wildcard never matches a ``$`` topic (section 4.7.2)."""
    if topic.startswith("$") and pattern[:1] in ("+", "#"):
        return False
    p_parts, t_parts = pattern.split("/"), topic.split("/")
    for i, part in enumerate(p_parts):
        if part == "#":
            return True
        if i >= len(t_parts) or (part != "+" and part != t_parts[i]):
            return False
    return len(p_parts) == len(t_parts)
