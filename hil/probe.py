"""``python -m hil probe --rig FILE``: what chip is on the rig, and how fast it is.

Reads identity (9Fh, 90h, ABh; datasheet 8.2.26-8.2.29), the SFDP basic flash
parameter table (5Ah, JESD216), the three status registers and the unique ID
(4Bh), then times one sector erase and the programming of that sector's 16 pages
in the rig's test region (restoring the sector afterwards) against the datasheet
typical and maximum (section 9.6).
"""

from typing import Any

from agent.flash import W25Q128JV_IQ
from agent.w25q128jv import PAGE, SECTOR

from . import report
from .port import open_bench
from .raw import T_PP_S, T_SE_S, RawNor
from .rig import Rig
from .tool import run_tool


def _sfdp(nor: RawNor) -> dict[str, Any]:
    from sim.chip import sfdp  # the JESD216 decoder lives with the model that encodes it

    space = nor.sfdp(0, 256)
    try:
        summary = sfdp.parse(space)
    except (ValueError, IndexError) as exc:
        return {"error": str(exc), "header": space[:16].hex()}
    return {
        "revision": summary.revision,
        "density_bytes": summary.density_bytes,
        "page_size": summary.page_size,
        "erase_4k_opcode": f"{summary.erase_4k_opcode:02X}",
        "erase_types": [
            {
                "size": e.size,
                "opcode": f"{e.opcode:02X}",
                "typical_s": e.typical_s,
                "max_s": e.max_s,
            }
            for e in summary.erase_types
        ],
        "page_program_typical_s": summary.page_program_typical_s,
    }


def _timing(nor: RawNor, base: int) -> list[dict[str, Any]]:
    """Erase one sector and program its pages; restore what was there."""
    saved = nor.read(base, SECTOR)
    nor.erase(base)
    erase_s, _ = nor.wait_idle(T_SE_S)
    program_s = []
    pattern = bytes((i * 7) & 0xFF for i in range(PAGE))
    for page in range(0, SECTOR, PAGE):
        nor.program(base + page, pattern)
        program_s.append(nor.wait_idle(T_PP_S)[0])
    nor.erase(base)
    nor.wait_idle(T_SE_S)
    for page in range(0, SECTOR, PAGE):
        if saved[page : page + PAGE] != b"\xff" * PAGE:
            nor.program(base + page, saved[page : page + PAGE])
            nor.wait_idle(T_PP_S)
    restored = nor.read(base, SECTOR) == saved
    part = W25Q128JV_IQ
    return [
        {
            "op": "sector erase (20h)",
            "measured_s": erase_s,
            "typical_s": part.t_se_typ_s,
            "max_s": part.t_se_max_s,
            "restored": restored,
        },
        {
            "op": "page program (02h), mean of 16",
            "measured_s": sum(program_s) / len(program_s),
            "worst_s": max(program_s),
            "typical_s": part.t_pp_typ_s,
            "max_s": part.t_pp_max_s,
        },
    ]


def probe(rig: Rig) -> dict[str, Any]:
    """Run the probe on ``rig`` and return its findings."""
    with open_bench(rig) as bench:
        nor = RawNor(bench.port, bench.clock, record=False)
        result: dict[str, Any] = {
            "rig": rig.name,
            "virtual": rig.virtual,
            "frequency_hz": bench.port.frequency,
            "jedec_id": nor.jedec_id().hex().upper(),
            "manufacturer_device_id": nor.manufacturer_device_id().hex().upper(),
            "device_id_abh": f"{nor.release_power_down_id():02X}",
            "unique_id": nor.unique_id().hex().upper(),
            "status": {f"sr{n}": f"{nor.sr(n):02X}" for n in (1, 2, 3)},
            "sfdp": _sfdp(nor),
            "timing": _timing(nor, rig.test_region[0]),
        }
    return result


def render(result: dict[str, Any]) -> str:
    lines = [
        f"rig {result['rig']}{' (virtual)' if result['virtual'] else ''} "
        f"at {result['frequency_hz'] / 1e6:.2f} MHz",
        f"JEDEC ID {result['jedec_id']}  90h {result['manufacturer_device_id']}  "
        f"ABh {result['device_id_abh']}  unique ID {result['unique_id']}",
        "status " + "  ".join(f"{k.upper()}={v}" for k, v in result["status"].items()),
    ]
    sfdp = result["sfdp"]
    if "error" in sfdp:
        lines.append(f"SFDP unreadable: {sfdp['error']}")
    else:
        lines.append(
            f"SFDP rev {sfdp['revision']}: {sfdp['density_bytes'] // 1024 // 1024} MiB, "
            f"page {sfdp['page_size']} B, 4K erase {sfdp['erase_4k_opcode']}h, erase types "
            + ", ".join(f"{e['size'] // 1024}K={e['opcode']}h" for e in sfdp["erase_types"])
        )
    rows = [
        [
            t["op"],
            f"{t['measured_s'] * 1e3:.3f}",
            f"{t['typical_s'] * 1e3:.3f}",
            f"{t['max_s'] * 1e3:.3f}",
        ]
        for t in result["timing"]
    ]
    lines += ["", report.table(["operation", "measured ms", "typical ms", "max ms"], rows)]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    run_tool(argv, name="probe", description=__doc__.splitlines()[0], run=probe, render=render)
    return 0
