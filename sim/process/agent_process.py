"""An agent run as a separate process, behind the :mod:`agent.protocol` seam.

:func:`process_agent` is an :data:`~agent.protocol.AgentFactory`: each boot it starts the
agent program (``python -m agent run`` by default; any program speaking the same two
protocols, e.g. a native agent compiled for the host) with

* its flash through the serprog bridge (:class:`sim.tools.serprog.SerprogServer`) onto
  the board's SPI port: ``--spi serprog://127.0.0.1:PORT --clock bus`` (every wait is an
  ``O_DELAY`` the bridge spends on the board's virtual clock);
* its twin and MCU through the gateway link (:mod:`agent.link`): ``--link 127.0.0.1:PORT``;
* the board's configuration as ``--config-json`` and a seed as ``--seed``.

A power cut (the chip refuses an exchange, or the simulated MCU is cut mid-install) marks
the board dead at once, so nothing the process sends afterwards reaches the twin, then kills
the process (SIGKILL) and raises :class:`agent.errors.PowerLoss`, as the in-process agent
does; cancelling :meth:`ProcessAgent.run` kills it too. The next boot starts a new process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from agent.errors import PowerLoss
from agent.protocol import AgentFactory, Board
from agent.run import config_to_dict
from sim.ports.wrapper import PortWrapper
from sim.process.link_server import HOST, LinkServer
from sim.tools.serprog import SerprogServer

AGENT_PROGRAM = (sys.executable, "-m", "agent", "run")
STDERR_LINES = 20  # kept for the error when a process dies on its own


class AgentProcessError(RuntimeError):
    """The agent process ended by itself (not by a power cut): a crash, or bad arguments."""


class _LossWatch(PortWrapper):
    """The board's port, noting the first exchange the unpowered flash refuses."""

    def __init__(self, port: Any, on_loss: Callable[[], None]) -> None:
        super().__init__(port)
        self._on_loss = on_loss

    def exchange(
        self,
        out: bytes | bytearray = b"",
        readlen: int = 0,
        start: bool = True,
        stop: bool = True,
        duplex: bool = False,
        droptail: int = 0,
    ) -> bytes:
        try:
            return super().exchange(out, readlen, start, stop, duplex, droptail)
        except PowerLoss:
            self._on_loss()
            raise


class ProcessAgent:
    """One boot of an agent program (see the module doc)."""

    def __init__(self, board: Board, program: Sequence[str] = AGENT_PROGRAM) -> None:
        self.board = board
        self.program = tuple(program)
        self.returncode: int | None = None
        self.stderr: deque[str] = deque(maxlen=STDERR_LINES)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        lost, dead = asyncio.Event(), threading.Event()

        def on_loss() -> None:  # from the bridge's thread or the loop's
            dead.set()
            loop.call_soon_threadsafe(lost.set)

        board = self.board
        bridge = SerprogServer(_LossWatch(board.spi, on_loss), clock=board.clock, turnaround_s=0)
        bridge.start()
        link = LinkServer(board.twin, board.target, dead=dead, on_loss=on_loss)
        await link.start()
        proc = None
        try:
            proc = await asyncio.create_subprocess_exec(
                *self._argv(bridge, link),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            await self._until_exit_or_cut(proc, lost)
        finally:
            if proc is not None and proc.returncode is None:
                proc.kill()  # the supply is gone: no clean shutdown
                await proc.wait()
            self.returncode = None if proc is None else proc.returncode
            bridge.close()
            await link.close()

    def _argv(self, bridge: SerprogServer, link: LinkServer) -> list[str]:
        host, port = bridge.address
        board = self.board
        return [
            *self.program,
            "--spi",
            f"serprog://{host}:{port}",
            "--clock",
            "bus",
            "--frequency",
            str(board.spi.frequency),
            "--link",
            link.address,
            "--config-json",
            json.dumps(config_to_dict(board.config)),
            "--seed",
            str(board.rng.getrandbits(32)),
        ]

    async def _until_exit_or_cut(
        self, proc: asyncio.subprocess.Process, lost: asyncio.Event
    ) -> None:
        assert proc.stderr is not None
        drain = asyncio.ensure_future(self._drain(proc.stderr))
        exited = asyncio.ensure_future(proc.wait())
        cut = asyncio.ensure_future(lost.wait())
        try:
            await asyncio.wait({exited, cut}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            cut.cancel()
            if not exited.done():
                exited.cancel()
        if lost.is_set():
            drain.cancel()
            raise PowerLoss("power cut: the agent process was killed")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(drain, 5.0)
        tail = " | ".join(self.stderr) or "no message"
        raise AgentProcessError(f"agent process exited with status {proc.returncode}: {tail}")

    async def _drain(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.stderr.append(line.decode(errors="replace").rstrip())


class ProcessAgentFactory:
    """An :data:`agent.protocol.AgentFactory` that runs ``program`` (plus the board's
    options) once per boot.

    Its agents run outside the harness's event loop, so loopback time cannot be virtual
    for them (:mod:`sim.loopback` judges quiet by that loop alone): ``shares_loop`` tells
    the runner to keep real waits, with stall windows compressed as on a bench.
    """

    shares_loop = False

    def __init__(self, program: Sequence[str] = AGENT_PROGRAM) -> None:
        self.program = tuple(program)

    def __call__(self, board: Board) -> ProcessAgent:
        return ProcessAgent(board, self.program)


def process_agent(program: Sequence[str] = AGENT_PROGRAM) -> AgentFactory:
    """An agent factory that runs ``program`` (plus the board's options) once per boot."""
    return ProcessAgentFactory(program)


__all__ = [
    "AGENT_PROGRAM",
    "HOST",
    "AgentProcessError",
    "ProcessAgent",
    "ProcessAgentFactory",
    "process_agent",
]
