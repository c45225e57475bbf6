"""The ``ota_hil`` pytest plugin: installing the package is enough (entry point ``pytest11``).

Options: ``--rig FILE`` (or ``OTA_HIL_RIG``): the bench's rig file, loaded and validated
once when pytest configures; a missing or invalid file is one usage error naming the key.

Markers: ``sim`` (runs on the simulators), ``hil`` (runs on the rig; without one it skips
at collection with one reason saying how to configure one) and one capability marker per
rig capability, ``needs_power_cut`` and ``needs_write_protect``: a ``hil`` test carrying
one is skipped at collection, with the rig's reason, on a rig that does not declare it
(``[capabilities]`` in the rig file); the simulator has every capability.

Fixtures (see their docstrings): the simulator's ``w25q128``, ``w25q128_port``,
``blob_server``, ``hub``, ``iothub``, ``agent_factory``, ``sim_device``, ``explorer``
(:mod:`sim.harness.fixtures`); the port shared by simulation and bench ``flash_port``,
``flash_clock``, ``flash_scratch``, ``flash_supply``, ``ota_geometry``, ``flash_target``
and ``rig`` (:mod:`hil.flash_fixtures`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from hil.flash_fixtures import (
    flash_clock,
    flash_port,
    flash_scratch,
    flash_supply,
    flash_target,
    ota_geometry,
    requires_capability,
)
from hil.rig import CAPABILITIES, Rig, RigError
from sim.harness.fixtures import (
    agent_factory,
    blob_server,
    explorer,
    hub,
    iothub,
    sim_device,
    w25q128,
    w25q128_port,
)

NO_RIG = (
    "no bench rig configured: run with --rig fixtures/rigs/virtual.toml (the virtual "
    "FT232H, no hardware) or a real rig file such as fixtures/rigs/ft232h-example.toml, "
    "or set OTA_HIL_RIG"
)
RIG_KEY = pytest.StashKey["Rig | None"]()
MARKERS = {
    "sim": "runs against the simulator (CI runs these)",
    "hil": "runs on a bench rig (real flash through an FTDI adapter, or the virtual rig)",
    **{
        f"needs_{cap}": f"needs a rig declaring [capabilities] {cap}; skips at collection "
        "on rigs without it"
        for cap in sorted(CAPABILITIES)
    },
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ota_hil", "ota-hil bench rig")
    group.addoption(
        "--rig",
        action="store",
        default=os.environ.get("OTA_HIL_RIG"),
        metavar="FILE",
        help="rig file describing the bench (FTDI URL, SPI, GPIO roles, capabilities); "
        "also OTA_HIL_RIG. fixtures/rigs/virtual.toml (or the packaged 'virtual') runs the "
        "bench code path on a virtual FT232H; default: none, hil tests skip",
    )


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    config.stash[RIG_KEY] = load_rig(config.getoption("--rig"))


def load_rig(path: str | None) -> Rig | None:
    """The rig named by ``--rig``: a path, or the name of a packaged rig (``virtual``)."""
    if not path:
        return None
    from sim.harness.packaged import rig_path

    try:
        return Rig.load(rig_path(path))
    except RigError as exc:
        raise pytest.UsageError(f"--rig: {exc}") from None


def configured_rig(config: pytest.Config) -> Rig | None:
    """The rig loaded at configure time, or None."""
    return config.stash.get(RIG_KEY, None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip, at collection, the bench tests whose capability markers the rig lacks."""
    rig = configured_rig(config)
    if rig is None:
        return  # every bench test skips at setup, with one reason (below)
    for item in items:
        if item.get_closest_marker("hil") is None:
            continue
        for marker in item.iter_markers():
            if marker.name.startswith("needs_") and marker.name[6:] in CAPABILITIES:
                reason = rig.lacks(marker.name[6:])
                if reason:
                    item.add_marker(pytest.mark.skip(reason=reason))
                    break


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Without a rig, a bench test skips before any fixture opens anything."""
    if item.get_closest_marker("hil") is not None and configured_rig(item.config) is None:
        pytest.skip(NO_RIG)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    """Report every no-rig skip at one place, so ``-ra`` folds them into one line."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    longrepr = report.longrepr
    if report.skipped and isinstance(longrepr, tuple) and longrepr[2].endswith(NO_RIG):
        report.longrepr = (__file__, 1, longrepr[2])


@pytest.fixture(scope="session")
def rig(request: pytest.FixtureRequest) -> Rig:
    """The rig given by ``--rig`` (loaded once at configure time); skips without one."""
    loaded = configured_rig(request.config)
    if loaded is None:
        pytest.skip(NO_RIG)
    return loaded


__all__ = [
    "agent_factory",
    "blob_server",
    "explorer",
    "flash_clock",
    "flash_port",
    "flash_scratch",
    "flash_supply",
    "flash_target",
    "hub",
    "iothub",
    "ota_geometry",
    "requires_capability",
    "rig",
    "sim_device",
    "w25q128",
    "w25q128_port",
]
