"""The blob server as an async context manager, for tests and the command line."""

import hashlib
import os
from datetime import UTC, datetime, timedelta
from types import TracebackType
from urllib.parse import quote

from aiohttp import web

from agent.hosts import is_loopback_host
from sim.cloud.blobserver.app import (
    BODY_TIMEOUT_S,
    EVENT_LOG_SIZE,
    BlobService,
    RedactingAccessLogger,
)
from sim.cloud.blobserver.control import PREFIX, make_control_app
from sim.cloud.blobserver.directory_store import DirectoryStore
from sim.cloud.blobserver.errors import BlobError
from sim.cloud.blobserver.events import Event
from sim.cloud.blobserver.memory_store import MemoryStore
from sim.cloud.blobserver.sas import make_service_sas
from sim.cloud.blobserver.store import BlobStore
from sim.cloud.blobserver.writes import MAX_UPLOAD_BYTES
from sim.cloud.dev_account import DEV_ACCOUNT, DEV_KEY, connection_string
from sim.cloud.faults.plan import FaultPlan, Rule

SHUTDOWN_GRACE_S = 0.5  # handlers still running after this are cancelled
HEADER_TIMEOUT_S = 30.0  # a request head (or an idle keep-alive) that takes longer is dropped


def make_app(service: BlobService) -> web.Application:
    """The Blob API application: every path (the control API is served apart)."""
    app = web.Application(client_max_size=MAX_UPLOAD_BYTES)
    app.router.add_route("*", "/{tail:.*}", service.handle)
    return app


async def _listen(runner: web.AppRunner, host: str, port: int) -> int:
    """Set ``runner`` up on ``host:port``; return the bound port."""
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server  # aiohttp exposes the bound port only here
    sockets = getattr(server, "sockets", None) or []
    return int(sockets[0].getsockname()[1])


class BlobServer:
    """A fault-injecting Azure Blob server on ``host:port`` (0 = an ephemeral port).

    ::

        async with BlobServer(plan=plan, seed=7) as srv:
            etag = srv.put_blob("firmware", "fw.bin", image)
            url = srv.blob_url("firmware", "fw.bin") + "?" + srv.make_sas("firmware", "fw.bin")
            ...
            assert srv.events[-1].faults == ("cut:limit_data",)

    ``root`` stores blobs as files under that directory instead of in memory.
    Pauses use real asyncio time: the server is a real network peer.

    The fault control API (``/_faults``, :mod:`~sim.cloud.blobserver.control`) has no
    credentials, so it listens apart, on ``control_host:control_port`` (default
    loopback, an ephemeral port: read :attr:`control_url`); a control address that is
    not loopback is refused unless ``expose_control=True`` says it is meant.

    Bounded for a server people leave running: the event log keeps the last
    ``event_log_size`` events; a request head not complete within ``header_timeout_s``
    (or a keep-alive connection idle that long) and a body that sends nothing for
    ``body_timeout_s`` are dropped; Put Blob bodies over Azure's maximum are refused up
    front, and uncommitted blocks are bounded (:class:`~sim.cloud.blobserver.
    staged_blocks.StagedBlocks`).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        root: str | os.PathLike[str] | None = None,
        plan: FaultPlan | None = None,
        seed: int = 0,
        account: str = DEV_ACCOUNT,
        key: str = DEV_KEY,
        *,
        control_host: str = "127.0.0.1",
        control_port: int = 0,
        expose_control: bool = False,
        event_log_size: int = EVENT_LOG_SIZE,
        header_timeout_s: float = HEADER_TIMEOUT_S,
        body_timeout_s: float = BODY_TIMEOUT_S,
    ) -> None:
        for name, value in (("port", port), ("control_port", control_port)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
                raise ValueError(f"{name} must be 0..65535, got {value!r}")
        if not expose_control and not is_loopback_host(control_host):
            raise ValueError(
                f"control_host {control_host!r} is not loopback: the fault control API has "
                "no credentials; pass expose_control=True (--expose-control) to serve it there"
            )
        if not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        if plan is not None and not isinstance(plan, FaultPlan):
            raise ValueError(f"plan must be a FaultPlan, got {type(plan).__name__}")
        if not account or not account.isalnum() or not account.islower():
            raise ValueError(f"account must be lowercase letters and digits, got {account!r}")
        store: BlobStore = MemoryStore() if root is None else DirectoryStore(root)
        self.host = host
        self._port = port
        self.control_host = control_host
        self._control_port = control_port
        self.account = account
        self.key = key
        if not header_timeout_s > 0:
            raise ValueError(f"header_timeout_s must be > 0, got {header_timeout_s!r}")
        self.header_timeout_s = header_timeout_s
        self.service = BlobService(
            store=store,
            account=account,
            key=key,
            plan=plan or FaultPlan(),
            seed=seed,
            event_log_size=event_log_size,
            body_timeout_s=body_timeout_s,
        )
        self._runner: web.AppRunner | None = None
        self._control_runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Listen; the ports are known afterwards (:attr:`port`, :attr:`control_port`)."""
        if self._runner is not None:
            raise RuntimeError("the blob server is already running")
        self._runner = web.AppRunner(
            make_app(self.service),
            access_log_class=RedactingAccessLogger,
            shutdown_timeout=SHUTDOWN_GRACE_S,
            # aiohttp closes a connection still waiting for a whole request when its
            # keep-alive timer fires (armed on connect and after every response): so a
            # half-sent request head is dropped after header_timeout_s, and so is an idle
            # keep-alive connection (aiohttp's default is an hour)
            keepalive_timeout=self.header_timeout_s,
        )
        try:
            self._port = await _listen(self._runner, self.host, self._port)
            self._control_runner = web.AppRunner(
                make_control_app(self.service), shutdown_timeout=SHUTDOWN_GRACE_S
            )
            self._control_port = await _listen(
                self._control_runner, self.control_host, self._control_port
            )
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop: end every stall and pause, close connections, release the ports."""
        if self._runner is None:
            return
        self.service.stop()
        runner, self._runner = self._runner, None
        control, self._control_runner = self._control_runner, None
        await runner.cleanup()
        if control is not None:
            await control.cleanup()

    async def __aenter__(self) -> "BlobServer":
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- addresses and credentials -------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """The account endpoint, ``http://HOST:PORT/ACCOUNT``."""
        return f"http://{self.host}:{self._port}/{self.account}"

    @property
    def connection_string(self) -> str:
        return connection_string(blob_endpoint=self.url, account=self.account, key=self.key)

    @property
    def control_port(self) -> int:
        return self._control_port

    @property
    def control_url(self) -> str:
        """The fault control API, ``http://CONTROL_HOST:CONTROL_PORT/_faults``."""
        host = f"[{self.control_host}]" if ":" in self.control_host else self.control_host
        return f"http://{host}:{self._control_port}{PREFIX}"

    def blob_url(self, container: str, name: str) -> str:
        return f"{self.url}/{container}/{quote(name)}"

    def make_sas(
        self,
        container: str,
        name: str | None = None,
        permission: str = "r",
        expiry_s: float = 3600,
        start: datetime | float | None = None,
    ) -> str:
        """A service SAS query string (no ``?``), signed as ``generate_blob_sas`` /
        ``generate_container_sas`` sign it; ``start`` is a datetime or seconds from now."""
        now = datetime.now(UTC).replace(microsecond=0)
        if isinstance(start, int | float):
            start = now + timedelta(seconds=start)
        return make_service_sas(
            account=self.account,
            key=self.key,
            container=container,
            blob=name,
            permission=permission,
            expiry=now + timedelta(seconds=expiry_s),
            start=start,
        )

    # --- content ----------------------------------------------------------------------

    def put_blob(self, container: str, name: str, data: bytes) -> str:
        """Store a blob directly (creating the container); returns its ETag."""
        store = self.service.store
        try:
            store.create_container(container)
            return store.put(container, name, data, content_md5=hashlib.md5(data).digest()).etag
        except BlobError as exc:
            raise ValueError(f"cannot store {container}/{name}: {exc.code} {exc.detail}") from None

    # --- faults and events ------------------------------------------------------------

    @property
    def plan(self) -> FaultPlan:
        """The live plan; assign a new one to replace it."""
        return self.service.plan

    @plan.setter
    def plan(self, plan: FaultPlan) -> None:
        if not isinstance(plan, FaultPlan):
            raise ValueError(f"plan must be a FaultPlan, got {type(plan).__name__}")
        self.service.plan = plan

    def add_rule(self, rule: Rule) -> str:
        """Append a rule to the live plan; returns its id."""
        self.service.plan = self.service.plan.with_rule(rule)
        return self.service.plan.rules[-1].id

    def remove_rule(self, rule_id: str) -> None:
        """Remove one rule; KeyError if there is none with that id."""
        self.service.plan = self.service.plan.without(rule_id)

    def reset_faults(self) -> None:
        self.service.plan = FaultPlan()

    @property
    def events(self) -> list[Event]:
        """The event log (a copy): one :class:`Event` per request, in order of completion,
        the last ``event_log_size`` of them."""
        return list(self.service.events)
