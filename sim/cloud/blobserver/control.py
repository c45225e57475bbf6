"""The fault control API under ``/_faults``, JSON in and out (toxiproxy's REST API, for rules).

========  =========================  ==============================================
GET       /_faults                   the live plan ``{"rules": [...]}``
PUT       /_faults                   replace the plan (body: a plan)
POST      /_faults                   add a rule (body: a rule); 201 with the rule
DELETE    /_faults/{id}              remove one rule; 204, or 404 if unknown
POST      /_faults/reset             remove every rule; 204
GET       /_faults/events            the event log ``[{...}, ...]``
DELETE    /_faults/events            clear the event log; 204
========  =========================  ==============================================

Control calls are not numbered and not logged as events. Bad input answers 400
with ``{"error": "..."}`` naming what was wrong.
"""

import json
from typing import Any

from aiohttp import web

from sim.cloud.blobserver.app import BlobService
from sim.cloud.faults.plan import FaultPlan, Rule

PREFIX = "/_faults"


def add_control_routes(app: web.Application, service: BlobService) -> None:
    """Register the control routes (before the Blob API's catch-all route)."""

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

    async def delete_rule(request: web.Request) -> web.Response:
        rule_id = request.match_info["rule_id"]
        try:
            service.plan = service.plan.without(rule_id)
        except KeyError:
            raise web.HTTPNotFound(
                text=json.dumps({"error": f"no rule with id {rule_id!r}"}),
                content_type="application/json",
            ) from None
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
    app.router.add_delete(PREFIX + "/{rule_id}", delete_rule)


async def _json(request: web.Request) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _bad(f"body is not JSON: {exc}") from None


def _bad(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")
