"""The simulated chip the functional tests drive with real third-party clients.

pyspiflash (test_pyspiflash.py) and flashrom over serprog (test_serprog_flashrom.py)
both talk to one fresh W25Q128JV model with typical datasheet timing (section 9.6)
on a virtual clock, through :class:`sim.ports.model.SimSpiPort` at 30 MHz. The fixtures
live here, not in a module the tests import, because pytest finds conftest
fixtures by name (an imported fixture reads to a linter as an unused import).
"""

from collections.abc import Iterator

import pytest

from sim.chip.w25q128 import W25Q128
from sim.clock import VirtualClock
from sim.cloud.iothub import LocalIoTHub, free_loopback_address
from sim.ports.model import SimSpiPort


@pytest.fixture
def clock() -> VirtualClock:
    """The chip's virtual clock: BUSY times pass on it, never in real time."""
    return VirtualClock()


@pytest.fixture
def chip(clock: VirtualClock) -> W25Q128:
    """A fresh (erased) chip, typical timing, seed 0."""
    return W25Q128(clock=clock, seed=0, timing="typical")


@pytest.fixture
def port(chip: W25Q128) -> SimSpiPort:
    """The chip behind pyftdi's ``SpiPort`` interface at 30 MHz SCK."""
    return SimSpiPort(chip, frequency=30e6)


@pytest.fixture
def iothub(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalIoTHub]:
    """A local IoT Hub + DPS on a loopback address of its own (port 8883 is the device
    SDK's fixed port, so parallel runs each take another 127.x.y.z), configurations
    evaluated only when a test says so (a long interval). The service SDK trusts its CA
    through ``REQUESTS_CA_BUNDLE``."""
    with LocalIoTHub(host=free_loopback_address(), evaluation_interval_s=3600.0) as hub:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(hub.ca_cert))
        yield hub
