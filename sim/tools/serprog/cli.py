"""``python -m sim serprog``: serve a simulated W25Q128JV to flashrom until interrupted.

``--image FILE`` backs the chip's array with the file and keeps its registers and
wear in the sidecar ``FILE.nv.json``, written (atomically) after every command that
changed them, so even ``kill -9`` loses nothing. Bad arguments exit 2 with one line
naming what was wrong.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence

from sim.tools.serprog.server import DEFAULT_IDLE_TIMEOUT_S, SerprogServer
from sim.tools.serprog.session import DEFAULT_TURNAROUND_S


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port), with an error that names what was wrong."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"--listen must be HOST:PORT, got {text!r}")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"--listen port must be a number, got {port_text!r}") from None
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"--listen port must be 0..65535, got {port}")
    return host, port


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sim serprog",
        description="Serve a simulated W25Q128JV to flashrom "
        "(flashrom -p serprog:ip=HOST:PORT). Ctrl-C stops.",
    )
    parser.add_argument(
        "--listen",
        default="127.0.0.1:0",
        metavar="HOST:PORT",
        help="address to listen on (default 127.0.0.1:0, a free port; the address is printed)",
    )
    parser.add_argument(
        "--image", metavar="FILE", help="back the chip's array with FILE (kept on exit)"
    )
    parser.add_argument("--seed", type=int, default=0, help="the chip's seed (default 0)")
    parser.add_argument(
        "--timing",
        choices=("typical", "max", "random"),
        default="typical",
        help="program/erase durations from the datasheet (default typical)",
    )
    parser.add_argument(
        "--turnaround-us",
        type=float,
        default=DEFAULT_TURNAROUND_S * 1e6,
        help="simulated time each SPI operation's round trip costs (default 1000 us)",
    )
    parser.add_argument(
        "--once", action="store_true", help="exit after the first client disconnects"
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=DEFAULT_IDLE_TIMEOUT_S,
        metavar="S",
        help="drop a client that sends nothing, or reads nothing, for S seconds "
        f"(default {DEFAULT_IDLE_TIMEOUT_S:g}); the next one waiting is then served",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every command")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sim serprog``: serve a simulated chip until interrupted."""
    args = _parser().parse_args(argv)
    try:
        host, port_number = parse_listen(args.listen)
    except ValueError as exc:
        print(f"serprog: {exc}", file=sys.stderr)
        return 2
    if args.turnaround_us < 0:
        print(f"serprog: --turnaround-us must be >= 0, got {args.turnaround_us}", file=sys.stderr)
        return 2
    if not args.idle_timeout > 0:
        print(f"serprog: --idle-timeout must be > 0, got {args.idle_timeout}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )

    from sim.chip.w25q128 import W25Q128
    from sim.clock import VirtualClock
    from sim.ports.model import SimSpiPort

    clock = VirtualClock()
    try:
        chip = W25Q128(clock=clock, seed=args.seed, timing=args.timing, image=args.image)
    except (ValueError, OSError) as exc:
        print(f"serprog: --image: {exc}", file=sys.stderr)
        return 2
    port = SimSpiPort(chip)
    try:
        server = SerprogServer(
            port,
            host,
            port_number,
            clock=clock,
            turnaround_s=args.turnaround_us / 1e6,
            idle_timeout_s=args.idle_timeout,
            after_command=chip.save_nv,
        )
    except OSError as exc:
        chip.close()
        print(f"serprog: cannot listen on {host}:{port_number}: {exc.strerror}", file=sys.stderr)
        return 1
    bound_host, bound_port = server.address
    print(f"serprog: listening on {bound_host}:{bound_port}", flush=True)
    print(f"serprog: flashrom -p serprog:ip={bound_host}:{bound_port}", flush=True)

    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever(max_connections=1 if args.once else None)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.close()
        chip.close()  # flushes a file-backed array (--image) and its non-volatile registers
    return 0
