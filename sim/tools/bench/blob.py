"""``python -m sim bench blob``: loopback throughput of one blob, our server against Azurite.

Each server runs in its own process (ours through :class:`sim.cloud.blobserver.BlobServer`,
Azurite through :class:`sim.cloud.azurite.Azurite`); both get the same seeded blob through
the real SDK, then an aiohttp client in this process fetches it (a) in sequential
ranges (``x-ms-range``, one keep-alive connection) and (b) in one GET, with no faults.
Runs alternate between the servers; the best and the median of ``--repeat`` runs are
printed in MiB/s with the ratio ours/Azurite (target: at least 1). Every fetch is
checked byte for byte outside the timed part. ``--profile`` also runs our server in
this process under cProfile and prints where its time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime as dt
import io
import os
import pstats
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from yarl import URL

from sim.cloud.dev_account import connection_string

CONTAINER = "bench"
BLOB = "fw.bin"
API_VERSION = "2021-08-06"
MIB = 1 << 20
_PROJECT_ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class BenchConfig:
    """What to measure: blob size, range size, repetitions, seed, Azurite's storage."""

    size_mib: int = 16
    chunk_kib: int = 64
    repeat: int = 3
    seed: int = 0
    azurite_disk: bool = False
    profile: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.size_mib <= 512:
            raise ValueError(f"size_mib must be 1..512, got {self.size_mib}")
        if not 1 <= self.chunk_kib <= 4096:
            raise ValueError(f"chunk_kib must be 1..4096, got {self.chunk_kib}")
        if not 1 <= self.repeat <= 100:
            raise ValueError(f"repeat must be 1..100, got {self.repeat}")

    @property
    def size(self) -> int:
        return self.size_mib * MIB

    @property
    def chunk(self) -> int:
        return self.chunk_kib * 1024


@dataclass(frozen=True)
class Endpoint:
    """A running server: its account URL and key."""

    name: str
    url: str
    key: str

    def blob_url(self) -> URL:
        from azure.storage.blob import generate_blob_sas

        sas = generate_blob_sas(
            "devstoreaccount1",
            CONTAINER,
            BLOB,
            account_key=self.key,
            permission="r",
            expiry=dt.datetime.now(dt.UTC) + dt.timedelta(hours=2),
        )
        return URL(f"{self.url}/{CONTAINER}/{BLOB}?{sas}", encoded=True)


# --- fetching -------------------------------------------------------------------------------


async def fetch_ranges(session: aiohttp.ClientSession, url: URL, size: int, chunk: int) -> bytes:
    """The blob in sequential ``x-ms-range`` requests of ``chunk`` bytes."""
    parts = []
    for start in range(0, size, chunk):
        end = min(start + chunk, size) - 1
        headers = {"x-ms-version": API_VERSION, "x-ms-range": f"bytes={start}-{end}"}
        async with session.get(url, headers=headers) as response:
            if response.status != 206:
                raise RuntimeError(f"range {start}-{end}: status {response.status}")
            parts.append(await response.read())
    return b"".join(parts)


async def fetch_whole(session: aiohttp.ClientSession, url: URL, size: int, chunk: int) -> bytes:
    """The blob in one GET."""
    async with session.get(url, headers={"x-ms-version": API_VERSION}) as response:
        if response.status != 200:
            raise RuntimeError(f"whole blob: status {response.status}")
        return await response.read()


MODES: dict[str, Callable[..., Awaitable[bytes]]] = {
    "ranges": fetch_ranges,
    "whole": fetch_whole,
}


async def _timed(endpoint: Endpoint, mode: str, config: BenchConfig, data: bytes) -> float:
    """One fetch in ``mode``; returns MiB/s; raises if the bytes differ."""
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        url = endpoint.blob_url()
        began = time.perf_counter()
        body = await MODES[mode](session, url, config.size, config.chunk)
        elapsed = time.perf_counter() - began
    if body != data:
        raise RuntimeError(f"{endpoint.name} {mode}: the fetched bytes differ from the blob")
    return config.size / MIB / elapsed


async def measure(
    endpoints: list[Endpoint], config: BenchConfig, data: bytes
) -> dict[tuple[str, str], list[float]]:
    """MiB/s of every run, per (server, mode); runs alternate between servers."""
    results: dict[tuple[str, str], list[float]] = {}
    for mode in MODES:
        for _ in range(config.repeat):
            for endpoint in endpoints:
                rate = await _timed(endpoint, mode, config, data)
                results.setdefault((endpoint.name, mode), []).append(rate)
    return results


# --- servers --------------------------------------------------------------------------------


def _upload(connection_string: str, data: bytes) -> None:
    from azure.storage.blob import BlobServiceClient

    with BlobServiceClient.from_connection_string(connection_string) as service:
        service.create_container(CONTAINER)
        service.get_blob_client(CONTAINER, BLOB).upload_blob(data)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _OursProcess:
    """Our server in a child process (``python -m sim.tools.bench.blob serve PORT``)."""

    def __init__(self) -> None:
        self.port = _free_port()
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Endpoint:
        from sim.cloud.blobserver import DEV_KEY

        env = {**os.environ, "PYTHONPATH": str(_PROJECT_ROOT)}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "sim.tools.bench.blob", "serve", str(self.port)],
            cwd=_PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()  # "ready URL" once it listens
        if not line.startswith("ready "):
            self.__exit__()
            raise RuntimeError(f"our blob server did not start (said {line!r})")
        return Endpoint("ours", line.split()[1], DEV_KEY)

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _serve(port: int) -> int:
    """Child side of :class:`_OursProcess`: serve until SIGTERM, no access log."""
    import signal

    from sim.cloud.blobserver import BlobServer

    async def run() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        async with BlobServer(host="127.0.0.1", port=port) as server:
            print(f"ready {server.url}", flush=True)
            await stop.wait()

    asyncio.run(run())
    return 0


# --- reporting ------------------------------------------------------------------------------


def _report(results: dict[tuple[str, str], list[float]], config: BenchConfig) -> list[str]:
    servers = sorted({name for name, _ in results}, key=lambda n: n != "ours")
    lines = [
        f"blob {config.size_mib} MiB, ranges of {config.chunk_kib} KiB, best and median of "
        f"{config.repeat} runs, MiB/s (loopback, no faults)",
        f"{'mode':<8}"
        + "".join(f"{s + ' best':>15}{s + ' median':>15}" for s in servers)
        + ("   ours/azurite best  median" if len(servers) == 2 else ""),
    ]
    for mode in MODES:
        row = f"{mode:<8}"
        for server in servers:
            runs = results[(server, mode)]
            row += f"{max(runs):>15.1f}{statistics.median(runs):>15.1f}"
        if len(servers) == 2:
            ours, theirs = results[("ours", mode)], results[("azurite", mode)]
            best = max(ours) / max(theirs)
            median = statistics.median(ours) / statistics.median(theirs)
            row += f"   {best:>17.2f} {median:>7.2f}"
        lines.append(row)
    return lines


async def _profile_in_process(config: BenchConfig, data: bytes) -> str:
    """Our server and the client in this process under cProfile; the top of the profile."""
    from sim.cloud.blobserver import DEV_KEY, BlobServer

    async with BlobServer(host="127.0.0.1", port=0) as server:
        server.put_blob(CONTAINER, BLOB, data)
        endpoint = Endpoint("ours", server.url, DEV_KEY)
        profiler = cProfile.Profile()
        profiler.enable()
        for mode in MODES:
            await _timed(endpoint, mode, config, data)
        profiler.disable()
    return _profile_summary(profiler)


_AREAS = (  # first match wins; paths as cProfile records them
    (
        "our server (sim/cloud/blobserver, sim/cloud/faults)",
        ("sim/cloud/blobserver", "sim/cloud/faults"),
    ),
    ("aiohttp server side", ("aiohttp/web", "aiohttp/http_writer", "aiohttp/base_protocol")),
    ("aiohttp client side", ("aiohttp/client", "aiohttp/connector", "aiohttp/streams")),
    ("SAS check: hmac, hashlib, strptime", ("hmac.py", "_hashlib", "_strptime")),
    ("asyncio and sockets", ("asyncio/", "selectors.py", "_socket", "socket.py")),
)


def _profile_summary(profiler: cProfile.Profile) -> str:
    """Own time grouped by area, then the 20 functions with the most own time."""
    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    by_area: dict[str, float] = {}
    for (filename, _line, function), row in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{filename}:{function}"
        area = next((name for name, keys in _AREAS if any(k in where for k in keys)), "other")
        by_area[area] = by_area.get(area, 0.0) + row[2]
    lines = [f"total {total:.3f} s of CPU in this process (server and client together)"]
    for area, seconds in sorted(by_area.items(), key=lambda item: -item[1]):
        lines.append(f"  {seconds:7.3f} s  {100 * seconds / total:5.1f} %  {area}")
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime").print_stats(20)
    return "\n".join(lines) + "\n" + out.getvalue()


# --- command line ---------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sim bench blob", description=__doc__)
    parser.add_argument("--size-mib", type=int, default=16, help="blob size (default 16)")
    parser.add_argument("--chunk-kib", type=int, default=64, help="range size (default 64)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per server and mode")
    parser.add_argument("--seed", type=int, default=0, help="seed of the blob's bytes")
    parser.add_argument(
        "--azurite-disk",
        action="store_true",
        help="Azurite keeps blobs on disk (its default) instead of --inMemoryPersistence",
    )
    parser.add_argument("--profile", action="store_true", help="profile our server (cProfile)")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        config = BenchConfig(
            size_mib=args.size_mib,
            chunk_kib=args.chunk_kib,
            repeat=args.repeat,
            seed=args.seed,
            azurite_disk=args.azurite_disk,
            profile=args.profile,
        )
    except ValueError as exc:
        print(f"bench blob: {exc}", file=sys.stderr)
        return 2
    from sim.cloud.azurite import AZURITE_KEY, Azurite, find_azurite

    data = random.Random(config.seed).randbytes(config.size)
    executable, why = find_azurite()
    with tempfile.TemporaryDirectory(prefix="bench-blob-") as tmp, _OursProcess() as ours:
        _upload(connection_string(blob_endpoint=ours.url, key=ours.key), data)
        endpoints = [ours]
        if executable is None:
            print(f"Azurite not measured: {why}")
            results = asyncio.run(measure(endpoints, config, data))
        else:
            storage = "disk" if config.azurite_disk else "memory"
            with Azurite(Path(tmp), in_memory=not config.azurite_disk) as azurite:
                _upload(azurite.connection_string, data)
                endpoints.append(Endpoint("azurite", azurite.url, AZURITE_KEY))
                results = asyncio.run(measure(endpoints, config, data))
            print(f"ours: python {sys.version.split()[0]}, in memory; azurite: {storage}")
    print("\n".join(_report(results, config)))
    if config.profile:
        print("\nour server and the client in one process, cProfile by own time:")
        print(asyncio.run(_profile_in_process(config, data)))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"] and len(sys.argv) == 3:
        sys.exit(_serve(int(sys.argv[2])))
    sys.exit(main(sys.argv[1:]))
