"""The local IoT Hub: device endpoint (MQTT/TLS on 8883), DPS and the service REST API on
one loopback address, run on an event loop of its own.

::

    with LocalIoTHub(host="127.0.0.5") as hub:
        info = hub.info()            # service_connection_string, ca_cert, gateway_host, ...
        key = hub.add_device("dev-1", tags={"productType": "washer"})
        hub.faults.drop_connection("dev-1", after_messages=3)
        hub.call(lambda h: h.twin("dev-1").reported)

Why a thread: the device SDK's asyncio client blocks its caller's loop in places (its
handler setters wait for the SUBACK), so the hub must never share the test's loop. Every
registry access goes through :meth:`LocalIoTHub.call` / :meth:`acall`, which run on the
hub's loop. Port 8883 is fixed by the SDK: give each hub its own loopback address
(:func:`free_loopback_address`), the certificate names it.

With ``state_dir`` the registry, twins, configurations, enrollments, MQTT sessions and
certificates are kept there (``state.json``, written atomically after every change) and
loaded on the next start. Configurations are evaluated when created and then every
``evaluation_interval_s`` (IoT Hub: about 5 minutes; shorten it for tests and demos).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import random
import shutil
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

from sim.cloud.hub import EVALUATION_INTERVAL_S, Hub, Identity
from sim.cloud.iothub import mqtt, sas
from sim.cloud.iothub.broker import Accepted, Connection, MqttServer, Session
from sim.cloud.iothub.certs import CertificateAuthority, KeyPair
from sim.cloud.iothub.device_endpoint import DeviceEndpoint
from sim.cloud.iothub.dps import Enrollment, Provisioning
from sim.cloud.iothub.service import ServiceApi
from sim.cloud.twin_faults import TwinFaults

log = logging.getLogger(__name__)

T = TypeVar("T")
MQTT_PORT = 8883  # the device SDK's fixed port for MQTT over TLS
POLICY = "iothubowner"
DEFAULT_HUB_NAME = "ota-hil-local"
DEFAULT_ID_SCOPE = "0ne0000a11"
STATE_FILE = "state.json"
TICK_S = 0.02  # how often timed faults, the evaluation schedule and state saving are checked


def free_loopback_address(*, seed: int | None = None, port: int = MQTT_PORT) -> str:
    """A 127.x.y.z address on which ``port`` is free now (tests running in parallel each
    take their own, since the device SDK's port cannot change)."""
    rng = random.Random(seed if seed is not None else os.getpid() ^ random.getrandbits(32))
    for _ in range(200):
        host = f"127.{rng.randrange(1, 255)}.{rng.randrange(0, 256)}.{rng.randrange(2, 255)}"
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
        return host
    raise RuntimeError(f"no loopback address with port {port} free after 200 tries")


class LocalIoTHub:
    """An IoT Hub + DPS for the real Azure SDKs, on ``host`` (a loopback address)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        service_port: int = 0,
        mqtt_port: int = MQTT_PORT,
        state_dir: str | os.PathLike[str] | None = None,
        hub_name: str = DEFAULT_HUB_NAME,
        id_scope: str = DEFAULT_ID_SCOPE,
        evaluation_interval_s: float = EVALUATION_INTERVAL_S,
    ) -> None:
        if not isinstance(host, str) or not host:
            raise ValueError(f"host must be an address, got {host!r}")
        if not evaluation_interval_s > 0:
            raise ValueError(f"evaluation_interval_s must be > 0, got {evaluation_interval_s}")
        if not hub_name.replace("-", "").isalnum():
            raise ValueError(f"hub_name must be letters, digits and '-', got {hub_name!r}")
        self.host = host
        self.mqtt_port = mqtt_port
        self.service_port = service_port
        self.hostname = f"{hub_name}.azure-devices.net"
        self.id_scope = id_scope
        self.evaluation_interval_s = evaluation_interval_s
        self._own_dir = state_dir is None
        self.state_dir = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="iothub-"))
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.faults = TwinFaults()
        self._policy_key = ""
        self._sessions: dict[str, Session] = {}
        self._load()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._mqtt: MqttServer | None = None
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._dirty = False
        self.running = False

    # --- construction from state ---------------------------------------------------

    def _load(self) -> None:
        path = self.state_dir / STATE_FILE
        state: dict[str, Any] = {}
        if path.exists():
            try:
                state = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise ValueError(f"state file {str(path)!r} is unreadable: {exc}") from None
        self.hub = Hub.from_state(state.get("hub") or {})
        self._policy_key = state.get("policy_key") or sas.new_key()
        self.id_scope = state.get("id_scope") or self.id_scope
        self.dps = Provisioning(self.hub, id_scope=self.id_scope, assigned_hub=self.hostname)
        self.dps.load_state(state.get("dps") or {})
        self.dps.on_change = self._changed
        for key, subs in (state.get("sessions") or {}).items():
            self._sessions[key] = Session(key.split(":", 1)[-1], dict(subs))
        self.server_ca = self._authority("ca", "ota-hil local IoT Hub root")
        self.device_ca = self._authority("device-ca", "ota-hil device CA")
        self.registered_cas: list[bytes] = [self.device_ca.cert_pem]
        server = self.state_dir / "server.pem"
        if server.exists():
            self.server_pair = KeyPair(
                server.read_bytes(), (self.state_dir / "server.key").read_bytes()
            )
        else:
            self.server_pair = self.server_ca.issue_server([self.host, self.hostname, "localhost"])
            self.server_pair.write(self.state_dir, "server")
        self.devices = DeviceEndpoint(
            self.hub,
            hostname=self.hostname,
            faults=self.faults,
            device_cas=lambda: self.registered_cas,
        )

    def _authority(self, stem: str, name: str) -> CertificateAuthority:
        cert, key = self.state_dir / f"{stem}.pem", self.state_dir / f"{stem}.key"
        if cert.exists() and key.exists():
            return CertificateAuthority(KeyPair(cert.read_bytes(), key.read_bytes()))
        ca = CertificateAuthority.create(name)
        ca.pair.write(self.state_dir, stem)
        return ca

    def _state(self) -> dict[str, Any]:
        return {
            "hub": self.hub.to_state(),
            "dps": self.dps.to_state(),
            "policy_key": self._policy_key,
            "id_scope": self.id_scope,
            "sessions": {k: s.subscriptions for k, s in self._sessions.items()},
        }

    def _save(self) -> None:
        self._dirty = False
        if self._own_dir:
            return
        path = self.state_dir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self._state(), f)
        os.replace(tmp, path)

    def _changed(self) -> None:
        self._dirty = True

    # --- addresses and credentials -------------------------------------------------

    @property
    def ca_cert(self) -> Path:
        """The PEM that verifies the hub's TLS (``server_verification_cert``)."""
        return self.state_dir / "ca.pem"

    @property
    def service_host(self) -> str:
        return f"{self.host}:{self.service_port}"

    @property
    def service_connection_string(self) -> str:
        """For ``azure-iot-hub`` (its base URL is ``https://`` + HostName). Secret."""
        return (
            f"HostName={self.service_host};SharedAccessKeyName={POLICY};"
            f"SharedAccessKey={self._policy_key}"
        )

    def device_connection_string(self, device_id: str, key: str) -> str:
        """For ``IoTHubDeviceClient.create_from_connection_string``. Secret."""
        return (
            f"HostName={self.hostname};DeviceId={device_id};SharedAccessKey={key};"
            f"GatewayHostName={self.host}"
        )

    def info(self) -> dict[str, Any]:
        """What ``python -m sim hub`` prints on its first line."""
        return {
            "service_connection_string": self.service_connection_string,
            "ca_cert": str(self.ca_cert),
            "gateway_host": self.host,
            "hub_hostname": self.hostname,
            "id_scope": self.id_scope,
            "provisioning_host": self.host,
            "mqtt_port": self.mqtt_port,
            "service_url": f"https://{self.service_host}",
            "device_ca_cert": str(self.state_dir / "device-ca.pem"),
            "device_ca_key": str(self.state_dir / "device-ca.key"),
            "state_dir": None if self._own_dir else str(self.state_dir),
            "evaluation_interval_s": self.evaluation_interval_s,
        }

    # --- life cycle ----------------------------------------------------------------

    def start(self) -> None:
        """Listen (MQTT on ``host:mqtt_port``, HTTPS on ``host:service_port``); returns
        when both accept connections."""
        if self.running:
            raise RuntimeError("the hub is already running")
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self._loop.run_forever, name=f"iothub-{self.host}", daemon=True
            )
            self._thread.start()
        self._run(self._start())
        self.running = True

    def stop(self) -> None:
        """Stop listening and drop every connection; the registry stays (a restart
        serves it again)."""
        if self.running:
            self._run(self._stop())
            self.running = False

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop, end the loop and its thread, and remove a temporary state directory."""
        self.stop()
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(5)
            loop.close()
        if self._own_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> LocalIoTHub:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> LocalIoTHub:
        await asyncio.get_running_loop().run_in_executor(None, self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    def _mqtt_context(self) -> ssl.SSLContext:
        ctx = self._server_context()
        ctx.verify_mode = ssl.CERT_OPTIONAL  # X.509 devices present one; SAS devices do not
        for ca in self.registered_cas:
            ctx.load_verify_locations(cadata=ca.decode("ascii"))
        return ctx

    def _server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = self.server_pair.write(tmp, "server")
            ctx.load_cert_chain(cert, key)
        return ctx

    async def _start(self) -> None:
        self._mqtt = MqttServer(
            host=self.host,
            port=self.mqtt_port,
            ssl_context=self._mqtt_context(),
            authenticate=self._authenticate,
            sessions=self._sessions,
        )
        await self._mqtt.start()
        api = ServiceApi(
            self.hub,
            policy=(POLICY, self._policy_key),
            hosts=[self.service_host, self.hostname, self.host],
            faults=self.faults,
            on_configuration=self._evaluate,
            on_change=self._changed,
        )
        self._runner = web.AppRunner(api.app(), access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, self.host, self.service_port, ssl_context=self._server_context()
        )
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        self.service_port = sockets[0].getsockname()[1]
        api.hosts = [self.service_host, self.hostname, self.host]
        self._ticker = asyncio.ensure_future(self._tick())

    async def _stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._mqtt is not None:
            await self._mqtt.close()
        if self._runner is not None:
            server = self._runner.server
            for handler in list(getattr(server, "connections", None) or []):
                transport = getattr(handler, "transport", None)
                if transport is not None:  # idle keep-alive clients never answer close_notify
                    transport.abort()
            await self._runner.cleanup()
        self._mqtt = self._runner = self._ticker = None
        self._save()
        await asyncio.sleep(0.05)  # let closed transports finish before the loop may end

    async def _tick(self) -> None:
        """Timed faults, the evaluation schedule and state saving."""
        loop = asyncio.get_running_loop()
        next_evaluation = loop.time() + self.evaluation_interval_s
        while True:
            await asyncio.sleep(TICK_S)
            for fault in self.faults.due_drops():
                for device_id in self.devices.drop(fault.device):
                    self.faults.log_drop(fault, device_id)
            if loop.time() >= next_evaluation:
                next_evaluation = loop.time() + self.evaluation_interval_s
                self._evaluate()
            if self._dirty:
                self._save()

    def _evaluate(self) -> None:
        written = self.hub.evaluate()
        if written:
            log.info("evaluation wrote %d twin(s)", len(written))
        self._changed()

    def _authenticate(self, connection: Connection, connect: mqtt.Connect) -> Accepted | int:
        if self.dps.owns(connect):
            outcome = self.dps.authenticate(connection, connect)
        elif self.devices.owns(connect):
            outcome = self.devices.authenticate(connection, connect)
        else:
            return mqtt.REFUSED_NOT_AUTHORIZED
        if not isinstance(outcome, int):
            self._changed()
        return outcome

    # --- calling into the hub's loop ------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            raise RuntimeError("the hub is not started")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(hub, *args)`` on the hub's loop (from any other thread); its result."""

        async def run() -> T:
            result = fn(self.hub, *args)
            self._changed()
            return result

        return self._run(run())

    async def acall(self, fn: Callable[..., T], *args: Any) -> T:
        """:meth:`call` for a coroutine on another event loop."""
        if self._loop is None:
            raise RuntimeError("the hub is not started")

        async def run() -> T:
            result = fn(self.hub, *args)
            self._changed()
            return result

        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(run(), self._loop)
        return await asyncio.wrap_future(future)

    # --- conveniences for tests and tools ---------------------------------------------

    def add_device(
        self, device_id: str, *, tags: Mapping[str, Any] | None = None, key: str | None = None
    ) -> str:
        """Register a SAS device; returns its primary key."""
        primary = key or sas.new_key()
        identity = Identity("sas", primary_key=primary, secondary_key=sas.new_key())
        self.call(lambda h: h.add_device(device_id, tags=tags, identity=identity))
        return primary

    def enroll(self, enrollment: Enrollment) -> Enrollment:
        """Add a DPS enrollment (individual or group)."""
        return self.call(lambda h: self.dps.enroll(enrollment))

    def register_ca(self, ca_pem: bytes) -> None:
        """Trust device certificates signed by ``ca_pem`` (from the next TLS handshake)."""

        def add(h: Hub) -> None:
            self.registered_cas.append(ca_pem)
            if self._mqtt is not None:
                self._mqtt.ssl_context.load_verify_locations(cadata=ca_pem.decode("ascii"))

        self.call(add)

    def evaluate(self) -> dict[str, str]:
        """Run one configuration evaluation now (what the interval timer does)."""
        return self.call(lambda h: h.evaluate())

    def twin(self, device_id: str) -> dict[str, Any]:
        """The twin as ``GET /twins/{id}`` shows it."""
        return self.call(lambda h: h.twin_json(device_id))

    def drop(self, device_id: str | None = None) -> list[str]:
        """Drop the MQTT connection of a device (every device when None) now."""
        return self.call(lambda h: self.devices.drop(device_id))

    def connected(self) -> list[str]:
        return self.call(lambda h: sorted(self.devices.sessions))

    @property
    def refused(self) -> list[tuple[str, int]]:
        """Device connects refused so far: (device id, CONNACK code)."""
        return self.call(lambda h: list(self.devices.refused))
