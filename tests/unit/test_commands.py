"""The command table behind ``python -m sim`` and ``python -m hil`` (sim/tools/commands.py)."""

import sys
import types

import pytest

from sim.tools.commands import Command, dispatch, usage

pytestmark = pytest.mark.sim

SYNOPSIS = "usage: python -m tool COMMAND"


@pytest.fixture
def commands(monkeypatch):
    """Two commands in a throwaway module; each returns a status that shows its argv."""
    module = types.ModuleType("fake_tool_commands")
    module.main = lambda argv: len(argv)
    module.other = lambda argv: 10 + len(argv)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return {
        "run": Command(module.__name__, "run the thing"),
        "again": Command(module.__name__, "the other entry", entry="other"),
    }


def test_help_lists_every_command_and_exits_zero(commands, capsys):
    """``--help`` prints the synopsis and one line per command on stdout (status 0)."""
    assert dispatch(SYNOPSIS, commands, ["--help"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == SYNOPSIS
    assert "  run    run the thing" in out and "  again  the other entry" in out


def test_no_command_prints_usage_and_exits_two(commands, capsys):
    """A missing command is a usage error (status 2, as argparse uses)."""
    assert dispatch(SYNOPSIS, commands, []) == 2
    assert capsys.readouterr().out == usage(SYNOPSIS, commands) + "\n"


def test_unknown_command_is_named_on_stderr(commands, capsys):
    """An unknown command is named before the usage, on stderr (status 2)."""
    assert dispatch(SYNOPSIS, commands, ["nope", "x"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("unknown command 'nope'\n\n" + SYNOPSIS)
    assert captured.out == ""


def test_command_runs_its_entry_with_the_remaining_arguments(commands):
    """The named entry function gets argv after the command name; its status is returned."""
    assert dispatch(SYNOPSIS, commands, ["run", "a", "b"]) == 2
    assert dispatch(SYNOPSIS, commands, ["again", "a"]) == 11


@pytest.mark.parametrize("field", ["module", "help", "entry"])
def test_command_with_an_empty_field_names_it(field):
    """Bad table entries fail at import, naming the field."""
    values = {"module": "m", "help": "h", "entry": "main", field: ""}
    with pytest.raises(ValueError, match=f"Command.{field} "):
        Command(**values)


@pytest.mark.parametrize("table", ["sim.__main__", "hil.__main__"])
def test_every_registered_command_names_an_entry_that_exists(table):
    """The registry is checked, not hand-kept: each command's module imports and its
    entry function is callable (style.md, "a registry that a test checks")."""
    import importlib

    commands = importlib.import_module(table).COMMANDS
    for name, command in commands.items():
        module = importlib.import_module(command.module)
        assert callable(getattr(module, command.entry, None)), f"{table}: {name}"
