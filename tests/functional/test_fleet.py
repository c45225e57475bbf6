"""A fleet of simulated gateways rolled out through the simulated hub by device group.

Five devices (``FleetPlan(devices=5)``): gw-00 and gw-02 stay in ``washer/field_test``
(v1), gw-01 and gw-03 move to ``washer/pilot`` and get v2, gw-04 is a ``dryer`` that no
configuration targets. Rules: IoT Hub "Automatic device management" (targeting by tags,
priority, system metrics); the cloud contract of the reference design (``Status``
``applied`` and ``Version`` after an apply).
"""

import asyncio

import pytest

from sim.tools.fleet import FleetPlan, main, run_fleet

pytestmark = pytest.mark.sim

PLAN = FleetPlan(devices=5, seed=3, image_size=24 * 1024)


@pytest.fixture(scope="module")
def result():
    """One rollout shared by the tests below (each reads a different aspect of it)."""
    return asyncio.run(run_fleet(PLAN))


def _by_id(result):
    return {o.device_id: o for o in result.outcomes}


def test_field_test_washers_apply_v1(result):
    """v1 targets ``tags.productType='washer' AND tags.deviceGroup='field_test'``."""
    devices = _by_id(result)
    for device_id in ("gw-00", "gw-02"):
        assert devices[device_id].tags["deviceGroup"] == "field_test"
        assert (devices[device_id].status, devices[device_id].installed_version) == ("applied", 1)


def test_pilot_washers_move_from_v1_to_v2(result):
    """Retagged into ``pilot``, the next evaluation gives them v2 (priority 2)."""
    devices = _by_id(result)
    for device_id in ("gw-01", "gw-03"):
        assert devices[device_id].tags["deviceGroup"] == "pilot"
        assert (devices[device_id].status, devices[device_id].installed_version) == ("applied", 2)


def test_each_mcu_holds_exactly_the_image_its_configuration_published(result):
    """Applied means the MCU holds the published bytes: its SHA-256 is the ``sha256`` of
    the device's desired extFwInfo, and the two groups hold different images."""
    hashes = {}
    for o in result.outcomes:
        if o.desired_version is not None:
            assert o.image_sha256 == o.desired_sha256, o.device_id
            hashes.setdefault(o.desired_version, set()).add(o.image_sha256)
    assert len(hashes[1]) == len(hashes[2]) == 1
    assert hashes[1] != hashes[2]


def test_nothing_is_applied_outside_the_target_condition(result):
    """The dryer matches no configuration: no desired extFwInfo, no report, no image."""
    dryer = _by_id(result)["gw-04"]
    assert dryer.tags["productType"] == "dryer"
    assert dryer.desired_version is None
    assert dryer.status is None
    assert dryer.installed_version == 0


def test_metrics_count_targeted_applied_and_reported_status_per_configuration(result):
    """systemMetrics targetedCount/appliedCount and ota.py's count by reported Status,
    scoped to each configuration: two devices each, all ``applied``."""
    for config_id in ("ota_v1", "ota_v2"):
        metrics = result.metrics[config_id]
        assert (metrics.targeted_count, metrics.applied_count) == (2, 2)
        assert metrics.queries["applied"] == 2
        assert sum(metrics.queries.values()) == 2


def test_fleet_command_prints_every_device_and_the_metrics(capsys):
    """``python -m sim fleet`` is the campaign's small preset: ``--devices 3`` is one
    field_test washer (v1), one pilot washer (v2) and a dryer; it exits 0 after a clean
    rollout and prints one row per device and one line of metrics per configuration."""
    assert main(["--devices", "3", "--seed", "1", "--image-size", "8192", "--quiet"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith("  gw-")]
    assert [(r[0], r[2], r[3], r[4]) for r in rows] == [
        ("gw-000", "field_test", "1", "applied"),
        ("gw-001", "pilot", "2", "applied"),
        ("gw-002", "field_test", "-", "-"),
    ]
    assert "ota_v1     targeted=1 applied=1" in out
    assert "ota_v2     targeted=1 applied=1" in out


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("devices", 2, "devices must be 3..32"),
        ("image_size", 0, "image_size must be"),
        ("io_time_scale", 0, "io_time_scale must be in"),
    ],
)
def test_fleet_plan_refuses_a_bad_field_naming_it(field, value, named):
    """Bad input is refused on construction, naming the field."""
    with pytest.raises(ValueError, match=named):
        FleetPlan(**{field: value})
