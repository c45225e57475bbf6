"""A command table for ``python -m PACKAGE COMMAND ...`` (used by ``sim`` and ``hil``).

Each command lives in its own module with an entry function ``(argv) -> int``; the
table names the module, so ``--help`` lists every command without importing any.
"""

import importlib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sim.tools.cli import run_cli  # a person's mistakes as one line, status 2


@dataclass(frozen=True)
class Command:
    """One command: the module that implements it, one line of help, its entry function."""

    module: str
    help: str
    entry: str = "main"

    def __post_init__(self) -> None:
        for name in ("module", "help", "entry"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"Command.{name} must be a non-empty string, got {value!r}")


def usage(synopsis: str, commands: Mapping[str, Command]) -> str:
    """``synopsis``, then one line per command: its name and its help."""
    width = max(map(len, commands))
    lines = [synopsis, "", "commands:"]
    lines += [f"  {name:<{width}}  {command.help}" for name, command in commands.items()]
    return "\n".join(lines)


def dispatch(synopsis: str, commands: Mapping[str, Command], argv: Sequence[str]) -> int:
    """Run the command ``argv[0]`` names with the rest of ``argv``; return its exit status.

    No command or ``-h``/``--help`` prints the usage (status 2 and 0); an unknown
    command prints it to stderr after naming the command (status 2). A missing file or
    folder, a bad rig file or an absent FTDI adapter is one line (:mod:`sim.tools.cli`).
    """
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(synopsis, commands))
        return 0 if argv else 2
    name, rest = argv[0], list(argv[1:])
    if name not in commands:
        print(f"unknown command {name!r}\n\n{usage(synopsis, commands)}", file=sys.stderr)
        return 2
    command = commands[name]
    module = importlib.import_module(command.module)

    program = synopsis.removeprefix("usage: ").split(" COMMAND", 1)[0]
    return int(run_cli(getattr(module, command.entry), rest, prog=f"{program} {name}"))
