"""Project-wide pytest wiring: hypothesis profiles and the bench-rig option.

Profiles (``--hypothesis-profile`` or ``HYPOTHESIS_PROFILE``):
``ci`` (the default under ``CI``): deterministic, derandomized, few examples;
``dev`` (the default elsewhere): random, a moderate number of examples;
``fuzz``: long runs for power-loss and network-fault exploration.
Failing examples of ``dev`` and ``fuzz`` go to the database ``HYPOTHESIS_DATABASE``
names (a directory by default, Redis for a team: ``tests/common/examples.py``); ``ci``
is derandomized, which hypothesis runs without one.
"""

import os

from hypothesis import HealthCheck, Phase, settings

from tests.common.examples import example_database

_EXAMPLES = example_database()

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=30,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev", max_examples=60, deadline=None, print_blob=True, database=_EXAMPLES
)
settings.register_profile(
    "fuzz",
    max_examples=5000,
    deadline=None,
    print_blob=True,
    phases=list(Phase),
    suppress_health_check=[HealthCheck.too_slow],
    database=_EXAMPLES,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


def pytest_addoption(parser):
    group = parser.getgroup("hil", "bench rig")
    group.addoption(
        "--rig",
        action="store",
        default=os.environ.get("OTA_HIL_RIG"),
        metavar="FILE",
        help="rig file describing the bench (FTDI URL, SPI, GPIO roles); "
        "also OTA_HIL_RIG. Example: fixtures/rigs/ft232h-example.toml; "
        "fixtures/rigs/virtual.toml runs the bench code path on a virtual FT232H",
    )
