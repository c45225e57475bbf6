"""IoT Hub's service endpoint over HTTPS: the REST subset the ``azure-iot-hub`` SDK uses.

IoT Hub REST API (service, api-version 2021-04-12): ``IoTHubConfigurationManager``
(``PUT/GET/DELETE /configurations/{id}``, ``GET /configurations?top=N``) and
``IoTHubRegistryManager`` (``PUT/GET/DELETE /devices/{id}``, ``GET /devices``,
``GET/PATCH/PUT /twins/{id}``, ``POST /devices/query``). Every request carries
``Authorization: SharedAccessSignature sr={host}&sig=...&se=...&skn={policy}``, checked
against the hub's shared access policy (401 otherwise).

Etag rules: a ``PUT`` without ``If-Match`` creates and answers 409 when the id exists;
with ``If-Match`` it updates, and ``*`` or the current etag must match (412 otherwise);
``DELETE`` and twin updates honour ``If-Match`` the same way. A configuration's
``content`` cannot change after creation (400). A configuration created here is
evaluated at once, then on the hub's interval.

``/_faults`` (no authentication, like the blob server's) is the twin-channel fault
control API: ``POST`` a :class:`~sim.cloud.twin_faults.TwinFault` as JSON, ``GET`` the
rules and events, ``DELETE`` to clear.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from sim.cloud.hub import Configuration, Hub, Identity
from sim.cloud.iothub import sas
from sim.cloud.query import ConditionError
from sim.cloud.twin_faults import TwinFault, TwinFaults

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, code: str, message: str) -> web.Response:
    body = {"Message": f"ErrorCode:{code};{message}", "ExceptionMessage": message}
    return web.json_response(body, status=status)


def _etag_matches(request: web.Request, current: str) -> bool | None:
    """None without If-Match; else whether it is ``*`` or the current etag."""
    value = request.headers.get("If-Match")
    if value is None:
        return None
    value = value.strip().strip('"')  # the registry manager quotes even "*"
    return value == "*" or value == current.strip('"')


class ServiceApi:
    """The REST handlers over ``hub``; ``policy`` is ``(name, key)``, ``hosts`` the
    names a token's ``sr`` may carry."""

    def __init__(
        self,
        hub: Hub,
        *,
        policy: tuple[str, str],
        hosts: list[str],
        faults: TwinFaults,
        on_configuration: Callable[[], None],
        on_change: Callable[[], None],
    ) -> None:
        self.hub = hub
        self.policy = policy
        self.hosts = hosts
        self.faults = faults
        self.on_configuration = on_configuration
        self.on_change = on_change
        self.requests = 0

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        r = app.router
        r.add_get("/_faults", self.faults_get)
        r.add_post("/_faults", self.faults_post)
        r.add_delete("/_faults", self.faults_delete)
        r.add_get("/configurations", self.configurations_list)
        r.add_put("/configurations/{id}", self.configuration_put)
        r.add_get("/configurations/{id}", self.configuration_get)
        r.add_delete("/configurations/{id}", self.configuration_delete)
        r.add_post("/devices/query", self.query)
        r.add_get("/devices", self.devices_list)
        r.add_put("/devices/{id}", self.device_put)
        r.add_get("/devices/{id}", self.device_get)
        r.add_delete("/devices/{id}", self.device_delete)
        r.add_get("/twins/{id}", self.twin_get)
        r.add_patch("/twins/{id}", self.twin_update)
        r.add_put("/twins/{id}", self.twin_update)
        return app

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests += 1
        if request.path.startswith("/_faults"):
            return await handler(request)
        token = request.headers.get("Authorization", "")
        name, key = self.policy
        try:
            sas.verify(token, resources=self.hosts, keys=[key], key_name=name)
        except sas.SasError as exc:
            return _error(401, "IotHubUnauthorizedAccess", f"Unauthorized: {exc}")
        try:
            response = await handler(request)
        except (ValueError, ConditionError) as exc:
            return _error(400, "ArgumentInvalid", str(exc))
        if request.method != "GET":
            self.on_change()
        return response

    async def _json(self, request: web.Request) -> Any:
        try:
            return await request.json()
        except ValueError:
            raise ValueError("the body is not JSON") from None

    # --- configurations -----------------------------------------------------------------

    async def configurations_list(self, request: web.Request) -> web.Response:
        top = int(request.query.get("top", "20"))
        ids = [c.id for c in self.hub.configurations][:top]
        return web.json_response([self.hub.configuration_json(i) for i in ids])

    async def configuration_get(self, request: web.Request) -> web.Response:
        config_id = request.match_info["id"]
        if not self.hub.has_configuration(config_id):
            return _error(404, "ConfigurationNotFound", f"configuration {config_id} not found")
        return web.json_response(self.hub.configuration_json(config_id))

    async def configuration_put(self, request: web.Request) -> web.Response:
        config_id = request.match_info["id"]
        body = await self._json(request)
        if not isinstance(body, dict):
            raise ValueError("configuration must be a JSON object")
        if body.get("id", config_id) != config_id:
            raise ValueError("the body's id differs from the one in the URL")
        body["id"] = config_id
        body.setdefault("metrics", {})
        configuration = Configuration.from_json(body)
        exists = self.hub.has_configuration(config_id)
        match = _etag_matches(request, self.hub.configuration_etag(config_id) if exists else "")
        if match is None:
            if exists:
                return _error(409, "ConfigurationAlreadyExists", f"{config_id} already exists")
            self.hub.create_configuration(configuration)
            self.on_configuration()
            return web.json_response(self.hub.configuration_json(config_id), status=201)
        if not exists:
            return _error(404, "ConfigurationNotFound", f"configuration {config_id} not found")
        if not match:
            return _error(412, "PreconditionFailed", "If-Match does not match the etag")
        self.hub.update_configuration(configuration)
        return web.json_response(self.hub.configuration_json(config_id))

    async def configuration_delete(self, request: web.Request) -> web.Response:
        config_id = request.match_info["id"]
        if not self.hub.has_configuration(config_id):
            return _error(404, "ConfigurationNotFound", f"configuration {config_id} not found")
        if _etag_matches(request, self.hub.configuration_etag(config_id)) is False:
            return _error(412, "PreconditionFailed", "If-Match does not match the etag")
        self.hub.delete_configuration(config_id)
        return web.Response(status=204)

    # --- devices ------------------------------------------------------------------------

    async def devices_list(self, request: web.Request) -> web.Response:
        top = int(request.query.get("top", "1000"))
        return web.json_response([self.hub.device_json(i) for i in self.hub.device_ids[:top]])

    async def device_get(self, request: web.Request) -> web.Response:
        device_id = request.match_info["id"]
        if not self.hub.has_device(device_id):
            return _error(404, "DeviceNotFound", f"device {device_id} not found")
        return web.json_response(self.hub.device_json(device_id))

    async def device_put(self, request: web.Request) -> web.Response:
        device_id = request.match_info["id"]
        body = await self._json(request)
        if not isinstance(body, dict):
            raise ValueError("device must be a JSON object")
        if body.get("deviceId", device_id) != device_id:
            raise ValueError("the body's deviceId differs from the one in the URL")
        identity = Identity.from_json(
            body.get("authentication"), status=body.get("status") or "enabled"
        )
        exists = self.hub.has_device(device_id)
        current = self.hub.device_json(device_id)["etag"] if exists else ""
        match = _etag_matches(request, current)
        if match is None:
            if exists:
                return _error(409, "DeviceAlreadyExists", f"device {device_id} already exists")
            self.hub.add_device(device_id, identity=identity)
        elif not exists:
            return _error(404, "DeviceNotFound", f"device {device_id} not found")
        elif not match:
            return _error(412, "PreconditionFailed", "If-Match does not match the etag")
        else:
            self.hub.set_identity(device_id, identity)
        return web.json_response(self.hub.device_json(device_id))

    async def device_delete(self, request: web.Request) -> web.Response:
        device_id = request.match_info["id"]
        if not self.hub.has_device(device_id):
            return _error(404, "DeviceNotFound", f"device {device_id} not found")
        if _etag_matches(request, self.hub.device_json(device_id)["etag"]) is False:
            return _error(412, "PreconditionFailed", "If-Match does not match the etag")
        self.hub.delete_device(device_id)
        return web.Response(status=204)

    # --- twins and queries --------------------------------------------------------------

    async def twin_get(self, request: web.Request) -> web.Response:
        device_id = request.match_info["id"]
        if not self.hub.has_device(device_id):
            return _error(404, "DeviceNotFound", f"device {device_id} not found")
        return web.json_response(self.hub.twin_json(device_id))

    async def twin_update(self, request: web.Request) -> web.Response:
        device_id = request.match_info["id"]
        if not self.hub.has_device(device_id):
            return _error(404, "DeviceNotFound", f"device {device_id} not found")
        if _etag_matches(request, self.hub.twin_etag(device_id)) is False:
            return _error(412, "PreconditionFailed", "If-Match does not match the twin's etag")
        body = await self._json(request)
        twin = self.hub.update_twin(device_id, body, replace=request.method == "PUT")
        return web.json_response(twin)

    async def query(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        text = body.get("query") if isinstance(body, dict) else None
        if not isinstance(text, str):
            raise ValueError("the body must be {'query': 'SELECT ...'}")
        items = self.hub.query(text)
        start = int(request.headers.get("x-ms-continuation") or 0)
        size = int(request.headers.get("x-ms-max-item-count") or 100)
        page = items[start : start + size]
        headers = {"x-ms-item-type": "twin" if text.split()[1] == "*" else "raw"}
        if start + size < len(items):
            headers["x-ms-continuation"] = str(start + size)
        return web.json_response(page, headers=headers)

    # --- the fault control API ------------------------------------------------------

    async def faults_get(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "rules": [f.to_json() for f in self.faults.rules],
                "events": [e.__dict__ for e in self.faults.fired()],
            }
        )

    async def faults_post(self, request: web.Request) -> web.Response:
        try:
            fault = self.faults.add(TwinFault.from_json(await request.json()))
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(fault.to_json(), status=201)

    async def faults_delete(self, request: web.Request) -> web.Response:
        self.faults.clear()
        return web.Response(status=204)


def json_dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
