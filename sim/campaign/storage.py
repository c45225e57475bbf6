"""The campaign's storage account: the project's blob server, plus an outage in device
time and a log of every request's arrival in device time.

Both sit in an aiohttp middleware in front of the unchanged blob service (its fault plan
still applies to every request that gets through): a request whose device time
(:data:`sim.campaign.probe.TIME_HEADER`) lies inside the outage has its connection reset
before any byte of an answer, as the ``down`` fault does (the account unreachable).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from sim.campaign.plan import Outage
from sim.campaign.probe import DEVICE_HEADER, SEQ_HEADER, TIME_HEADER, Arrival
from sim.cloud.blobserver import BlobServer
from sim.cloud.blobserver.app import RedactingAccessLogger
from sim.cloud.blobserver.server import SHUTDOWN_GRACE_S, make_app
from sim.cloud.blobserver.shaping import reset_connection
from sim.cloud.faults.plan import FaultPlan

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class CampaignStorage(BlobServer):
    """:class:`BlobServer` with ``outage`` applied and :attr:`arrivals` recorded."""

    def __init__(
        self, *, plan: FaultPlan | None = None, seed: int = 0, outage: Outage | None = None
    ) -> None:
        super().__init__(plan=plan, seed=seed)
        self.outage = outage
        self.arrivals: list[Arrival] = []

    async def start(self) -> None:
        """As :meth:`BlobServer.start`, with the middleware in front of every route."""
        if self._runner is not None:
            raise RuntimeError("the blob server is already running")
        app = make_app(self.service)
        app.middlewares.append(self._front)
        self._runner = web.AppRunner(
            app, access_log_class=RedactingAccessLogger, shutdown_timeout=SHUTDOWN_GRACE_S
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._port, backlog=4096)
        await site.start()
        server = site._server  # aiohttp exposes the bound port only here
        self._port = (getattr(server, "sockets", None) or [])[0].getsockname()[1]

    @web.middleware
    async def _front(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        device = request.headers.get(DEVICE_HEADER)
        if device is None:  # the operator's upload, the control API: not a device
            return await handler(request)
        t = _float(request.headers.get(TIME_HEADER))
        seq = int(request.headers.get(SEQ_HEADER, "0") or 0)
        if self.outage is not None and self.outage.covers(t):
            self.arrivals.append(Arrival(device, t, seq, "outage"))
            reset_connection(request)
            return web.Response(status=503)  # never sent: the connection is gone
        arrival_index = len(self.arrivals)
        self.arrivals.append(Arrival(device, t, seq, "ok"))
        response = await handler(request)
        self.arrivals[arrival_index] = Arrival(device, t, seq, "ok", response.status)
        return response


def _float(text: str | None) -> float:
    try:
        return float(text) if text is not None else 0.0
    except ValueError:
        return 0.0
