"""``python -m sim replay FINDING.json [--trace out.vcd]``: rerun one fuzz finding.

A finding is the scenario file ``python -m sim fuzz`` writes for a run that broke an
invariant: every field of :class:`sim.explore.scenario.Scenario` spelled out. Anything else
(a fault plan, a rig, a hand-written fragment) is refused with one line naming what is
missing, rather than replayed as a default scenario that "holds". The replay prints the
flash trace around each cut and the verdict; ``--trace`` also writes the SPI transactions
around the cuts (or all of them) as a VCD for sigrok or PulseView (:mod:`sim.ports.trace`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from sim.explore.invariants import check_all
from sim.explore.mutants import MUTANTS
from sim.explore.runner import run_scenario
from sim.explore.scenario import Scenario
from sim.ports.model import SpiTransaction
from sim.ports.trace import write_vcd
from sim.tools.cli import CliError, fail, run_cli

AROUND = 200  # transactions kept before each cut in a trace (and after it, into the reboot)


class NotAFinding(CliError):
    """The file is not a scenario the fuzzer wrote."""


def load_finding(path: Path) -> Scenario:
    """The scenario in ``path``; :class:`NotAFinding` names why it is not a finding."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotAFinding(f"{path}: no such file") from None
    except IsADirectoryError:
        raise NotAFinding(f"{path}: is a folder, not a finding file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise NotAFinding(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise NotAFinding(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise NotAFinding(f"{path}: not a finding (a JSON {type(data).__name__})")
    missing = sorted({f.name for f in fields(Scenario)} - set(data))
    if missing:
        raise NotAFinding(
            f"{path}: not a finding written by python -m sim fuzz (missing {', '.join(missing)})"
        )
    try:
        scenario = Scenario.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise NotAFinding(f"{path}: not a valid finding: {exc}") from None
    if scenario.mutant is not None and scenario.mutant not in MUTANTS:
        raise NotAFinding(f"{path}: unknown mutant {scenario.mutant!r}")
    return scenario


def window(log: list[SpiTransaction], marks: list[int], around: int) -> list[SpiTransaction]:
    """The transactions within ``around`` of each cut mark (all of them when 0 or no cut)."""
    if around <= 0 or not marks:
        return list(log)
    keep: set[int] = set()
    for mark in marks:
        keep.update(range(max(0, mark - around), min(len(log), mark + around)))
    return [log[i] for i in sorted(keep)]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sim replay",
        description="replay a fuzz finding: the trace around each cut and the invariants' verdict",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("finding", type=Path, help="a finding-*.json written by python -m sim fuzz")
    parser.add_argument(
        "--trace", type=Path, metavar="OUT.vcd", help="also write the SPI traffic as a VCD"
    )
    parser.add_argument(
        "--around",
        type=int,
        default=AROUND,
        metavar="N",
        help="transactions kept before and after each cut in the VCD (0: every transaction)",
    )
    return parser


def main(argv: list[str]) -> int:
    return run_cli(_main, argv, prog="python -m sim replay")


def _main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    scenario = load_finding(args.finding)
    if args.trace is not None and not args.trace.parent.is_dir():
        fail(f"--trace: folder {args.trace.parent} does not exist")
    factory = MUTANTS[scenario.mutant].factory() if scenario.mutant else None
    held: dict[str, Any] = {}

    def keep(run: Any, port: Any) -> Any:
        held["run"] = run
        return port

    result = asyncio.run(run_scenario(scenario, agent_factory=factory, trace=True, wrap_port=keep))
    for cut in scenario.cuts:
        print(f"cut: {cut.describe()}")
    print("\n".join(result.trace) or "(no power cut fired)")
    print("reports: " + " -> ".join(str(r.get("Status")) for r in result.reports))
    print(f"boots {result.boots}, cuts {result.cuts_fired}, MCU version {result.target_version}")
    if args.trace is not None:
        marks = held["run"].marks
        chosen = window(marks.log, [end for end, _ in marks.marks], args.around)
        write_vcd(chosen, args.trace, comment=f"ota-hil replay of {args.finding.name}")
        print(f"wrote {args.trace}: {len(chosen)} of {len(marks.log)} SPI transactions")
    violations = check_all(result)
    for v in violations:
        print(f"VIOLATION {v}")
    print("all invariants hold" if not violations else f"{len(violations)} violation(s)")
    return 1 if violations else 0
