"""The agent seam: what the harness gives an OTA agent, and what it expects of one.

Any agent, this project's :class:`agent.engine.Agent` or another team's, is built once per
boot by an :data:`AgentFactory` from a :class:`Board` and then run as one task:

* **given** (:class:`Board`): the flash's SPI port (pyftdi's ``SpiPort`` subset,
  :mod:`agent.spi`, W25Q128JV behind it: ``docs/w25q128jv.md``), the clock it must use for
  every wait (:mod:`agent.clock`), the device twin (:mod:`agent.twin`), the MCU's
  programmer (:mod:`agent.target`) and the configuration the scenario expects
  (:class:`agent.config.AgentConfig`: where its littlefs region lies, how often it commits
  downloaded data, whether a loopback ``http://`` blob URL is acceptable), plus a seeded
  random source and the HTTP session factory the harness counts bytes on;
* **must do** (:class:`OtaAgent`): construction is the power-on and does no I/O;
  :meth:`OtaAgent.run` boots (mounts its storage, works out from flash alone where the
  last boot stopped), connects the twin and serves instructions until it is told to stop;
* **stop**: the task running :meth:`~OtaAgent.run` is cancelled (``CancelledError`` at any
  ``await``);
* **lose power at any instant**: every SPI exchange and MCU install may raise
  :class:`agent.errors.PowerLoss` from then on; the agent lets it escape :meth:`run` and
  keeps nothing volatile. The next boot is a new object from the factory, on the same flash,
  twin and MCU.

The harness judges an agent only by what it leaves behind: the flash, the MCU's installs
and the twin's reported properties (``docs/reference-design.md``, "Cloud contract").
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from agent.clock import Clock
from agent.spi import SpiPort
from agent.target import McuTarget
from agent.twin import Twin

if TYPE_CHECKING:
    from agent.config import AgentConfig
    from agent.storage import Flash


def _default_session() -> Any:
    import aiohttp  # only an agent that downloads needs it

    return aiohttp.ClientSession()


@dataclass(frozen=True, kw_only=True)
class Board:
    """Everything one boot of an agent is given.

    ``flash`` is an optional shortcut for agents built on this project's storage seam
    (:class:`agent.storage.Flash`): the harness sets it when it already has a driver over
    the very bytes ``spi`` reaches (the explorer's fast continuation, a memory flash with
    NOR rules), and such an agent should take it instead of driving ``spi``. An agent that
    speaks SPI itself ignores it: ``spi`` always reaches the same bytes.
    """

    spi: SpiPort
    clock: Clock
    twin: Twin
    target: McuTarget
    config: AgentConfig
    rng: random.Random = field(default_factory=random.Random)
    session_factory: Callable[[], Any] = _default_session
    flash: Flash | None = None

    def __post_init__(self) -> None:
        for name, kind in (("spi", SpiPort), ("clock", Clock), ("target", McuTarget)):
            if not isinstance(getattr(self, name), kind):
                raise TypeError(f"Board.{name} must implement {kind.__name__}")
        if not isinstance(self.rng, random.Random):
            raise TypeError("Board.rng must be a random.Random")


@runtime_checkable
class OtaAgent(Protocol):
    """One boot of an OTA agent (see the module doc for the whole contract)."""

    async def run(self) -> None:
        """Boot from flash, connect the twin and serve instructions until cancelled.

        Never returns normally; :class:`agent.errors.PowerLoss` from the port or the
        target escapes it, and so does cancellation.
        """
        ...


AgentFactory = Callable[[Board], OtaAgent]
"""Builds one boot's agent from its :class:`Board`; called again after every power cut."""
