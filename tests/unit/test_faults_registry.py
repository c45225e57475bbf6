"""The fault registry: every fault module is registered, under its own name (style.md:
"an explicit registry and a test that walks the package")."""

import dataclasses
import importlib
import pkgutil
import random

import pytest

import sim.cloud.faults
from sim.cloud.faults import FAULTS, SUPPORT_MODULES
from sim.cloud.faults.exchange import Exchange
from sim.cloud.faults.fault import Fault

pytestmark = pytest.mark.sim

FAULT_MODULES = sorted(
    m.name for m in pkgutil.iter_modules(sim.cloud.faults.__path__) if m.name not in SUPPORT_MODULES
)


@pytest.mark.parametrize("module_name", FAULT_MODULES)
def test_every_fault_module_is_in_the_registry(module_name):
    """A fault module not in FAULTS could never be named in a plan (labgrid's drifted list)."""
    module = importlib.import_module(f"sim.cloud.faults.{module_name}")
    registered = [cls for cls in FAULTS.values() if cls.__module__ == module.__name__]
    assert registered, f"sim/cloud/faults/{module_name}.py defines no fault registered in FAULTS"
    assert [cls.name for cls in registered] == [module_name]


def test_every_registered_fault_lives_in_its_own_module():
    """One fault per module, the module named for the fault (toxiproxy's toxics/*.go)."""
    modules = [cls.__module__ for cls in FAULTS.values()]
    assert len(set(modules)) == len(modules)
    assert sorted(m.rsplit(".", 1)[1] for m in modules) == FAULT_MODULES


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_every_fault_is_a_frozen_dataclass_implementing_the_interface(name):
    """Faults are data (frozen dataclasses) behind the one Fault protocol."""
    cls = FAULTS[name]
    assert dataclasses.is_dataclass(cls)
    assert cls.__dataclass_params__.frozen
    assert cls.name == name
    assert callable(cls.apply)
    assert {"name", "apply"} <= set(dir(cls)) and "apply" in Fault.__dict__


def test_the_noop_fault_changes_nothing():
    """The reference fault leaves every field of the exchange at its no-fault default."""
    exchange = Exchange()
    FAULTS["noop"]().apply(exchange, random.Random(0))
    assert exchange == Exchange()
