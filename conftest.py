"""Project-wide pytest wiring that is this repository's alone: hypothesis profiles.

Options, markers and fixtures come from the ``ota_hil`` plugin (``hil/pytest_plugin.py``),
which pytest loads from the installed package's ``pytest11`` entry point, as it does for
any project using the harness.

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

pytest_plugins = ["pytester"]  # the ota_hil plugin's own tests run pytest on small files

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
