"""What every command does with bad input: one line naming it, exit status 2, no traceback.

:func:`run_cli` runs a command's entry function and turns the errors a person causes (a
missing file or folder, a bad rig file, no FTDI adapter where the rig says, a file that is
not what the command reads) into ``PROG: error: WHAT`` on stderr. Anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from agent.rig import RigError  # a rig file's errors name its [section] key


class CliError(Exception):
    """Bad input, described in one line that names it."""


def fail(message: str) -> NoReturn:
    raise CliError(message)


def _adapter_error(exc: BaseException) -> str | None:
    """pyftdi's "no such device" family, as one line naming the URL it looked for."""
    name = type(exc).__name__
    if name in ("UsbToolsError", "FtdiError", "USBError") or (
        isinstance(exc, ValueError) and "No USB device" in str(exc)
    ):
        return f"FTDI adapter not available: {exc}"
    return None


def run_cli(entry: Callable[[list[str]], int], argv: Sequence[str], *, prog: str = "") -> int:
    """``entry(argv)``, with a person's mistakes as one line on stderr and status 2."""
    prog = prog or getattr(entry, "__module__", "command").rsplit(".", 1)[-1]
    try:
        return entry(list(argv))
    except CliError as exc:
        message = str(exc)
    except RigError as exc:
        message = str(exc)
    except SystemExit:
        raise  # argparse has already said what was wrong
    except FileNotFoundError as exc:
        message = f"{exc.filename}: no such file or folder"
    except NotADirectoryError as exc:
        message = f"{exc.filename}: not a folder"
    except IsADirectoryError as exc:
        message = f"{exc.filename}: is a folder, not a file"
    except PermissionError as exc:
        message = f"{exc.filename}: permission denied"
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        adapter = _adapter_error(exc)
        if adapter is None:
            raise
        message = adapter
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2
