"""The fault control API under ``/_faults``, JSON in and out (toxiproxy's REST API, for rules).

========  =========================  ==============================================
GET       /_faults                   the live plan ``{"rules": [...]}``
PUT       /_faults                   replace the plan (body: a plan)
POST      /_faults                   add a rule (body: a rule); 201 with the rule
GET       /_faults/{id}              one rule; 404 if unknown
DELETE    /_faults/{id}              remove one rule; 204, or 404 if unknown
POST      /_faults/reset             remove every rule; 204
GET       /_faults/events            the event log ``[{...}, ...]`` (the last ones kept)
DELETE    /_faults/events            clear the event log; 204
========  =========================  ==============================================

It is an application of its own, served on a listener of its own (as toxiproxy keeps
its API apart from its proxies): it has no credentials, so whoever reaches it steers
every fault, and :class:`~sim.cloud.blobserver.server.BlobServer` binds it to loopback
unless told otherwise. Control calls are not numbered and not logged as events. Bad
input answers 400 with ``{"error": "..."}`` naming the field and the allowed values
(one schema, :mod:`sim.cloud.faults.schema`); ``NaN`` and ``Infinity`` are not JSON.
"""

import json
from typing import Any

from aiohttp import web

from sim.cloud.blobserver.app import BlobService
from sim.cloud.faults.plan import FaultPlan, Rule
from sim.cloud.faults.schema import loads_json

PREFIX = "/_faults"
MAX_CONTROL_BODY_BYTES = 1024 * 1024  # a plan is a few kilobytes


def make_control_app(service: BlobService) -> web.Application:
    """The control API as an application of its own (served on its own listener)."""
    app = web.Application(client_max_size=MAX_CONTROL_BODY_BYTES)
    add_control_routes(app, service)
    return app


def add_control_routes(app: web.Application, service: BlobService) -> None:
    """Register the control routes on ``app``."""

    async def get_plan(request: web.Request) -> web.Response:
        return web.json_response(service.plan.to_dict())

    async def put_plan(request: web.Request) -> web.Response:
        data = await _json(request)
        try:
            service.plan = FaultPlan.from_dict(data)
        except ValueError as exc:
            raise _bad(str(exc)) from None
        return web.json_response(service.plan.to_dict())

    async def add_rule(request: web.Request) -> web.Response:
        data = await _json(request)
        try:
            rule = Rule.from_dict(data)
            plan = service.plan.with_rule(rule)
        except ValueError as exc:
            raise _bad(str(exc)) from None
        service.plan = plan
        return web.json_response(plan.rules[-1].to_dict(), status=201)

    async def get_rule(request: web.Request) -> web.Response:
        rule_id = request.match_info["rule_id"]
        for rule in service.plan.rules:
            if rule.id == rule_id:
                return web.json_response(rule.to_dict())
        raise _no_rule(rule_id)

    async def delete_rule(request: web.Request) -> web.Response:
        rule_id = request.match_info["rule_id"]
        try:
            service.plan = service.plan.without(rule_id)
        except KeyError:
            raise _no_rule(rule_id) from None
        return web.Response(status=204)

    async def reset(request: web.Request) -> web.Response:
        service.plan = FaultPlan()
        return web.Response(status=204)

    async def events(request: web.Request) -> web.Response:
        return web.json_response([event.to_dict() for event in service.events])

    async def clear_events(request: web.Request) -> web.Response:
        service.events.clear()
        return web.Response(status=204)

    app.router.add_get(PREFIX, get_plan)
    app.router.add_put(PREFIX, put_plan)
    app.router.add_post(PREFIX, add_rule)
    app.router.add_post(f"{PREFIX}/reset", reset)
    app.router.add_get(f"{PREFIX}/events", events)
    app.router.add_delete(f"{PREFIX}/events", clear_events)
    app.router.add_get(PREFIX + "/{rule_id}", get_rule)
    app.router.add_delete(PREFIX + "/{rule_id}", delete_rule)


async def _json(request: web.Request) -> Any:
    try:
        return loads_json(await request.text())
    except UnicodeDecodeError as exc:
        raise _bad(f"body is not UTF-8 text: {exc}") from None
    except ValueError as exc:
        raise _bad(f"body is {exc}") from None


def _no_rule(rule_id: str) -> web.HTTPNotFound:
    return web.HTTPNotFound(
        text=json.dumps({"error": f"no rule with id {rule_id!r}"}),
        content_type="application/json",
    )


def _bad(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")
