"""The campaign plan: groups and waves, the outage window, the command-line forms."""

import pytest

from sim.campaign.plan import CampaignPlan, Group, Outage, parse_groups, parse_outage
from sim.campaign.twin_channel import FleetTwinFault
from sim.cloud.twin_faults import TwinFault
from sim.tools.campaign import parse_size

pytestmark = pytest.mark.sim


def test_groups_split_the_targeted_fleet_by_share_in_wave_order():
    plan = CampaignPlan(
        devices=103, control=3, groups=parse_groups("canary=5%,pilot=15%,field=80%")
    )
    assert plan.group_sizes() == [5, 15, 80]
    layout = plan.layout()
    assert [d.wave for d in layout[:5]] == [0] * 5 and layout[5].wave == 1
    assert [d.tags["productType"] for d in layout[-3:]] == ["dryer"] * 3
    assert all(d.wave is None for d in layout[-3:])
    assert len({d.device_id for d in layout}) == 103


def test_every_group_gets_a_device_even_when_its_share_rounds_to_none():
    plan = CampaignPlan(devices=10, control=0, groups=parse_groups("a=1%,b=99%"))
    assert plan.group_sizes() == [1, 9]


def test_bare_group_names_share_the_fleet_equally():
    assert parse_groups("a,b") == (Group("a", 0.5), Group("b", 0.5))


def test_wave_k_starts_at_k_wave_intervals():
    plan = CampaignPlan(wave_interval_s=45.0)
    assert [plan.wave_time(k) for k in range(3)] == [0.0, 45.0, 90.0]


def test_the_outage_covers_start_inclusive_to_end_exclusive():
    outage = parse_outage("30:60")
    assert outage == Outage(30.0, 60.0) and outage.end == 90.0
    assert outage.covers(30.0) and outage.covers(89.999) and not outage.covers(90.0)
    assert not outage.covers(29.999)


@pytest.mark.parametrize(
    ("text", "size"), [("262144", 262144), ("256K", 262144), ("1M", 1048576), ("1MiB", 1048576)]
)
def test_image_sizes_take_binary_units(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"devices": 0}, "devices must be"),
        ({"devices": 5, "control": 5}, "control"),
        ({"groups": (Group("a", 0.5),)}, "add up to 100%"),
        ({"groups": (Group("a", 0.5), Group("a", 0.5))}, "must differ"),
        ({"cut_rate": -1.0}, "cut_rate"),
        ({"io_time_scale": 2.0}, "io_time_scale"),
        ({"image_size": 0}, "image_size"),
    ],
)
def test_a_bad_field_is_refused_naming_it(kwargs, named):
    with pytest.raises(ValueError, match=named):
        CampaignPlan(**kwargs)


@pytest.mark.parametrize("text", ["", "x=10%,y", "x=ten"])
def test_bad_group_forms_are_refused(text):
    with pytest.raises(ValueError, match="--groups"):
        parse_groups(text)


def test_twin_faults_must_be_rules_and_a_share_hits_about_that_fraction_of_the_fleet():
    with pytest.raises(ValueError, match="FleetTwinFault"):
        CampaignPlan(twin_faults=({"fault": "duplicate_desired"},))
    rule = FleetTwinFault(TwinFault("duplicate_desired"), share=0.25)
    hits = [rule.hits(seed=1, rule=0, device_id=f"gw-{i}", device_index=i) for i in range(2000)]
    assert 0.22 < sum(hits) / len(hits) < 0.28
    assert hits == [
        rule.hits(seed=1, rule=0, device_id=f"gw-{i}", device_index=i) for i in range(2000)
    ]
    # another rule of the same share hits another set: draws are per rule
    other = [rule.hits(seed=1, rule=1, device_id=f"gw-{i}", device_index=i) for i in range(2000)]
    assert other != hits
    assert FleetTwinFault.from_json(rule.to_json()) == rule
