"""The command line the bench tools share: ``python -m hil TOOL --rig FILE [--report DIR]``.

A tool is a function from a loaded :class:`hil.rig.Rig` to a JSON-able result and a
function rendering that result as text; this module loads the rig (a bad rig file
is a usage error naming what is wrong), prints the text and writes both reports.
"""

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from . import report
from .rig import Rig, RigError

Result = dict[str, Any]


def run_tool(
    argv: Sequence[str],
    *,
    name: str,
    description: str,
    run: Callable[[Rig], Result],
    render: Callable[[Result], str],
) -> Result:
    """Parse ``argv``, run the tool on the rig, print its text, write ``name.json/.txt``."""
    parser = argparse.ArgumentParser(prog=f"python -m hil {name}", description=description)
    parser.add_argument("--rig", required=True, metavar="FILE", help="rig file (TOML)")
    parser.add_argument(
        "--report", metavar="DIR", help=f"also write {name}.json and {name}.txt here"
    )
    args = parser.parse_args(argv)
    try:
        rig = Rig.load(args.rig)
    except RigError as exc:
        parser.error(str(exc))
    result = run(rig)
    text = render(result)
    print(text)
    for path in report.write(args.report, name, result, text):
        print(f"wrote {path}")
    return result
