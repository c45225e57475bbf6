"""The fault control API: its own listener, loopback-only unless asked, and 400s, not 500s.

toxiproxy keeps its API (port 8474) apart from the proxies it controls; here the
``/_faults`` API answers on a listener of its own (``BlobServer.control_url``), bound
to loopback unless ``expose_control=True``, so a client that can reach the blob
endpoint cannot steer the faults. Bad input answers 400 with ``{"error": ...}`` naming
the field and the allowed values (one schema: ``sim.cloud.faults.schema``).
"""

import aiohttp
import pytest

from sim.cloud.blobserver import BlobServer

pytestmark = pytest.mark.sim


@pytest.fixture
async def server():
    async with BlobServer() as srv:
        srv.put_blob("firmware", "fw.bin", b"x" * 1024)
        yield srv


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as client:
        yield client


async def test_the_control_api_has_its_own_listener(server, session):
    """The data port does not answer /_faults: a POST there is a Blob API request (no
    such account), and the live plan stays empty."""
    assert server.control_port != server.port
    data_side = f"http://{server.host}:{server.port}/_faults"
    async with session.post(data_side, json={"fault": "down"}) as response:
        assert response.status == 404
    assert server.plan.rules == ()
    async with session.post(server.control_url, json={"id": "d", "fault": "down"}) as response:
        assert response.status == 201
    assert [r.id for r in server.plan.rules] == ["d"]


def test_the_control_api_binds_loopback_only_unless_asked():
    """A non-loopback control address is refused unless ``expose_control`` says so."""
    for host in ("0.0.0.0", "::", "192.0.2.1", "example.com"):
        with pytest.raises(ValueError, match="expose_control"):
            BlobServer(control_host=host)
    BlobServer(control_host="::1")
    BlobServer(control_host="0.0.0.0", expose_control=True)


async def test_get_one_rule_by_id(server, session):
    """``GET /_faults/{id}`` answers the rule; an unknown id answers 404 naming it
    (it used to fall through to the Blob API's 404)."""
    async with session.post(
        server.control_url, json={"id": "cut", "fault": "limit_data", "params": {"bytes": 10}}
    ):
        pass
    async with session.get(server.control_url + "/cut") as response:
        assert response.status == 200
        rule = await response.json()
    assert (rule["id"], rule["fault"], rule["params"]) == ("cut", "limit_data", {"bytes": 10})
    async with session.get(server.control_url + "/nope") as response:
        assert response.status == 404
        assert "nope" in (await response.json())["error"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"fault": ["latency"]}', "rule.fault"),
        ('{"fault": {"a": 1}}', "rule.fault"),
        ('{"fault": "noop", "methods": 5}', "rule.methods"),
        ('{"fault": "noop", "methods": [1, 2]}', "rule.methods[0]"),
        ('{"fault": "noop", "methods": null}', "rule.methods"),
        ('{"fault": "bandwidth", "params": {"rate_bps": NaN}}', "NaN"),
        ('{"fault": "bandwidth", "params": {"rate_bps": Infinity}}', "Infinity"),
        ('{"fault": "limit_data", "params": false}', "rule.params"),
        ("[1, 2]", "rule"),
        ('"x"', "rule"),
    ],
)
async def test_a_bad_rule_answers_400_naming_the_field(server, session, body, field):
    async with session.post(
        server.control_url, data=body, headers={"Content-Type": "application/json"}
    ) as response:
        assert response.status == 400
        error = (await response.json())["error"]
    assert field in error and "\n" not in error
    assert server.plan.rules == ()


async def test_a_bad_plan_answers_400_and_keeps_the_live_plan(server, session):
    server.add_rule(
        __import__("sim.cloud.faults.plan", fromlist=["Rule"]).Rule.from_dict(
            {"id": "keep", "fault": "noop"}
        )
    )
    body = '{"rules": [{"fault": "bandwidth", "params": {"rate_bps": NaN}}]}'
    async with session.put(server.control_url, data=body) as response:
        assert response.status == 400
        assert "NaN" in (await response.json())["error"]
    assert [r.id for r in server.plan.rules] == ["keep"]


async def test_a_get_is_served_in_full_after_a_nan_bandwidth_was_refused(server, session):
    """The NaN bandwidth rule made every GET answer 206 with no body; refused, it never
    reaches the plan and the blob is served whole."""
    body = '{"fault": "bandwidth", "params": {"rate_bps": NaN}}'
    async with session.post(server.control_url, data=body):
        pass
    url = server.blob_url("firmware", "fw.bin") + "?" + server.make_sas("firmware")
    async with session.get(url, headers={"Range": "bytes=0-"}) as response:
        assert (response.status, len(await response.read())) == (206, 1024)
