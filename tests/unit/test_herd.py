"""The herd figures: which retry path brought each device back after an outage, and how
spread the comebacks were. Built on hand-made device records and arrivals."""

import pytest

from sim.campaign.herd import Spread, herd
from sim.campaign.plan import Outage
from sim.campaign.probe import Arrival, Report
from sim.campaign.shard import DeviceRecord

pytestmark = pytest.mark.sim

OUTAGE = Outage(10.0, 20.0)


def device(name, reports=(), boots=((1, 0.0),)):
    return DeviceRecord(
        device_id=name,
        tags={},
        wave=0,
        desired_version=1,
        status="applied",
        installed_version=1,
        image_ok=True,
        boots=len(boots),
        cuts=len(boots) - 1,
        wire_bytes=0,
        requests=0,
        broken_by_outage=0,
        device_time_s=0.0,
        settled_at_s=None,
        settled_wall_s=None,
        ended="settled",
        timeline=[Report(t, seq, {"Status": s}) for seq, t, s in reports],
        boot_marks=list(boots),
    )


def test_the_path_is_read_off_what_happened_between_the_last_request_and_the_comeback():
    devices = [
        device("backoff"),
        device("engine", reports=[(3, 12.0, "interrupted"), (4, 40.0, "downloading")]),
        device("boot", boots=[(1, 0.0), (3, 15.0)]),
    ]
    arrivals = [
        Arrival("backoff", 11.0, 2, "outage"),
        Arrival("backoff", 31.5, 3, "ok", 206),
        Arrival("engine", 11.0, 2, "outage"),
        Arrival("engine", 40.0, 5, "ok", 206),
        Arrival("boot", 11.0, 2, "outage"),
        Arrival("boot", 33.0, 4, "ok", 206),
    ]
    found = herd(OUTAGE, devices, arrivals)
    assert found.affected == 3
    assert found.comebacks == {"backoff": [31.5], "engine": [40.0], "boot": [33.0]}


def test_a_device_the_outage_never_touched_is_not_counted():
    found = herd(OUTAGE, [device("early")], [Arrival("early", 2.0, 2, "ok", 200)])
    assert found.affected == 0 and found.overall.devices == 0


def test_lock_step_comebacks_are_one_second_and_a_spike():
    devices = [device(f"d{i}") for i in range(10)]
    arrivals = [
        a
        for i in range(10)
        for a in (Arrival(f"d{i}", 12.0, 2, "outage"), Arrival(f"d{i}", 30.2, 3, "ok", 206))
    ]
    found = herd(OUTAGE, devices, arrivals, window_s=60)
    assert found.overall.same_second_share == 1.0 and found.overall.busiest_second == 30
    assert found.peak_rps == 10 and found.peak_over_mean == pytest.approx(60.0)


def test_spread_counts_the_busiest_second_share():
    spread = Spread.of([30.1, 30.9, 31.0, 45.0])
    assert (spread.devices, spread.same_second_share, spread.busiest_second) == (4, 0.5, 30)
    assert spread.busiest_count == 2
    assert spread.span_s == pytest.approx(14.9)
