"""Rig files and fault plans ship inside the package (sim/data/) and resolve by name."""

from pathlib import Path

import pytest

from hil.rig import Rig
from sim.cloud.faults.plan import FaultPlan
from sim.harness.packaged import fault_plan_path, names, rig_path

pytestmark = pytest.mark.sim


def test_packaged_rigs_and_plans_are_listed_by_name() -> None:
    assert names("rig") == ["ft232h-example", "virtual"]
    assert names("fault plan") == ["flaky-network", "http-lies", "stall"]


def test_a_packaged_name_resolves_to_a_file_that_loads() -> None:
    assert Rig.load(rig_path("virtual")).virtual
    FaultPlan.from_dict(__import__("json").loads(fault_plan_path("stall").read_text()))


def test_a_path_stays_a_path(tmp_path: Path) -> None:
    """An existing file, or anything with a folder or a suffix, is never a packaged name."""
    assert rig_path("fixtures/rigs/virtual.toml") == Path("fixtures/rigs/virtual.toml")
    assert rig_path(str(tmp_path / "virtual")) == tmp_path / "virtual"
    assert rig_path("nothing-by-that-name") == Path("nothing-by-that-name")


def test_the_checkout_links_fixtures_to_the_packaged_folders() -> None:
    """README's and CI's ``--rig fixtures/rigs/virtual.toml`` reads the packaged file."""
    root = Path(__file__).resolve().parents[2]
    assert (root / "fixtures/rigs/virtual.toml").resolve() == rig_path("virtual").resolve()
