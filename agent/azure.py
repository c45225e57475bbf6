"""The twin seam over Azure IoT Hub: :class:`AzureIoTTwin` on azure-iot-device.

It implements :class:`agent.twin.Twin` over the asyncio ``IoTHubDeviceClient`` (MQTT over
TLS; IoT Hub "Understand and use device twins", device twin topics ``$iothub/twin/...``),
connected with a connection string or provisioned through DPS. Everything here logs
through :func:`agent.redact.redact`: keys and SAS signatures never reach a log.
"""

import asyncio
import base64
import binascii
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.redact import redact
from agent.twin import PatchHandler, TwinError

log = logging.getLogger(__name__)

DEFAULT_PROVISIONING_HOST = "global.azure-devices-provisioning.net"


def _parse_connection_string(text: str) -> dict[str, str]:
    """``HostName=...;DeviceId=...;SharedAccessKey=...`` as a dict; never echoes values."""
    parts: dict[str, str] = {}
    for item in text.split(";"):
        if not item:
            continue
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(
                "connection_string: is not Name=value pairs separated by ';' "
                f"(near {redact(name)[:20]!r})"
            )
        if name in parts:
            raise ValueError(f"connection_string: {name} appears twice")
        parts[name] = value
    return parts


def _check_base64(field_name: str, value: str) -> None:
    try:
        if not base64.b64decode(value, validate=True):
            raise ValueError
    except (binascii.Error, ValueError):
        raise ValueError(f"{field_name}: is not a base64 key") from None


def _check_text(field_name: str, value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{field_name}: must be a non-empty string")


@dataclass(frozen=True)
class AzureConnectionConfig:
    """How the gateway reaches IoT Hub: one of three ways, checked on construction.

    - ``connection_string`` (``HostName=...;DeviceId=...;SharedAccessKey=...``);
    - DPS with a symmetric key: ``id_scope``, ``registration_id``, ``symmetric_key``;
    - DPS with X.509: ``id_scope``, ``registration_id``, ``x509_cert_file``,
      ``x509_key_file`` (and ``x509_pass_phrase``).

    DPS registers first and then connects to the hub it assigns (DPS "Provisioning
    device client"). ``server_verification_cert`` is a PEM file of trusted roots: the
    original pinned Baltimore CyberTrust Root, which expired in May 2025 (weakness #10),
    so the root is configuration, never code. ``gateway_hostname`` connects to that host
    instead of the one named by the hub (an IoT Edge gateway, or a local test endpoint).
    Secrets are left out of ``repr``.
    """

    connection_string: str | None = field(default=None, repr=False)
    id_scope: str | None = None
    registration_id: str | None = None
    symmetric_key: str | None = field(default=None, repr=False)
    x509_cert_file: str | None = None
    x509_key_file: str | None = None
    x509_pass_phrase: str | None = field(default=None, repr=False)
    provisioning_host: str = DEFAULT_PROVISIONING_HOST
    server_verification_cert: str | None = None
    gateway_hostname: str | None = None
    websockets: bool = False
    connection_retry: bool = True
    keep_alive: int | None = None
    connection_retry_interval_s: int = 10
    operation_timeout_s: float = 30.0
    retry_interval_s: float = 5.0

    def __post_init__(self) -> None:
        ways = [
            name
            for name, used in (
                ("connection_string", self.connection_string is not None),
                ("symmetric_key", self.symmetric_key is not None),
                ("x509_cert_file", self.x509_cert_file is not None),
            )
            if used
        ]
        if len(ways) != 1:
            raise ValueError(
                "give exactly one of connection_string, symmetric_key (DPS) or "
                f"x509_cert_file (DPS); got {', '.join(ways) or 'none'}"
            )
        if self.connection_string is not None:
            self._check_connection_string(self.connection_string)
            for name in ("id_scope", "registration_id", "x509_key_file", "x509_pass_phrase"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name}: is for DPS and cannot go with connection_string")
        else:
            _check_text("id_scope", self.id_scope)
            _check_text("registration_id", self.registration_id)
            _check_text("provisioning_host", self.provisioning_host)
            if "://" in self.provisioning_host or "/" in self.provisioning_host:
                raise ValueError("provisioning_host: must be a host name, not a URL")
        if self.symmetric_key is not None:
            _check_text("symmetric_key", self.symmetric_key)
            _check_base64("symmetric_key", self.symmetric_key)
            if self.x509_key_file is not None or self.x509_pass_phrase is not None:
                raise ValueError("x509_key_file: cannot go with symmetric_key")
        if self.x509_cert_file is not None:
            _check_text("x509_cert_file", self.x509_cert_file)
            _check_text("x509_key_file", self.x509_key_file)
        if self.server_verification_cert is not None:
            _check_text("server_verification_cert", self.server_verification_cert)
        if self.gateway_hostname is not None:
            _check_text("gateway_hostname", self.gateway_hostname)
            if "://" in self.gateway_hostname or "/" in self.gateway_hostname:
                raise ValueError("gateway_hostname: must be a host name, not a URL")
        for name in ("websockets", "connection_retry"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: must be true or false")
        if (
            isinstance(self.connection_retry_interval_s, bool)
            or not isinstance(self.connection_retry_interval_s, int)
            or self.connection_retry_interval_s < 1
        ):
            raise ValueError(
                "connection_retry_interval_s: must be a whole number of seconds >= 1 (the SDK's"
                f" unit), got {self.connection_retry_interval_s!r}"
            )
        for name in ("operation_timeout_s", "retry_interval_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"{name}: must be a positive number of seconds, got {value!r}")
        if self.keep_alive is not None and (
            isinstance(self.keep_alive, bool)
            or not isinstance(self.keep_alive, int)
            or self.keep_alive <= 0
        ):
            raise ValueError(
                f"keep_alive: must be a positive number of seconds, got {self.keep_alive!r}"
            )

    def _check_connection_string(self, text: str) -> None:
        _check_text("connection_string", text)
        parts = _parse_connection_string(text)
        for name in ("HostName", "DeviceId", "SharedAccessKey"):
            if not parts.get(name):
                raise ValueError(f"connection_string: has no {name}")
        if "ModuleId" in parts:
            raise ValueError("connection_string: names a module; this agent is a device client")
        if "x509" in parts:
            raise ValueError("connection_string: x509 is not supported; use DPS x509_cert_file")
        _check_base64("connection_string: SharedAccessKey", parts["SharedAccessKey"])
        theirs = parts.get("GatewayHostName")
        if theirs and self.gateway_hostname and theirs != self.gateway_hostname:
            raise ValueError(
                "gateway_hostname: differs from the GatewayHostName in connection_string"
            )

    @property
    def auth(self) -> str:
        """``connection_string``, ``dps_symmetric_key`` or ``dps_x509``."""
        if self.connection_string is not None:
            return "connection_string"
        return "dps_symmetric_key" if self.symmetric_key is not None else "dps_x509"

    def effective_connection_string(self) -> str:
        """The connection string with ``GatewayHostName`` added when configured (the SDK
        refuses a ``gateway_hostname`` argument with a connection string). Secret."""
        if self.connection_string is None:
            raise ValueError("connection_string: not configured (auth is DPS)")
        parts = _parse_connection_string(self.connection_string)
        if self.gateway_hostname and "GatewayHostName" not in parts:
            return f"{self.connection_string.rstrip(';')};GatewayHostName={self.gateway_hostname}"
        return self.connection_string

    def tls_kwargs(self) -> dict[str, Any]:
        """Transport options common to the hub and DPS clients (certificate read here)."""
        kwargs: dict[str, Any] = {"websockets": self.websockets}
        if self.server_verification_cert is not None:
            kwargs["server_verification_cert"] = _read_pem(self.server_verification_cert)
        if self.keep_alive is not None:
            kwargs["keep_alive"] = self.keep_alive
        return kwargs


def _read_pem(path: str) -> str:
    try:
        with open(os.fspath(path), encoding="ascii") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"server_verification_cert: cannot read {path!r}: {exc}") from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ValueError(f"server_verification_cert: {path!r} holds no PEM certificate")
    return text


async def create_client(config: AzureConnectionConfig) -> Any:
    """Build (not connect) an asyncio ``IoTHubDeviceClient`` for ``config``.

    With DPS this registers first (``ProvisioningDeviceClient.register``) and builds the
    client for the assigned hub and device id. Raises :class:`TwinError` when DPS does
    not assign the device.
    """
    from azure.iot.device import X509  # the SDK costs ~0.3 s to import; simulation never does
    from azure.iot.device.aio import IoTHubDeviceClient, ProvisioningDeviceClient

    tls = config.tls_kwargs()
    hub_kwargs = {
        **tls,
        "connection_retry": config.connection_retry,
        "connection_retry_interval": config.connection_retry_interval_s,
    }
    if config.auth == "connection_string":
        return IoTHubDeviceClient.create_from_connection_string(
            config.effective_connection_string(), **hub_kwargs
        )
    registration_id = _required(config.registration_id, "registration_id")
    id_scope = _required(config.id_scope, "id_scope")
    if config.gateway_hostname:
        tls["gateway_hostname"] = config.gateway_hostname
        hub_kwargs["gateway_hostname"] = config.gateway_hostname
    if config.symmetric_key is not None:
        provisioning = ProvisioningDeviceClient.create_from_symmetric_key(
            provisioning_host=config.provisioning_host,
            registration_id=registration_id,
            id_scope=id_scope,
            symmetric_key=config.symmetric_key,
            **tls,
        )
    else:
        x509 = X509(config.x509_cert_file, config.x509_key_file, config.x509_pass_phrase)
        provisioning = ProvisioningDeviceClient.create_from_x509_certificate(
            provisioning_host=config.provisioning_host,
            registration_id=registration_id,
            id_scope=id_scope,
            x509=x509,
            **tls,
        )
    result = await provisioning.register()
    state = getattr(result, "registration_state", None)
    if getattr(result, "status", None) != "assigned" or state is None:
        raise TwinError(
            f"DPS did not assign the device (status {getattr(result, 'status', None)!r})"
        )
    log.info("DPS assigned device %s to hub %s", state.device_id, state.assigned_hub)
    if config.symmetric_key is not None:
        return IoTHubDeviceClient.create_from_symmetric_key(
            symmetric_key=config.symmetric_key,
            hostname=state.assigned_hub,
            device_id=state.device_id,
            **hub_kwargs,
        )
    return IoTHubDeviceClient.create_from_x509_certificate(
        x509=x509, hostname=state.assigned_hub, device_id=state.device_id, **hub_kwargs
    )


def _required(value: str | None, name: str) -> str:
    if value is None:
        raise ValueError(f"{name}: required for DPS")
    return value


ClientFactory = Callable[[AzureConnectionConfig], Awaitable[Any]]


def _cloud_errors() -> tuple[type[BaseException], ...]:
    """Exceptions from the client that mean "the cloud is not there now"."""
    errors: tuple[type[BaseException], ...] = (OSError, TimeoutError)
    try:
        from azure.iot.device import exceptions as sdk
    except ImportError:  # pragma: no cover - the SDK is a dependency
        return errors
    return (
        *errors,
        sdk.ClientError,
        sdk.ServiceError,
        sdk.OperationTimeout,
        sdk.OperationCancelled,
    )


class AzureIoTTwin:
    """:class:`Twin` over azure-iot-device's asyncio ``IoTHubDeviceClient``.

    What the real SDK, met over MQTT/TLS against the project's local IoT Hub, showed the
    adapter must do (it used to raise :class:`TwinError` at the first failure):

    - a reported patch is kept until IoT Hub acknowledges it: the SDK has no timeout on
      twin requests (a lost ``204`` leaves the call pending forever) and fails at once
      while disconnected, and the agent drops a report whose ``report`` raises. So each
      attempt is bounded by ``operation_timeout_s`` and retried every
      ``retry_interval_s`` until it goes through; the agent sends one at a time, so
      reports made while offline arrive in the order they were made (a patch whose
      answer was lost is sent again: a JSON merge patch applied twice changes nothing);
    - ``connect`` and ``get_desired`` retry the same way (the hub may be down at boot;
      the agent has no retry around them), logging each failure redacted;
    - the SDK calls a plain-function patch handler on a worker thread (its handler
      manager runs them in a 4-thread pool, so two patches can race) and re-sends the
      whole desired section after a reconnect when ``$version`` moved: each patch hops
      onto the agent's event loop, one whose ``$version`` is not newer than one already
      delivered is dropped, and one that skips a ``$version`` (an earlier patch is late
      or lost) is replaced by the whole desired section from a twin GET, so no change
      is missed.

    Only :meth:`close` ends the retries (:class:`TwinError`, "closed").
    """

    def __init__(
        self, config: AzureConnectionConfig, *, client_factory: ClientFactory = create_client
    ) -> None:
        self._config = config
        self._factory = client_factory
        self._client: Any = None
        self._handler: PatchHandler | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_version: int | None = None
        self._errors: tuple[type[BaseException], ...] = (*_cloud_errors(), TimeoutError)
        self._closed = asyncio.Event()
        self._refreshing = False
        self._refresh_task: asyncio.Future[None] | None = None

    def on_desired_patch(self, handler: PatchHandler) -> None:
        self._handler = handler

    async def connect(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._closed = asyncio.Event()
        await self._retry("connect to IoT Hub", self._connect_once)

    async def _connect_once(self) -> None:
        if self._client is None:
            self._client = await self._factory(self._config)
            self._client.on_twin_desired_properties_patch_received = self._on_sdk_patch
        await self._client.connect()

    async def get_desired(self) -> dict[str, Any]:
        self._require_client()
        twin = await self._retry("get_twin", lambda: self._require_client().get_twin())
        desired = twin.get("desired") if isinstance(twin, Mapping) else None
        if not isinstance(desired, Mapping):
            raise TwinError("get_twin returned no desired section")
        version = desired.get("$version")
        if isinstance(version, int) and not isinstance(version, bool):
            self._last_version = max(version, self._last_version or version)
        return dict(desired)

    async def report(self, patch: dict[str, Any]) -> None:
        self._require_client()
        await self._retry(
            "reported patch",
            lambda: self._require_client().patch_twin_reported_properties(patch),
        )

    async def close(self) -> None:
        self._closed.set()
        client, self._client = self._client, None
        if client is None:
            return
        try:
            await client.shutdown()
        except self._errors as exc:
            log.warning("IoT Hub client shutdown failed: %s", redact(str(exc)))

    async def _retry(self, what: str, attempt: Callable[[], Awaitable[Any]]) -> Any:
        """``attempt()`` bounded by ``operation_timeout_s``, again after
        ``retry_interval_s`` on every cloud error, until it succeeds or :meth:`close`."""
        while True:
            if self._closed.is_set():
                raise TwinError(f"{what}: the twin is closed")
            try:
                return await asyncio.wait_for(
                    _shielded(attempt()), self._config.operation_timeout_s
                )
            except self._errors as exc:
                text = redact(str(exc)) or type(exc).__name__
                log.warning(
                    "%s failed, retrying in %gs: %s", what, self._config.retry_interval_s, text
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), self._config.retry_interval_s)

    def _require_client(self) -> Any:
        if self._client is None:
            raise TwinError("not connected (call connect first)")
        return self._client

    def _on_sdk_patch(self, patch: dict[str, Any]) -> None:
        """Runs on an SDK worker thread: hand the patch to the agent's loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            log.warning("desired patch dropped: no event loop to deliver it on")
            return
        loop.call_soon_threadsafe(self._deliver, patch)

    def _deliver(self, patch: dict[str, Any]) -> None:
        version = patch.get("$version") if isinstance(patch, Mapping) else None
        if isinstance(version, int) and not isinstance(version, bool):
            last = self._last_version
            if last is not None and version <= last:
                log.debug("desired patch $version %d already seen; dropped", version)
                return
            if last is not None and version > last + 1 and self._client is not None:
                log.info("desired $version %d skips %d; fetching the whole section", version, last)
                if not self._refreshing:
                    self._refreshing = True
                    self._refresh_task = asyncio.ensure_future(self._refresh())
                return
            self._last_version = version
        self._hand_over(patch)

    async def _refresh(self) -> None:
        """Deliver the whole desired section after a gap in ``$version``."""
        try:
            last = self._last_version
            desired = await self.get_desired()  # moves _last_version
            if last is None or (desired.get("$version") or 0) > last:
                self._hand_over(desired)
        except TwinError as exc:
            log.warning("desired refresh abandoned: %s", exc)
        finally:
            self._refreshing = False

    def _hand_over(self, patch: dict[str, Any]) -> None:
        if self._handler is None:
            log.warning("desired patch dropped: no handler registered")
            return
        self._handler(patch)


def _shielded(call: Awaitable[Any]) -> Awaitable[Any]:
    """``call`` shielded from cancellation, its outcome retrieved even when abandoned.

    The SDK completes an operation from its own thread by setting the result of a future
    on this loop; cancelling that future (a timeout, or a power cut cancelling the agent
    mid-call) makes the SDK's ``set_result`` fail on the loop ("InvalidStateError").
    Shielded, the operation runs to its end and an abandoned one is simply dropped.
    """
    task = asyncio.ensure_future(call)
    task.add_done_callback(lambda t: t.cancelled() or t.exception())
    return asyncio.shield(task)
