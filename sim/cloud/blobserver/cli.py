"""``python -m sim blobserver``: run the fault-injecting blob server until interrupted.

    python -m sim blobserver --host 127.0.0.1 --port 10000 [--root DIR]
                             [--faults plan.json] [--seed N]
                             [--control-host 127.0.0.1] [--control-port N] [--expose-control]

Prints the connection string and where the fault control API listens (its own
port, loopback only unless ``--expose-control``); steer faults while it runs with
``curl -X POST http://127.0.0.1:CONTROL_PORT/_faults -d '{"fault": "latency", ...}'``.
Bad input (a plan that is not valid, a port out of range) exits with status 2 and one
line naming what is wrong.
"""

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from sim.cloud.blobserver.app import BODY_TIMEOUT_S, EVENT_LOG_SIZE
from sim.cloud.blobserver.server import HEADER_TIMEOUT_S, BlobServer
from sim.cloud.faults.plan import FaultPlan, load_plan


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sim blobserver", description="a fault-injecting Azure Blob server"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=10000, help="port (0 = ephemeral)")
    parser.add_argument("--root", help="store blobs as files under this directory")
    parser.add_argument("--faults", metavar="PLAN", help="fault plan file (JSON, or YAML)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    parser.add_argument(
        "--control-host",
        default="127.0.0.1",
        help="address of the fault control API (default 127.0.0.1; it has no credentials)",
    )
    parser.add_argument(
        "--control-port", type=int, default=0, help="port of the control API (0 = ephemeral)"
    )
    parser.add_argument(
        "--expose-control",
        action="store_true",
        help="allow a --control-host that is not loopback (anyone reaching it steers faults)",
    )
    parser.add_argument(
        "--event-log-size",
        type=int,
        default=EVENT_LOG_SIZE,
        metavar="N",
        help=f"events kept for /_faults/events, the last N (default {EVENT_LOG_SIZE})",
    )
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=HEADER_TIMEOUT_S,
        metavar="S",
        help=f"drop a request head not complete (or a connection idle) after S seconds "
        f"(default {HEADER_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        default=BODY_TIMEOUT_S,
        metavar="S",
        help=f"drop a request body that sends nothing for S seconds (default {BODY_TIMEOUT_S:g})",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    return parser


async def _serve(server: BlobServer, stop: asyncio.Event) -> None:
    async with server:
        print(f"blob endpoint  {server.url}", flush=True)
        print(f"connection     {server.connection_string}", flush=True)
        print(f"fault control  {server.control_url}  (own listener, no credentials)", flush=True)
        print(f"rules          {len(server.plan.rules)} (seed {server.service.seed})", flush=True)
        await stop.wait()


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        plan = load_plan(args.faults) if args.faults else FaultPlan()
        server = BlobServer(
            host=args.host,
            port=args.port,
            root=args.root,
            plan=plan,
            seed=args.seed,
            control_host=args.control_host,
            control_port=args.control_port,
            expose_control=args.expose_control,
            event_log_size=args.event_log_size,
            header_timeout_s=args.header_timeout,
            body_timeout_s=args.body_timeout,
        )
    except ValueError as exc:
        print(f"blobserver: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(message)s",
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await _serve(server, stop)

    try:
        asyncio.run(run())
    except OSError as exc:
        print(
            f"blobserver: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr
        )
        return 1
    return 0
