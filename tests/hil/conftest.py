"""Bench-only tests share the rig fixture (and its single skip reason) with tests/shared."""

from tests.shared.conftest import pytest_runtest_makereport, rig

__all__ = ["pytest_runtest_makereport", "rig"]
