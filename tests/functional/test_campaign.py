"""``python -m sim campaign`` end to end: waves by device group through the deploy tool,
power cuts, an outage, the live view, and the report an operator keeps.

Rules: IoT Hub "Automatic device management" (a configuration targets tags, is applied
at creation; ``targetedCount``/``appliedCount``); the reference design's reported
statuses; the project's rule that no SAS signature reaches a log or a report.
"""

import contextlib
import io
import json
import re

import pytest

from sim.tools.campaign import main

pytestmark = pytest.mark.sim

ARGS = [
    "--devices",
    "30",
    "--image-size",
    "64K",
    "--groups",
    "canary=20%,field=80%",
    "--control",
    "2",
    "--wave-interval",
    "20",
    "--outage",
    "20.3:15",
    "--cut-rate",
    "1000",
    "--seed",
    "5",
]
STATUSES = {"downloading", "interrupted", "applying", "applied", "error", "invalid"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One campaign shared by the tests below (stdout captured by hand: a module-scoped
    fixture has no capsys)."""
    report = tmp_path_factory.mktemp("campaign") / "report"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main([*ARGS, "--report", str(report)])
    return status, out.getvalue(), report


def _summary(report):
    return json.loads((report / "summary.json").read_text())


def test_every_targeted_device_applies_its_waves_image_and_controls_stay_untouched(run):
    status, _, report = run
    summary = _summary(report)
    assert status == 0 and summary["ok"]
    devices = summary["devices"]
    assert len(devices) == 30
    targeted = [d for d in devices if d["wave"] is not None]
    assert {d["tags"]["deviceGroup"] for d in targeted if d["wave"] == 0} == {"canary"}
    assert sum(d["wave"] == 0 for d in targeted) == 6 and len(targeted) == 28
    for d in targeted:
        assert (d["outcome"], d["image_ok"]) == ("applied", True), d
        assert d["installed_version"] == d["desired_version"] == d["wave"] + 1
    for d in devices:
        if d["wave"] is None:
            assert d["tags"]["productType"] == "dryer"
            assert (d["outcome"], d["desired_version"], d["installed_version"]) == (None, None, 0)


def test_power_cuts_are_survived_and_counted_per_device(run):
    _, _, report = run
    summary = _summary(report)
    cuts = [d["cuts_survived"] for d in summary["devices"]]
    assert sum(cuts) >= 10  # 1000 per device-hour over tens of seconds each
    assert summary["totals"]["cuts_survived"] == sum(cuts)
    for d in summary["devices"]:
        assert d["boots"] == d["cuts_survived"] + 1


def test_the_wave_after_the_canary_starts_at_its_hub_time(run):
    _, _, report = run
    rows = [json.loads(line) for line in (report / "timeline.jsonl").read_text().splitlines()]
    field = {d["device"] for d in _summary(report)["devices"] if d["wave"] == 1}
    assert min(r["t"] for r in rows if r["device"] in field) >= 20.0
    assert {r["Status"] for r in rows} <= STATUSES


def test_the_timeline_holds_every_report_in_device_time_order(run):
    _, _, report = run
    summary = _summary(report)
    rows = [json.loads(line) for line in (report / "timeline.jsonl").read_text().splitlines()]
    assert [r["t"] for r in rows] == sorted(r["t"] for r in rows)
    for d in summary["devices"]:
        mine = [r for r in rows if r["device"] == d["device"]]
        if d["wave"] is None:
            assert not mine
            continue
        assert mine[-1]["Status"] == "applied" and mine[-1]["Version"] == d["installed_version"]
        assert mine[-1]["t"] == pytest.approx(d["settled_at_device_s"], abs=1e-3)


def test_the_request_log_and_rate_agree_and_the_outage_refuses_only_inside_its_window(run):
    _, _, report = run
    requests = [json.loads(line) for line in (report / "requests.jsonl").read_text().splitlines()]
    rate = json.loads((report / "request_rate.json").read_text())
    assert sum(rate["answered"]) + sum(rate["refused"]) == len(requests)
    refused = [r for r in requests if r["outcome"] == "outage"]
    assert refused and all(20.3 <= r["t"] < 35.3 for r in refused)
    assert not any(20.3 <= r["t"] < 35.3 for r in requests if r["outcome"] == "ok")
    for second, n in enumerate(rate["refused"]):
        assert n == sum(1 for r in refused if int(r["t"]) == second)


def test_hub_metrics_over_time_end_with_every_targeted_device_applied(run):
    _, _, report = run
    rows = [json.loads(line) for line in (report / "hub_metrics.jsonl").read_text().splitlines()]
    last = {r["config"]: r for r in rows}
    assert (last["ota_v1"]["targetedCount"], last["ota_v1"]["appliedCount"]) == (6, 6)
    assert (last["ota_v2"]["targetedCount"], last["ota_v2"]["appliedCount"]) == (22, 22)
    assert (last["ota_v1"]["applied"], last["ota_v2"]["applied"]) == (6, 22)  # by Status
    # written to a device (appliedCount) is not yet applied by it (Status 'applied')
    assert any(r["appliedCount"] > r["applied"] for r in rows)
    assert (last["ota_v1"]["downloading"], last["ota_v2"]["downloading"]) == (0, 0)
    assert not any(r["config"] == "ota_v2" for r in rows if r["t"] < 20)
    assert any(r["downloading"] > 0 for r in rows)  # the rollout is seen while it runs


def test_the_picture_is_a_png_and_a_self_contained_page(run):
    _, _, report = run
    assert (report / "campaign.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (report / "campaign.html").read_text()
    assert "<svg" in page and "outage" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "<script" not in page


def test_no_sas_signature_reaches_any_report_file(run):
    _, _, report = run
    for path in report.iterdir():
        text = path.read_bytes().decode("utf-8", "replace")
        assert not re.search(r"sig=(?!REDACTED)[^&\s\"]", text), path.name


def test_progress_is_plain_lines_when_not_a_terminal_and_the_summary_follows(run):
    _, out, _ = run
    lines = out.splitlines()
    progress = [line for line in lines if re.match(r"\[\s*\d+\.\d s\] waiting \d+", line)]
    assert progress, out
    assert all(s in progress[-1] for s in STATUSES)
    assert "herd after the outage" in out and "hub ota_v2" in out


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--devices", "0"], "devices must be"),
        (["--outage", "10"], "--outage must be START:LENGTH"),
        (["--outage", "10:-5"], "outage length"),
        (["--groups", "a=30%,b=30%"], "add up to 100%"),
        (["--groups", "a=10%,b"], "has no share"),
        (["--image-size", "big"], "--image-size"),
        (["--cut-rate", "-1"], "cut_rate"),
        (["--workers", "2", "--scheduler", "127.0.0.1:8786"], "not both"),
    ],
)
def test_bad_arguments_exit_2_with_one_line_naming_them(capsys, argv, named):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert named in err[-1] and "Traceback" not in "".join(err)


def test_a_blob_fault_plan_applies_to_the_devices_but_not_the_operators_upload(tmp_path):
    """Half of all requests of any method answered 503 with Retry-After: the devices get
    through; the operator's uploads (PUT) went in before the plan went live, or the deploy
    tool would have failed."""
    plan = tmp_path / "plan.json"
    rule = {
        "id": "busy",
        "fault": "status",
        "params": {"status": 503, "retry_after_s": 2},
        "requests": [1, 8],
        "methods": ["*"],
    }
    plan.write_text(json.dumps({"rules": [rule]}))
    report = tmp_path / "r"
    argv = [
        "--devices",
        "8",
        "--image-size",
        "16K",
        "--outage",
        "none",
        "--cut-rate",
        "0",
        "--faults",
        str(plan),
        "--report",
        str(report),
        "--quiet",
    ]
    assert main(argv) == 0
    requests = [json.loads(line) for line in (report / "requests.jsonl").read_text().splitlines()]
    assert sum(r["status"] == 503 for r in requests) >= 4
    assert _summary(report)["outcomes"] == {"applied": 6}
