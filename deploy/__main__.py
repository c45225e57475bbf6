"""``python -m deploy COMMAND ...``: the operator's tools."""

import sys

from sim.tools.commands import Command, dispatch

SYNOPSIS = "usage: python -m deploy COMMAND [ARGS...]"
COMMANDS: dict[str, Command] = {
    "ota": Command(
        "deploy.ota", "upload an image, sign a read-only SAS, create the IoT Hub configuration"
    ),
}


def main(argv: list[str] | None = None) -> int:
    return dispatch(SYNOPSIS, COMMANDS, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
