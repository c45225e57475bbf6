"""``python -m agent COMMAND``: the gateway's commands (``run``: the agent as a program)."""

import sys

USAGE = """usage: python -m agent COMMAND [ARGS...]

commands:
  run  run the OTA agent: flash over SPI (a rig's FT232H or serprog), the twin, the MCU"""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    if args[0] != "run":
        print(f"unknown command {args[0]!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    from agent.run import main as run

    return run(args[1:])


def console() -> None:
    """The ``ota-agent`` console script: ``ota-agent ARGS`` is ``python -m agent run ARGS``."""
    from agent.run import main as run

    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
