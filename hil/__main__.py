"""``python -m hil COMMAND --rig FILE``: bench tools.

``probe``: identity, SFDP, status registers, unique ID and a short timing run.
``diff``: the differential check, the rig's chip against a fresh model.
"""

import sys

from sim.tools.commands import Command, dispatch

SYNOPSIS = "usage: python -m hil COMMAND --rig FILE [--report DIR]"
COMMANDS: dict[str, Command] = {
    "probe": Command("hil.probe", "identify the rig's flash and time one sector erase and program"),
    "diff": Command(
        "hil.diff", "run a fixed sequence on the rig and on the model; print differences"
    ),
}


def main(argv: list[str] | None = None) -> int:
    return dispatch(SYNOPSIS, COMMANDS, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
