"""``python -m hil diff --rig FILE``: the differential check, rig against model.

Runs one fixed sequence of raw instructions (identity; erase and read-back;
programs over non-erased bytes, which must AND; page wrap and over-long page
programs, 8.2.13; instructions sent while BUSY, which must be ignored, 7.1.1;
WEL corner cases, 7.1.2 and 8.2.1-8.2.3; erase suspend with a program and a read
inside, then resume, 8.2.20-8.2.21) on the rig's chip and on a fresh W25Q128
model, records every response byte and status read of each, and prints where
they differ, with the busy times measured on the rig against the model and the
datasheet's typical and maximum (9.6). With the virtual rig both sides are the
model: a self-test that must report zero differences. The rig's test region
is restored afterwards.
"""

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from agent.clock import Clock
from agent.flash import W25Q128JV_IQ
from agent.spi import SpiPort
from agent.w25q128jv import PAGE, SECTOR, SR2

from . import report
from .port import open_bench
from .raw import T_PP_S, T_SE_S, RawNor
from .rig import Rig
from .tool import run_tool

UNCOMPARED = {"unique id"}  # factory-unique per chip (8.2.30)


@dataclass(frozen=True)
class Observation:
    step: str
    what: str
    value: str  # hex


@dataclass(frozen=True)
class BusyTime:
    op: str
    seconds: float
    typical_s: float
    max_s: float


class _Recorder:
    def __init__(self, nor: RawNor) -> None:
        self.nor = nor
        self.step = ""
        self.observations: list[Observation] = []
        self.busy: list[BusyTime] = []

    def see(self, what: str, value: bytes | int) -> None:
        data = bytes((value,)) if isinstance(value, int) else value
        self.observations.append(Observation(self.step, what, data.hex()))

    def wait(self, op: str, timeout_s: float, typical_s: float, max_s: float) -> None:
        seconds, _ = self.nor.wait_idle(timeout_s)
        self.busy.append(BusyTime(op, seconds, typical_s, max_s))
        self.see("SR1 when idle", self.nor.sr(1))


def sequence(nor: RawNor, base: int) -> _Recorder:
    """The fixed sequence, in two sectors from ``base``; returns what was observed."""
    r = _Recorder(nor)
    s0, s1 = base, base + SECTOR
    part = W25Q128JV_IQ
    erase_t = (T_SE_S, part.t_se_typ_s, part.t_se_max_s)
    pp_t = (T_PP_S, part.t_pp_typ_s, part.t_pp_max_s)

    r.step = "identity"
    r.see("9Fh", nor.jedec_id())
    r.see("90h", nor.manufacturer_device_id())
    r.see("ABh", nor.release_power_down_id())
    r.see("unique id", nor.unique_id())
    r.see("SFDP header", nor.sfdp(0, 16))
    for n in (1, 2, 3):
        r.see(f"SR{n}", nor.sr(n))

    r.step = "erase two sectors"
    for sector in (s0, s1):
        nor.erase(sector)
        r.see("SR1 just after 20h", nor.sr(1))
        r.wait("sector erase", *erase_t)
    r.see("read 32 B", nor.read(s0, 32))

    r.step = "WEL rules"
    nor.wren()
    r.see("SR1 after 06h", nor.sr(1))
    nor.read(s0, 4)
    r.see("SR1 after 06h then 03h", nor.sr(1))
    nor.wrdi()
    r.see("SR1 after 04h", nor.sr(1))
    nor.program(s0, b"\x00" * 4, wren=False)
    r.see("SR1 after 02h without 06h", nor.sr(1))
    r.see("read after ignored 02h", nor.read(s0, 4))
    nor.program(s0 + 4, b"\x5a")
    r.see("SR1 just after 02h", nor.sr(1))
    r.wait("page program, 1 byte", *pp_t)

    r.step = "program over non-erased bytes"
    nor.program(s0 + 16, bytes((0xF0, 0x0F, 0xAA, 0xFF)))
    r.wait("page program, 4 bytes", *pp_t)
    nor.program(s0 + 16, bytes((0x3C, 0x3C, 0x55, 0x00)))
    r.wait("page program, 4 bytes", *pp_t)
    r.see("read ANDed bytes", nor.read(s0 + 16, 4))

    r.step = "page wrap"
    nor.program(s0 + PAGE + 250, bytes(range(1, 17)))
    r.wait("page program, 16 bytes", *pp_t)
    r.see("read page", nor.read(s0 + PAGE, PAGE))
    nor.program(s0 + 2 * PAGE, bytes(i & 0xFF for i in range(300)))
    r.wait("page program, 300 bytes", *pp_t)
    r.see("read page after 300 B program", nor.read(s0 + 2 * PAGE, PAGE))
    nor.program(s0 + 3 * PAGE, bytes(range(PAGE)))
    r.wait("page program, 256 bytes", *pp_t)
    r.see("read full page", nor.read(s0 + 3 * PAGE, PAGE))

    r.step = "commands while BUSY"
    nor.program(s1, b"\x00" * 8)
    r.wait("page program, 8 bytes", *pp_t)
    nor.erase(s1)
    r.see("SR1 while erasing", nor.sr(1))
    r.see("9Fh while erasing", nor.jedec_id())
    r.see("03h while erasing", nor.read(s0 + 4, 2))
    nor.program(s0 + 4 * PAGE, b"\x00\x00")
    r.see("SR2 while erasing", nor.sr(2))
    r.wait("sector erase", *erase_t)
    r.see("02h sent while busy left", nor.read(s0 + 4 * PAGE, 2))
    r.see("erased sector", nor.read(s1, 8))

    r.step = "erase suspend and resume"
    nor.program(s1, b"\x00" * 8)
    r.wait("page program, 8 bytes", *pp_t)
    nor.erase(s1)
    nor.clock.sleep(1e-3)
    nor.suspend()
    nor.clock.sleep(50e-6)  # tSUS max 20 us
    r.see("SR1 suspended", nor.sr(1))
    r.see("SR2 suspended", nor.sr(2) & SR2.SUS)
    r.see("03h other sector while suspended", nor.read(s0 + 16, 4))
    nor.program(s0 + 5 * PAGE, b"\x11\x22")
    r.wait("page program in suspend", *pp_t)
    r.see("02h other sector while suspended", nor.read(s0 + 5 * PAGE, 2))
    r.see("SR2 still suspended", nor.sr(2) & SR2.SUS)
    nor.resume()
    r.see("SR1 just after 7Ah", nor.sr(1))
    r.wait("sector erase, resumed", *erase_t)
    r.see("SR2 after resume", nor.sr(2))
    r.see("resumed erase result", nor.read(s1, 8))
    return r


def _restore(nor: RawNor, base: int, saved: bytes) -> bool:
    for offset in range(0, len(saved), SECTOR):
        nor.erase(base + offset)
        nor.wait_idle(T_SE_S)
    for offset in range(0, len(saved), PAGE):
        page = saved[offset : offset + PAGE]
        if page != b"\xff" * PAGE:
            nor.program(base + offset, page)
            nor.wait_idle(T_PP_S)
    return nor.read(base, len(saved)) == saved


def _model_port(rig: Rig) -> tuple[SpiPort, Clock]:
    from sim.chip.w25q128 import W25Q128
    from sim.clock import VirtualClock
    from sim.ports.model import SimSpiPort

    clock = VirtualClock()
    return SimSpiPort(
        W25Q128(clock=clock, seed=0, timing="typical"), frequency=rig.frequency_hz
    ), clock


def run(rig: Rig, model: Callable[[Rig], tuple[SpiPort, Clock]] = _model_port) -> dict[str, Any]:
    """Run the sequence on the rig and on the model; return the comparison."""
    base = rig.test_region[0]
    with open_bench(rig) as bench:
        nor = RawNor(bench.port, bench.clock, record=False)
        nor.wait_idle(T_SE_S)
        saved = nor.read(base, 2 * SECTOR)
        try:
            on_rig = sequence(nor, base)
        finally:
            nor.reset()
            nor.wait_idle(2 * T_SE_S)
            restored = _restore(nor, base, saved)
    port, clock = model(rig)
    on_model = sequence(RawNor(port, clock, record=False), base)
    differences = [
        {"step": a.step, "what": a.what, "rig": a.value, "model": b.value}
        for a, b in zip(on_rig.observations, on_model.observations, strict=True)
        if a.value != b.value and a.what not in UNCOMPARED
    ]
    timings = [
        {**asdict(a), "model_s": b.seconds} for a, b in zip(on_rig.busy, on_model.busy, strict=True)
    ]
    return {
        "rig": rig.name,
        "virtual": rig.virtual,
        "compared": sum(o.what not in UNCOMPARED for o in on_rig.observations),
        "differences": differences,
        "observations": [asdict(o) for o in on_rig.observations],
        "timings": timings,
        "restored": restored,
    }


def render(result: dict[str, Any]) -> str:
    diffs = result["differences"]
    lines = [
        f"rig {result['rig']}{' (virtual: model against model)' if result['virtual'] else ''}: "
        f"{result['compared']} responses compared, {len(diffs)} differ; "
        f"test region {'restored' if result['restored'] else 'NOT RESTORED'}",
    ]
    if diffs:
        rows = [[d["step"], d["what"], d["rig"][:32], d["model"][:32]] for d in diffs]
        lines += ["", report.table(["step", "response", "rig", "model"], rows)]
    rows = [
        [
            t["op"],
            f"{t['seconds'] * 1e3:.3f}",
            f"{t['model_s'] * 1e3:.3f}",
            f"{t['typical_s'] * 1e3:.3f}",
            f"{t['max_s'] * 1e3:.3f}",
            "OVER MAX" if t["seconds"] > t["max_s"] else "",
        ]
        for t in result["timings"]
    ]
    lines += ["", report.table(["busy time", "rig ms", "model ms", "typ ms", "max ms", ""], rows)]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    description = __doc__.splitlines()[0]
    result = run_tool(argv, name="diff", description=description, run=run, render=render)
    return 1 if result["differences"] or not result["restored"] else 0
