"""The report a campaign leaves in ``--report DIR``.

- ``summary.json``: the plan, the totals, the herd figures, one entry per device
  (outcome, boots, cuts survived, bytes over the wire, twin-channel faults that fired on
  it, device time, wall time);
- ``timeline.jsonl``: every reported ``extFwInfo``, with the device and its device time;
- ``hub_metrics.jsonl``: each configuration's metrics over device time
  (:func:`sim.campaign.metrics.hub_metrics_over_time`);
- ``requests.jsonl`` and ``request_rate.json``: every device request the storage account
  saw, and the count per second of device time (answered / refused by the outage);
- ``campaign.png`` and ``campaign.html``: the picture (:mod:`sim.campaign.picture`).

Every string passes :func:`agent.redact.redact` on its way out: no SAS signature can
reach a file.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from agent.redact import redact
from sim.campaign.campaign import CampaignResult
from sim.campaign.herd import Herd
from sim.campaign.metrics import hub_metrics_over_time, request_rate, statuses_over_time
from sim.campaign.picture import figure, html_page, save_png, svg

MiB = 1024 * 1024


def summary(result: CampaignResult, herd: Herd | None) -> dict[str, Any]:
    plan = result.plan
    devices = result.devices
    return {
        "campaign": {
            "devices": plan.devices,
            "image_size": plan.image_size,
            "groups": [{"name": g.name, "share": g.share} for g in plan.groups],
            "control": plan.control,
            "wave_interval_s": plan.wave_interval_s,
            "cut_rate_per_device_hour": plan.cut_rate,
            "outage": None
            if plan.outage is None
            else {"start": plan.outage.start, "length": plan.outage.length},
            "fault_rules": [r.id for r in plan.faults.rules],
            "twin_fault_rules": [r.to_json() for r in plan.twin_faults],
            "seed": plan.seed,
            "executor": result.executor,
        },
        "ok": result.ok,
        "wall_s": round(result.wall_s, 3),
        "device_time_s": round(max((d.device_time_s for d in devices), default=0.0), 3),
        "outcomes": dict(Counter(d.status or "none" for d in result.targeted)),
        "totals": {
            "boots": sum(d.boots for d in devices),
            "cuts_survived": sum(d.cuts for d in devices),
            "wire_bytes": sum(d.wire_bytes for d in devices),
            "wire_bytes_per_image_byte": round(
                sum(d.wire_bytes for d in devices) / max(1, plan.image_size * len(result.targeted)),
                4,
            ),
            "requests": len(result.arrivals),
            "refused_by_outage": sum(a.outcome == "outage" for a in result.arrivals),
            "twin_faults_fired": result.twin_faults_fired(),
        },
        "memory": {
            "rss_per_device_idle_mib": round(result.rss_per_device(phase="idle") / MiB, 3),
            "rss_per_device_peak_mib": round(result.rss_per_device(phase="peak") / MiB, 3),
            "flash_per_device_mib": round(result.flash_per_device() / MiB, 3),
        },
        "waves": [
            {
                "wave": w.index,
                "version": w.version,
                "hub_time_s": w.hub_time_s,
                "configuration": w.configuration["id"],
            }
            for w in result.waves
        ],
        "hub_metrics": result.metrics,
        "herd": None if herd is None else herd.to_json(),
        "devices": [
            {
                "device": d.device_id,
                "tags": d.tags,
                "wave": d.wave,
                "outcome": d.status,
                "ended": d.ended,
                "desired_version": d.desired_version,
                "installed_version": d.installed_version,
                "image_ok": d.image_ok,
                "boots": d.boots,
                "cuts_survived": d.cuts,
                "wire_bytes": d.wire_bytes,
                "requests": d.requests,
                "twin_faults_fired": d.twin_faults,
                "device_time_s": round(d.device_time_s, 3),
                "settled_at_device_s": None if d.settled_at_s is None else round(d.settled_at_s, 3),
                "settled_at_wall_s": None
                if d.settled_wall_s is None
                else round(d.settled_wall_s, 3),
            }
            for d in devices
        ],
    }


def write_report(result: CampaignResult, directory: Path, herd: Herd | None) -> list[Path]:
    """Write every file above into ``directory`` (created); returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    info = summary(result, herd)
    written = [
        _json(directory / "summary.json", info),
        _lines(directory / "timeline.jsonl", _timeline(result)),
        _lines(
            directory / "hub_metrics.jsonl", hub_metrics_over_time(result.devices, result.waves)
        ),
        _lines(directory / "requests.jsonl", (a.to_json() for a in result.arrivals)),
        _json(directory / "request_rate.json", request_rate(result.arrivals)),
    ]
    written += _pictures(result, directory, info, herd)
    return written


def _timeline(result: CampaignResult) -> list[dict[str, Any]]:
    rows = [
        {"device": d.device_id, "t": round(r.t, 6), "seq": r.seq, **r.extfw}
        for d in result.devices
        for r in d.timeline
    ]
    return sorted(rows, key=lambda row: (row["t"], row["device"], row["seq"]))


def _pictures(
    result: CampaignResult, directory: Path, info: dict[str, Any], herd: Herd | None
) -> list[Path]:
    plan = result.plan
    times, counts = statuses_over_time(result.devices)
    title = (
        f"{plan.devices} devices, {plan.image_size // 1024} KiB image, "
        f"{len(plan.groups)} waves, {plan.cut_rate:g} cuts/device-hour"
        + (
            ""
            if plan.outage is None
            else f", outage {plan.outage.start:g}+{plan.outage.length:g} s"
        )
    )
    fig = figure(
        title=title,
        times=times,
        counts=counts,
        rate=request_rate(result.arrivals),
        outage=None if plan.outage is None else (plan.outage.start, plan.outage.end),
        waves=[
            (w.hub_time_s, f"v{w.version} -> {g.name}")
            for w, g in zip(result.waves, plan.groups, strict=True)
        ],
    )
    png = directory / "campaign.png"
    save_png(fig, str(png))
    page = html_page(
        title=f"OTA campaign: {title}",
        figure_svg=svg(fig),
        sections=[
            (
                "Outcome",
                {
                    "every targeted device applied its image": info["ok"],
                    **{f"status {k}": v for k, v in info["outcomes"].items()},
                    "wall time (s)": info["wall_s"],
                    "device time (s)": info["device_time_s"],
                },
            ),
            ("Totals", info["totals"]),
            ("Memory", info["memory"]),
            ("Herd", herd.lines() if herd is not None else ["no outage in this campaign"]),
            (
                "Hub configurations (end)",
                [
                    {
                        "configuration": k,
                        "targetedCount": v["targeted"],
                        "appliedCount": v["applied"],
                        **v["queries"],
                    }
                    for k, v in result.metrics.items()
                ],
            ),
            ("Campaign", {k: json.dumps(v) for k, v in info["campaign"].items()}),
        ],
    )
    import matplotlib.pyplot as plt

    plt.close(fig)
    page_path = directory / "campaign.html"
    page_path.write_text(redact(page), encoding="utf-8")
    return [png, page_path]


def _json(path: Path, data: Any) -> Path:
    path.write_text(redact(json.dumps(data, indent=2)) + "\n", encoding="utf-8")
    return path


def _lines(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(redact(json.dumps(row, separators=(",", ":"))) + "\n")
    return path
