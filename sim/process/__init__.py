"""Agents in another process: the harness's side of ``python -m agent run --link``.

:mod:`.link_server` serves a board's twin and MCU over the gateway link
(:mod:`agent.link`); :mod:`.agent_process` runs an agent program against a board, its
flash through the serprog bridge, and kills it at a power cut.
"""

from sim.process.agent_process import AgentProcessError, ProcessAgent, process_agent

__all__ = ["AgentProcessError", "ProcessAgent", "process_agent"]
