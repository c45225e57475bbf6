"""Twin-channel faults in a campaign (``--faults PLAN`` with a ``"twin"`` section): the
vocabulary of ``sim/cloud/twin_faults.py`` on every device's in-process twin, in device
time, a ``share`` of the fleet drawn per device from the seed.

Rules: IoT Hub's twin semantics (a reconnecting device gets the whole desired section
when ``$version`` moved, ``docs/iothub.md``), MQTT 3.1.1's CONNACK refusal, and the
agent's promise that no report is ever dropped (``agent/twin_link.py``).
"""

import asyncio
import json
from pathlib import Path

import pytest

from sim.campaign.campaign import run_campaign
from sim.campaign.plan import CampaignPlan, Group
from sim.campaign.twin_channel import faults_for, parse_twin_section
from sim.tools.campaign import main

pytestmark = pytest.mark.sim

BOUND_S = 120.0  # a campaign whose idle devices never get what they are owed hangs


ONE_WAVE = (Group("field", 1.0),)


def _plan(twin, *, devices=20, image_size=64 * 1024, seed=3, groups=ONE_WAVE):
    return CampaignPlan(
        devices=devices,
        image_size=image_size,
        groups=groups,
        control=0,
        seed=seed,
        twin_faults=parse_twin_section(twin),
    )


def _run(plan):
    return asyncio.run(asyncio.wait_for(run_campaign(plan), BOUND_S))


def _hit(plan, kind):
    return {
        d.device_id
        for d in plan.layout()
        if any(
            f.kind == kind
            for f in faults_for(
                plan.twin_faults, seed=plan.seed, device_id=d.device_id, device_index=d.index
            )
        )
    }


def test_a_delayed_patch_reaches_the_share_it_hits_late_and_the_rest_on_time():
    """Two waves (the field's at hub time 60 s): a delay counts from when the hub sent the
    patch, and an idle device's clock is moved to when it arrives."""
    waves = (Group("canary", 0.2), Group("field", 0.8))
    plan = _plan([{"fault": "delay_desired", "delay_s": 40, "share": 0.5}], groups=waves)
    result = _run(plan)
    assert result.ok
    late = {d.device_id for d in result.devices if d.twin_faults.get("delay_desired")}
    assert late == _hit(plan, "delay_desired") and 4 <= len(late) <= 16
    for d in result.devices:
        sent = plan.wave_time(d.wave)
        first = d.timeline[0].t - sent
        assert (40.0 <= first < 45.0) if d.device_id in late else (first < 5.0), d.device_id
    # the share is drawn per device from the seed: the same seed hits the same devices
    rules = [{"fault": "delay_desired", "delay_s": 40, "share": 0.5}]
    assert _hit(_plan(rules, seed=3, groups=waves), "delay_desired") == late
    assert _hit(_plan(rules, seed=4, groups=waves), "delay_desired") != late


def test_the_hub_down_for_a_window_holds_every_report_back_until_it_returns():
    """Every connection dropped at 2 s and every connect refused until 62 s (CONNACK 3,
    server unavailable): the devices are mid-download and keep downloading, but the hub
    gets no report from any of them inside the window; all of them apply afterwards."""
    plan = _plan(
        [
            {"fault": "drop_connection", "at_s": 2.0},
            {"fault": "refuse_connect", "at_s": 2.0, "for_s": 60.0},
        ],
        image_size=128 * 1024,
    )
    result = _run(plan)
    assert result.ok
    for d in result.devices:
        times = [r.t for r in d.timeline]
        assert not [t for t in times if 2.0 <= t < 62.0], (d.device_id, times)
        assert times[0] < 2.0 < 62.0 <= times[-1]
        assert d.twin_faults["drop_connection"] == 1 and d.twin_faults["refuse_connect"] >= 1


def test_a_lost_acknowledgement_is_resent_after_its_timeout_and_failed_gets_are_retried():
    plan = _plan([{"fault": "lose_reported_ack"}, {"fault": "fail_twin_get", "count": 2}])
    result = _run(plan)
    assert result.ok
    for d in result.devices:
        assert d.twin_faults == {"fail_twin_get": 2, "lose_reported_ack": 1}
        first, again = d.timeline[0], d.timeline[1]
        assert first.extfw == again.extfw  # the same report, sent again
        assert again.t - first.t >= 30.0  # after the adapter's 30 s operation timeout


def test_a_duplicated_patch_is_applied_once():
    result = _run(_plan([{"fault": "duplicate_desired"}]))
    assert result.ok
    for d in result.devices:
        statuses = [r.status for r in d.timeline]
        assert d.twin_faults == {"duplicate_desired": 1}
        assert statuses.count("applying") == 1 and statuses.count("applied") == 1, statuses


def test_a_rule_for_one_device_hits_that_device_alone():
    result = _run(_plan([{"fault": "drop_connection", "after_messages": 1, "device": "gw-007"}]))
    assert result.ok
    assert {d.device_id for d in result.devices if d.twin_faults} == {"gw-007"}


def test_the_command_takes_a_twin_section_and_reports_what_fired(tmp_path, capsys):
    faults = tmp_path / "plan.json"
    twin = [{"fault": "drop_connection", "after_messages": 2, "share": 0.5}]
    faults.write_text(json.dumps({"rules": [], "twin": twin}))
    report = tmp_path / "r"
    argv = ["--devices", "12", "--image-size", "32K", "--outage", "none", "--cut-rate", "0"]
    status = main([*argv, "--faults", str(faults), "--report", str(report), "--quiet"])
    out = capsys.readouterr().out
    assert status == 0, out
    summary = json.loads((report / "summary.json").read_text())
    fired = summary["totals"]["twin_faults_fired"]["drop_connection"]
    hit = [d for d in summary["devices"] if d["twin_faults_fired"]]
    assert fired == len(hit) >= 1
    assert (
        f"twin faults        {fired} fired on {len(hit)} devices (drop_connection {fired})" in out
    )
    assert summary["campaign"]["twin_fault_rules"][0]["share"] == 0.5


@pytest.mark.parametrize(
    ("twin", "named"),
    [
        ([{"fault": "unplug"}], "twin[0]: fault must be one of"),
        ([{"fault": "duplicate_desired"}, {"fault": "delay_desired"}], "twin[1]: delay_desired"),
        ([{"fault": "duplicate_desired", "share": 0}], "twin[0]: share must be"),
        ([{"fault": "duplicate_desired", "when": 3}], "twin[0]: unknown fault field(s): when"),
        ({"fault": "duplicate_desired"}, "'twin' must be a list"),
        ([{"fault": "duplicate_desired", "device": "gw-999"}], "not one of this fleet's"),
    ],
)
def test_a_bad_twin_section_exits_2_with_one_line_naming_it(tmp_path, capsys, twin, named):
    faults = tmp_path / "plan.json"
    faults.write_text(json.dumps({"twin": twin}))
    with pytest.raises(SystemExit) as exit_:
        main(["--devices", "12", "--faults", str(faults)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert named in err[-1] and "Traceback" not in "".join(err)


def test_the_shipped_hostile_hub_plan_fires_every_fault_it_names_and_the_fleet_applies(
    tmp_path, capsys
):
    """``fixtures/campaigns/hostile-hub.json`` (the campaign doc's example): blob lies and
    every twin rule it holds, each hitting part of the fleet; every targeted device still
    ends applied with the hub agreeing."""
    path = Path(__file__).resolve().parents[2] / "fixtures" / "campaigns" / "hostile-hub.json"
    named = {rule["fault"] for rule in json.loads(path.read_text())["twin"]}
    report = tmp_path / "r"
    argv = ["--devices", "40", "--image-size", "64K", "--seed", "0", "--quiet"]
    status = main([*argv, "--faults", str(path), "--report", str(report)])
    assert status == 0, capsys.readouterr().out
    summary = json.loads((report / "summary.json").read_text())
    assert set(summary["totals"]["twin_faults_fired"]) == named
    targeted = [d for d in summary["devices"] if d["wave"] is not None]
    assert len(targeted) == 38
    assert all(d["outcome"] == "applied" and d["image_ok"] for d in targeted)
