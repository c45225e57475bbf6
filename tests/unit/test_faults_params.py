"""Fault parameters are validated on construction, errors naming the fault and field."""

import random

import pytest

from sim.cloud.faults import FAULTS
from sim.cloud.faults.exchange import Exchange

pytestmark = pytest.mark.sim


@pytest.mark.parametrize(
    ("name", "params", "field"),
    [
        ("latency", {"latency_s": -1}, "latency_s"),
        ("latency", {"latency_s": 0.1, "jitter_s": "x"}, "jitter_s"),
        ("bandwidth", {"rate_bps": 0}, "rate_bps"),
        ("slicer", {"average_size": 10, "size_variation": 10}, "size_variation"),
        ("limit_data", {"bytes": -5}, "bytes"),
        ("reset_peer", {"after_bytes": 1.5}, "after_bytes"),
        ("timeout", {"timeout_s": -0.1}, "timeout_s"),
        ("slow_close", {"delay_s": -1}, "delay_s"),
        ("status", {"status": 200}, "status"),
        ("status", {"status": 503, "retry_after_s": -1}, "retry_after_s"),
        ("short_body", {"missing": 0}, "missing"),
        ("corrupt", {"offsets": []}, "offsets"),
        ("corrupt", {"offsets": [1], "mask": 256}, "mask"),
        ("etag_change", {"content_b64": "not base64!"}, "content_b64"),
    ],
)
def test_bad_parameters_are_refused_naming_the_field(name, params, field):
    """Bad input gets a clear error naming what was wrong (house rules)."""
    with pytest.raises(ValueError, match=f"{name}.{field}"):
        FAULTS[name](**params)


def test_bad_content_range_needs_a_lie():
    """A bad_content_range that changes nothing would be a silent no-op."""
    with pytest.raises(ValueError, match="bad_content_range"):
        FAULTS["bad_content_range"]()


def test_the_earliest_cut_wins_when_faults_combine():
    """limit_data and reset_peer on one request: the body ends at the smaller count."""
    exchange = Exchange()
    FAULTS["limit_data"](bytes=500).apply(exchange, random.Random(0))
    FAULTS["reset_peer"](after_bytes=100).apply(exchange, random.Random(0))
    FAULTS["limit_data"](bytes=300).apply(exchange, random.Random(0))
    assert (exchange.stop_after, exchange.ending) == (100, "reset")


def test_latency_jitter_stays_within_its_bounds_and_follows_the_seed():
    """latency ± jitter (toxiproxy latency toxic), drawn from the seeded source."""
    fault = FAULTS["latency"](latency_s=0.010, jitter_s=0.004)
    delays = []
    for seed in range(50):
        exchange = Exchange()
        fault.apply(exchange, random.Random(seed))
        delays.append(exchange.delay_s)
    assert all(0.006 <= d <= 0.014 for d in delays)
    assert len(set(delays)) > 1
    again = Exchange()
    fault.apply(again, random.Random(7))
    assert again.delay_s == delays[7]


def test_etag_change_default_keeps_the_length_and_changes_the_content():
    """A same-size replacement is the hard case: only the ETag or a hash reveals it."""
    exchange = Exchange()
    FAULTS["etag_change"]().apply(exchange, random.Random(0))
    assert exchange.rewrite is not None
    old = b"\x10firmware"
    new = exchange.rewrite(old)
    assert len(new) == len(old) and new != old


def test_the_lowest_bandwidth_cap_wins_when_faults_combine():
    """Two bandwidth rules on one request: the narrower link decides the rate."""
    exchange = Exchange()
    FAULTS["bandwidth"](rate_bps=1000).apply(exchange, random.Random(0))
    FAULTS["bandwidth"](rate_bps=5000).apply(exchange, random.Random(0))
    assert exchange.rate_bps == 1000


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [((0.0, 0), (0.0, 1), 0), ((0.0, 5), (0.0, 2), 2), ((0.0, 7), (0.0, None), None)],
)
def test_the_earliest_of_several_stalls_wins(first, second, expected):
    """Two timeout rules on one request: the body stops at the first stall point, as
    several cuts do (the stall before the status line is the earliest of all)."""
    exchange = Exchange()
    for timeout_s, after_bytes in (first, second):
        FAULTS["timeout"](timeout_s=timeout_s, after_bytes=after_bytes).apply(
            exchange, random.Random(0)
        )
    assert exchange.stall_after_bytes == expected
