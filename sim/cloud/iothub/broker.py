"""The MQTT 3.1.1 server under the device endpoints: connections, sessions, routing.

IoT Hub is not a generic broker: every topic is the device's own (``$iothub/twin/...``
carries no device id), so the server hands each authenticated connection to an
*endpoint session* (a device's twin channel, or a DPS registration) that answers its
publishes and sends it what the cloud has for it. What the broker part keeps is the MQTT
session (section 4.1): a client connecting with ``CleanSession = 0`` finds its
subscriptions again (the device SDK subscribes once and relies on this after every
reconnect), and CONNACK says ``session present``.

Outgoing messages go only to subscribed topics, at the granted QoS (at most 1: IoT Hub
"does not support QoS 2"). Sockets run with TCP_NODELAY: without it Nagle and delayed
ACKs add about 40 ms to every request after the first (and the SDK's own socket keeps
Nagle on, so the server acknowledges each packet at once, see ``_quick_ack``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sim.cloud.iothub import mqtt

log = logging.getLogger(__name__)

_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)
CONNECT_TIMEOUT_S = 10.0  # a TCP connection that sends no CONNECT is closed (section 3.1)


@dataclass
class Session:
    """One client's MQTT session: its subscriptions (topic filter -> granted QoS)."""

    client_id: str
    subscriptions: dict[str, int] = field(default_factory=dict)

    def granted(self, topic: str) -> int | None:
        """The highest QoS granted by a filter matching ``topic``, or None."""
        best: int | None = None
        for pattern, qos in self.subscriptions.items():
            if mqtt.topic_matches(pattern, topic):
                best = qos if best is None else max(best, qos)
        return best


class EndpointSession(Protocol):
    """What an authenticated connection is handed to (a device, or a DPS registration)."""

    async def on_publish(self, message: mqtt.Publish) -> None: ...

    def on_subscribed(self, topics: list[str]) -> None: ...

    def on_close(self) -> None: ...


@dataclass(frozen=True)
class Accepted:
    session: EndpointSession
    store_key: str  # where the MQTT session is kept: endpoint kind + client id


Authenticator = Callable[["Connection", mqtt.Connect], "Accepted | int"]


class Connection:
    """One client's network connection, after TLS."""

    def __init__(
        self,
        server: MqttServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.client_id = ""
        self.session: Session | None = None
        self.endpoint: EndpointSession | None = None
        self.inbound_publishes = 0
        self.closed = asyncio.Event()
        self._next_id = 0
        self._sock: socket.socket | None = writer.get_extra_info("socket")
        ssl_object = writer.get_extra_info("ssl_object")
        self.peer_cert: bytes | None = (
            ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        )

    # --- sending ----------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes) -> bool:
        """Send ``payload`` on ``topic`` if the client subscribed to it; True if sent."""
        if self.closed.is_set() or self.session is None:
            return False
        qos = self.session.granted(topic)
        if qos is None:
            log.debug("%s: not subscribed to %s; dropped", self.client_id, topic)
            return False
        packet_id = None
        if qos:
            self._next_id = self._next_id % 65535 + 1
            packet_id = self._next_id
        self._write(mqtt.encode_publish(mqtt.Publish(topic, payload, qos, packet_id)))
        return True

    def _write(self, data: bytes) -> None:
        if not self.closed.is_set() and not self.writer.is_closing():
            self.writer.write(data)

    def close(self) -> None:
        """Drop the network connection (no DISCONNECT exists server to client in 3.1.1)."""
        if self.closed.is_set():
            return
        self.closed.set()
        with contextlib.suppress(Exception):
            self.writer.transport.abort()  # at once: a drop, not a graceful TLS close
        if self.endpoint is not None:
            endpoint, self.endpoint = self.endpoint, None
            endpoint.on_close()

    # --- the packet loop --------------------------------------------------------------

    async def run(self) -> None:
        try:
            if await self._handshake():
                await self._serve()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, TimeoutError):
            pass
        except mqtt.ProtocolError as exc:
            log.info("%s: protocol error, closing: %s", self.client_id or "client", exc)
        finally:
            self.close()

    async def _handshake(self) -> bool:
        packet = await asyncio.wait_for(mqtt.read_packet(self.reader), CONNECT_TIMEOUT_S)
        if packet.kind != mqtt.CONNECT:
            raise mqtt.ProtocolError("the first packet must be CONNECT (section 3.1)")
        try:
            connect = mqtt.decode_connect(packet)
        except mqtt.UnsupportedLevel:
            self._write(mqtt.encode_connack(mqtt.REFUSED_PROTOCOL_VERSION))
            return False
        self.client_id = connect.client_id
        outcome = self.server.authenticate(self, connect)
        if isinstance(outcome, int):
            self._write(mqtt.encode_connack(outcome))
            await self._drain()
            return False
        present = self.server.attach(self, outcome.store_key, connect)
        self.endpoint = outcome.session
        self._write(mqtt.encode_connack(mqtt.ACCEPTED, session_present=present))
        self.keep_alive = connect.keep_alive
        return True

    async def _serve(self) -> None:
        # Section 3.1.2.10: no packet for 1.5 x keep alive closes the connection.
        idle = self.keep_alive * 1.5 if self.keep_alive else None
        while not self.closed.is_set():
            packet = await asyncio.wait_for(mqtt.read_packet(self.reader), idle)
            self._quick_ack()
            await self._dispatch(packet)

    def _quick_ack(self) -> None:
        """Acknowledge at once (Linux TCP_QUICKACK, which the kernel resets on its own):
        the SDK's socket has Nagle on, so its next small packet waits for our ACK, and a
        delayed ACK would cost it about 40 ms per request."""
        if self._sock is not None and _QUICKACK is not None:
            with contextlib.suppress(OSError):
                self._sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)

    async def _dispatch(self, packet: mqtt.Packet) -> None:
        kind = packet.kind
        if kind == mqtt.PUBLISH:
            message = mqtt.decode_publish(packet)
            self.inbound_publishes += 1
            if message.qos == 1 and message.packet_id is not None:
                self._write(mqtt.encode_puback(message.packet_id))
            if self.endpoint is not None:
                await self.endpoint.on_publish(message)
        elif kind == mqtt.SUBSCRIBE:
            self._subscribe(mqtt.decode_subscribe(packet))
        elif kind == mqtt.UNSUBSCRIBE:
            unsub = mqtt.decode_unsubscribe(packet)
            if self.session is not None:
                for topic in unsub.topics:
                    self.session.subscriptions.pop(topic, None)
            self._write(mqtt.encode_unsuback(unsub.packet_id))
        elif kind == mqtt.PINGREQ:
            self._write(mqtt.PINGRESP_BYTES)
        elif kind == mqtt.DISCONNECT:
            self.close()
        elif kind == mqtt.PUBACK:
            mqtt.decode_packet_id(packet)  # our QoS 1 sends are not retried
        elif kind == mqtt.CONNECT:
            raise mqtt.ProtocolError("a second CONNECT (section 3.1)")
        else:
            raise mqtt.ProtocolError(f"unexpected packet type {kind} from a client")

    def _subscribe(self, sub: mqtt.Subscribe) -> None:
        assert self.session is not None
        codes = []
        for topic, qos in sub.topics:
            granted = min(qos, 1)
            self.session.subscriptions[topic] = granted
            codes.append(granted)
        self._write(mqtt.encode_suback(sub.packet_id, codes))
        if self.endpoint is not None:
            self.endpoint.on_subscribed([t for t, _ in sub.topics])

    async def _drain(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.drain(), 1.0)


class MqttServer:
    """Accepts TLS connections on ``host:port`` and hands each CONNECT to
    ``authenticate`` (an :class:`Accepted` or a CONNACK refusal code)."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext,
        authenticate: Authenticator,
        sessions: dict[str, Session] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.authenticate = authenticate
        self.sessions: dict[str, Session] = {} if sessions is None else sessions
        self.connections: set[Connection] = set()
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._on_client,
            self.host,
            self.port,
            ssl=self.ssl_context,
            reuse_address=True,
            ssl_handshake_timeout=10.0,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for connection in list(self.connections):
            connection.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)

    def attach(self, connection: Connection, key: str, connect: mqtt.Connect) -> bool:
        """Give ``connection`` its session; True when one was kept (``session present``)."""
        kept = self.sessions.get(key)
        if connect.clean_session or kept is None:
            present = False
            kept = Session(connect.client_id)
            if connect.clean_session:
                self.sessions.pop(key, None)
            else:
                self.sessions[key] = kept
        else:
            present = True
        connection.session = kept
        return present

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = Connection(self, reader, writer)
        self.connections.add(connection)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await connection.run()
        except asyncio.CancelledError:
            pass  # the hub is stopping; asyncio's stream callback would log a cancelled task
        finally:
            self.connections.discard(connection)
            if task is not None:
                self._tasks.discard(task)


def call_later(delay_s: float, fn: Callable[[], Awaitable[None] | None]) -> None:
    """Run ``fn`` after ``delay_s`` on the running loop (a fault's delayed send)."""
    asyncio.get_running_loop().call_later(delay_s, fn)
