"""The pytest plugin's simulator fixtures (registered by :mod:`hil.pytest_plugin`).

Every fixture here works from a plain test as well as from an ``async`` one: the blob
server serves on a thread of its own (:mod:`sim.harness.background`), so a test may drive a
device with ``asyncio.run`` or under pytest-asyncio alike. Heavy imports happen inside
the fixtures, so loading the plugin costs a project that never uses them nothing.

To put your own agent under :func:`sim_device` and :func:`explorer`, override
:func:`agent_factory` in your ``conftest.py`` (README, "Test your own agent").
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from agent.protocol import AgentFactory
    from sim.chip.w25q128 import W25Q128
    from sim.cloud.blobserver import BlobServer
    from sim.cloud.hub import Hub
    from sim.cloud.iothub import LocalIoTHub
    from sim.device import SimDevice
    from sim.explore.explorers import Explorer
    from sim.ports.model import SimSpiPort

W25Q128_PORT_HZ = 30e6  # the FT232H's fastest SCK (60 MHz / 2), as pyftdi's port runs it


@pytest.fixture
def w25q128() -> W25Q128:
    """A fresh (erased) W25Q128JV model on its own virtual clock (``w25q128.clock``):
    typical datasheet timing (section 9.6), seed 0; BUSY times never pass in real time."""
    from sim.chip.w25q128 import W25Q128
    from sim.clock import VirtualClock

    return W25Q128(clock=VirtualClock(), seed=0, timing="typical")


@pytest.fixture
def w25q128_port(w25q128: W25Q128) -> SimSpiPort:
    """``w25q128`` behind pyftdi's ``SpiPort`` interface at 30 MHz SCK."""
    from sim.ports.model import SimSpiPort

    return SimSpiPort(w25q128, frequency=W25Q128_PORT_HZ)


@pytest.fixture
def blob_server() -> Iterator[BlobServer]:
    """A running fault-injecting Azure Blob server on 127.0.0.1 (an ephemeral port), seed 0.

    The object is its own control handle: ``put_blob``, ``make_sas``, ``blob_url``, the
    live fault ``plan`` (assign a :class:`sim.cloud.faults.plan.FaultPlan`), ``add_rule``,
    ``events`` (one per request, SAS signatures redacted), and the HTTP control API at
    ``control_url``. It serves on a thread of its own, so plain and async tests share it.
    """
    from sim.cloud.blobserver import BlobServer
    from sim.harness.background import Background

    with Background(lambda: BlobServer(seed=0)) as server:
        yield server


@pytest.fixture
def hub() -> Hub:
    """The IoT Hub's service side in process: device registry, twins (each an
    :class:`sim.cloud.twin.InProcessTwin` a :class:`sim.device.SimDevice` can take),
    tags, configurations and their metrics. Over the network the very same registry
    answers the real SDKs: that is :func:`iothub`."""
    from sim.cloud.hub import Hub

    return Hub()


@pytest.fixture
def iothub(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalIoTHub]:
    """A local IoT Hub + DPS over MQTT/TLS and HTTPS for the real Azure SDKs, on a loopback
    address of its own (8883 is the device SDK's fixed port, so parallel runs each take
    another 127.x.y.z); configurations are evaluated only when a test says so. The service
    SDK trusts its CA through ``REQUESTS_CA_BUNDLE``; devices through ``hub.ca_cert``."""
    from sim.cloud.iothub import LocalIoTHub, free_loopback_address

    with LocalIoTHub(host=free_loopback_address(), evaluation_interval_s=3600.0) as hub:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(hub.ca_cert))
        yield hub


@pytest.fixture
def agent_factory() -> AgentFactory:
    """The agent under test (an :data:`agent.protocol.AgentFactory`): this project's
    :class:`agent.engine.Agent` unless a ``conftest.py`` overrides this fixture."""
    from agent.engine import Agent

    return Agent.from_board


@pytest.fixture
def sim_device(w25q128: W25Q128, agent_factory: AgentFactory) -> SimDevice:
    """A simulated gateway on ``w25q128``: the agent from ``agent_factory``, an in-process
    twin (``sim_device.twin``), a simulated MCU (``sim_device.target``), loopback ``http``
    blob URLs allowed. Publish with :func:`sim.cloud.twin.publish_ota`, then
    ``await sim_device.run_until(sim.device.applied(version))``."""
    from sim.device import SimDevice

    return SimDevice(chip=w25q128, agent_factory=agent_factory)  # loopback blob hosts allowed


@pytest.fixture
def explorer(agent_factory: AgentFactory) -> Callable[..., Explorer]:
    """``explorer(**scenario_fields)`` (or ``explorer(scenario)``): a power-loss explorer
    of one scenario for the agent from ``agent_factory``, with a blob server of its own
    on the loop it runs in. Then ``await ex.explore("log")`` (or ``linear``, ``torn``,
    ``exhaustive``) and read ``.findings``; every cut run is judged by
    :func:`sim.explore.invariants.check_all` (``invariants=NAMES``: by those only)."""
    from sim.explore.explorers import Explorer
    from sim.explore.scenario import Scenario

    def make(
        scenario: Scenario | None = None,
        *,
        invariants: Collection[str] | None = None,
        **fields: Any,
    ) -> Explorer:
        if scenario is not None and fields:
            raise TypeError("explorer(): give a Scenario or its fields, not both")
        return Explorer(
            scenario or Scenario(**fields), agent_factory=agent_factory, invariants=invariants
        )

    return make
