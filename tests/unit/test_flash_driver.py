"""agent.flash.SpiFlash: the driver's contract, over the bytearray port and the chip model.

Behaviour that needs no timing runs on both ``RamSpiPort`` and ``SimSpiPort(W25Q128)``;
the command sequence is checked on the bytearray port's log. Rules cite the Winbond
W25Q128JV datasheet (section 8.2 instructions, 7.1 status registers, 9.6 AC table).
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.errors import PowerLoss
from agent.flash import (
    PARTS,
    W25Q128JV_IM,
    W25Q128JV_IQ,
    FlashPart,
    FlashTimeout,
    FlashVerifyError,
    ProtectedError,
    SpiFlash,
    UnknownFlash,
)
from sim.chip.w25q128 import W25Q128
from sim.clock import VirtualClock
from sim.ports.model import SimSpiPort
from sim.ports.ram import RamSpiPort, SpiCommand

pytestmark = pytest.mark.sim

MiB = 1024 * 1024
ERASES = (0x20, 0x52, 0xD8, 0xC7)


@dataclass
class Rig:
    """A port, the virtual clock it runs on, and the chip model behind it if any."""

    port: object
    clock: VirtualClock
    chip: object = None


def _model_rig(clock: VirtualClock, timing: str = "typical") -> Rig:
    chip = W25Q128(clock=clock, seed=0, timing=timing)
    return Rig(SimSpiPort(chip, frequency=30e6), clock, chip)


@pytest.fixture(params=["ram", "model"])
def rig(request) -> Rig:
    clock = VirtualClock()
    if request.param == "ram":
        return Rig(RamSpiPort(), clock)
    return _model_rig(clock)


@pytest.fixture
def ram() -> RamSpiPort:
    return RamSpiPort(log=True)


class TamperingPort:
    """Delegates to a RamSpiPort, but may rewrite commands or report BUSY on a clock.

    ``rewrite(out)`` returns the bytes actually sent; ``busy_s`` keeps SR1 BUSY=1
    for that long after each program or erase (``float('inf')``: stuck for ever).
    """

    def __init__(
        self,
        clock: VirtualClock,
        *,
        rewrite: Callable[[bytes], bytes] = lambda out: out,
        busy_s: float = 0.0,
        cut_after: int | None = None,
    ) -> None:
        self.ram = RamSpiPort(log=True)
        self.clock = clock
        self.rewrite = rewrite
        self.busy_s = busy_s
        self.busy_until = float("-inf")
        self.cut_after = cut_after
        self.exchanges = 0
        self.polls = 0
        self.frequency = 30e6

    def exchange(self, out=b"", readlen=0, start=True, stop=True, duplex=False, droptail=0):
        self.exchanges += 1
        if self.cut_after is not None and self.exchanges > self.cut_after:
            raise PowerLoss("cut by the test")
        out = bytes(out)
        if out[:1] == b"\x05":
            self.polls += 1
            if self.clock.monotonic() < self.busy_until:
                return b"\x03" * readlen  # BUSY, and WEL still set while busy
        data = self.ram.exchange(self.rewrite(out), readlen, start, stop)
        if out[:1] in (b"\x02", *(bytes([op]) for op in ERASES)):
            self.busy_until = self.clock.monotonic() + self.busy_s
        return data


def _commands(port: RamSpiPort, opcodes) -> list[SpiCommand]:
    return [c for c in port.log if c.opcode in opcodes]


# Probe and geometry ------------------------------------------------------------------


def test_probe_refuses_an_unknown_jedec_id_naming_it():
    """Geometry comes from the JEDEC ID (9Fh); an ID not in the table is refused by name."""
    with pytest.raises(UnknownFlash, match="JEDEC ID c2 20 18"):
        SpiFlash(RamSpiPort(jedec_id=b"\xc2\x20\x18"), VirtualClock())


def test_probe_of_all_ones_suggests_no_chip_is_answering():
    """An idle pulled-up MISO reads FF FF FF: the message says no chip may be there."""
    with pytest.raises(UnknownFlash, match=r"ff ff ff \(no chip answering\?\)"):
        SpiFlash(RamSpiPort(jedec_id=b"\xff\xff\xff"), VirtualClock())


def test_geometry_comes_from_the_part_table(rig):
    """W25Q128JV: 16 MiB, 256 B pages, 4 KiB sectors (datasheet 6.1, 9Fh = EF 40 18)."""
    flash = SpiFlash(rig.port, rig.clock)
    assert flash.part is W25Q128JV_IQ
    assert (flash.size, flash.page_size, flash.sector_size) == (16 * MiB, 256, 4096)


def test_the_im_jm_variant_is_recognised_by_its_own_id():
    """IM/JM parts answer 9Fh with EF 70 18 (datasheet 8.2.29)."""
    flash = SpiFlash(RamSpiPort(jedec_id=b"\xef\x70\x18"), VirtualClock())
    assert flash.part is W25Q128JV_IM


def test_a_caller_supplied_part_table_sets_the_geometry():
    """``parts`` replaces the built-in table: an 8 MiB part probes as 8 MiB."""
    part = FlashPart("TEST8M", b"\x01\x02\x17", 8 * MiB)
    flash = SpiFlash(
        RamSpiPort(8 * MiB, jedec_id=part.jedec_id), VirtualClock(), parts={part.jedec_id: part}
    )
    assert (flash.part, flash.size) == (part, 8 * MiB)


def test_sfdp_density_contradicting_the_part_table_is_refused():
    """SFDP basic table DWORD 2 gives the density (JESD216); it must match the table."""
    port = RamSpiPort(8 * MiB)  # answers EF 40 18 but has only 8 MiB
    with pytest.raises(UnknownFlash, match="SFDP density says 8388608 bytes"):
        SpiFlash(port, VirtualClock())


def test_sfdp_check_can_be_turned_off():
    """``check_sfdp=False`` trusts the JEDEC ID alone (for chips with a broken SFDP)."""
    flash = SpiFlash(RamSpiPort(8 * MiB), VirtualClock(), check_sfdp=False)
    assert flash.size == 16 * MiB


def test_sfdp_density_matches_the_part(rig):
    """The chip's SFDP declares 128 Mbit (JESD216 basic flash parameter table)."""
    assert SpiFlash(rig.port, rig.clock).sfdp_density() == 16 * MiB


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"jedec_id": b"\xef\x40"}, "jedec_id"),
        ({"sector_size": 3000}, "sector_size"),
        ({"page_size": 8192}, "page_size"),
        ({"size": 32 * MiB}, "size"),
        ({"t_se_max_s": 0.0}, "t_se_max_s"),
        ({"t_pp_typ_s": 1.0}, "t_pp_typ_s"),
        ({"name": ""}, "name"),
    ],
)
def test_a_bad_part_names_the_field(change, field):
    """FlashPart validates on construction and names the bad field (house rules)."""
    fields = {"name": "X", "jedec_id": b"\x01\x02\x03", "size": 16 * MiB} | change
    with pytest.raises(ValueError, match=field):
        FlashPart(**fields)


def test_the_part_table_is_keyed_by_each_parts_own_id():
    """PARTS maps every JEDEC ID to the part that carries it."""
    assert all(part.jedec_id == key for key, part in PARTS.items())
    assert {b"\xef\x40\x18", b"\xef\x70\x18"} <= set(PARTS)


# Program -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "length", "expected"),
    [
        (0x1F0, 0x30, [(0x1F0, 16), (0x200, 32)]),  # unaligned start, crossing a page
        (0x2FF, 1, [(0x2FF, 1)]),  # a single byte at a page end
        (0x300, 512, [(0x300, 256), (0x400, 256)]),  # aligned whole pages
        (0x4FE, 260, [(0x4FE, 2), (0x500, 256), (0x600, 2)]),  # three pages
    ],
)
def test_program_is_split_at_page_boundaries(ram, address, length, expected):
    """02h wraps within its page (datasheet 8.2.13), so each command stays in one page."""
    SpiFlash(ram, VirtualClock()).program(address, bytes(length))
    assert [(c.address, c.length) for c in _commands(ram, {0x02})] == expected


@given(address=st.integers(0, 4095), length=st.integers(0, 1500))
def test_program_commands_tile_the_range_without_crossing_a_page(address, length):
    """For any range, the 02h commands cover it exactly, each inside one 256 B page."""
    port = RamSpiPort(64 * 1024, log=True)
    part = FlashPart("SMALL", b"\xef\x40\x18", 64 * 1024)
    SpiFlash(port, VirtualClock(), parts={part.jedec_id: part}).program(address, bytes(length))
    pieces = [(c.address, c.length) for c in _commands(port, {0x02})]
    assert sum(n for _, n in pieces) == length
    assert all(a // 256 == (a + n - 1) // 256 for a, n in pieces)
    assert all(a + n == b for (a, n), (b, _) in pairwise(pieces))


def test_each_page_program_is_preceded_by_write_enable(ram):
    """Page Program needs WEL=1, and WEL clears after each one (datasheet 8.2.1, 7.1.2)."""
    SpiFlash(ram, VirtualClock()).program(0xF0, bytes(0x20))
    opcodes = [c.opcode for c in ram.log if c.opcode in (0x06, 0x02)]
    assert opcodes == [0x06, 0x02, 0x06, 0x02]


def test_program_round_trips_across_pages(rig):
    """Data programmed over page boundaries reads back unchanged (datasheet 8.2.13)."""
    flash = SpiFlash(rig.port, rig.clock)
    data = bytes((i * 7 + 3) % 256 for i in range(1000))
    flash.program(0x10F3, data)
    assert flash.read(0x10F3, len(data)) == data
    assert flash.read(0x10F2, 1) == b"\xff" and flash.read(0x10F3 + 1000, 1) == b"\xff"


def test_program_outside_the_array_names_the_range(rig):
    """Bad input is refused with the address, length and part named."""
    flash = SpiFlash(rig.port, rig.clock)
    with pytest.raises(ValueError, match=r"program of 2 bytes at address 0xffffff"):
        flash.program(0xFFFFFF, b"ab")


# Erase -------------------------------------------------------------------------------


def test_erase_picks_the_largest_aligned_unit(ram):
    """64 KiB (D8h) where aligned and fitting, else 32 KiB (52h), else 4 KiB (20h)."""
    SpiFlash(ram, VirtualClock()).erase(0xF000, 0x30000)  # 0x00F000 .. 0x03F000
    assert [(c.opcode, c.address) for c in _commands(ram, ERASES)] == [
        (0x20, 0x00F000),
        (0xD8, 0x010000),
        (0xD8, 0x020000),
        (0x52, 0x030000),
        (0x20, 0x038000),
        (0x20, 0x039000),
        (0x20, 0x03A000),
        (0x20, 0x03B000),
        (0x20, 0x03C000),
        (0x20, 0x03D000),
        (0x20, 0x03E000),
    ]


def test_erase_sets_exactly_the_range_to_ff(rig):
    """Erase sets every bit of its units to 1 (datasheet 8.2.15-17) and nothing else."""
    flash = SpiFlash(rig.port, rig.clock)
    flash.program(0x7F00, bytes(0x9200))  # 0x7F00 .. 0x11100 all zero
    flash.erase(0x8000, 0x9000)
    assert flash.read(0x7F00, 0x100) == bytes(0x100)
    assert flash.read(0x8000, 0x9000) == b"\xff" * 0x9000
    assert flash.read(0x11000, 0x100) == bytes(0x100)


@pytest.mark.parametrize(
    ("address", "length", "field"), [(0x800, 4096, "address"), (0, 100, "length")]
)
def test_erase_refuses_an_unaligned_range_naming_it(ram, address, length, field):
    """Erase units are whole sectors; a partial one would destroy neighbouring data."""
    with pytest.raises(ValueError, match=f"erase {field} 0x{(address or length):x}"):
        SpiFlash(ram, VirtualClock()).erase(address, length)


def test_chip_erase_clears_the_whole_array(rig):
    """C7h sets the whole array to FF (datasheet 8.2.18)."""
    flash = SpiFlash(rig.port, rig.clock)
    flash.program(0, b"\x00" * 16)
    flash.program(flash.size - 16, b"\x00" * 16)
    flash.chip_erase()
    assert flash.read(0, 16) + flash.read(flash.size - 16, 16) == b"\xff" * 32


# Read --------------------------------------------------------------------------------


def test_large_reads_are_split_into_chunks(ram):
    """Each exchange stays within ``max_transfer`` (pyftdi caps one at 0xFF00 bytes)."""
    ram.memory[0xFF0 : 0xFF0 + 100_000] = bytes(i % 251 for i in range(100_000))
    flash = SpiFlash(ram, VirtualClock(), max_transfer=32 * 1024)
    data = flash.read(0xFF0, 100_000)
    reads = [(c.address, c.length) for c in _commands(ram, {0x03})]
    assert data == bytes(i % 251 for i in range(100_000))
    assert reads == [(0xFF0, 32768), (0x8FF0, 32768), (0x10FF0, 32768), (0x18FF0, 1696)]


def test_reads_cross_page_and_sector_boundaries(rig):
    """03h continues across pages and sectors (datasheet 8.2.6)."""
    flash = SpiFlash(rig.port, rig.clock)
    data = bytes(range(256)) * 3
    flash.program(0xF80, data)
    assert flash.read(0xF80, len(data)) == data


def test_fast_read_is_used_above_50_mhz(ram):
    """03h is specified to 50 MHz (datasheet 9.6 fR); faster clocks use 0Bh with a dummy."""
    ram.memory[0:4] = b"fast"
    ram.set_frequency(60e6)
    flash = SpiFlash(ram, VirtualClock())
    assert flash.read(0, 4) == b"fast"
    assert [c.opcode for c in ram.log if c.opcode in (0x03, 0x0B)] == [0x0B]


def test_read_past_the_end_is_refused(rig):
    """A read beyond the array is a caller bug, not a wrap-around (which the chip does)."""
    flash = SpiFlash(rig.port, rig.clock)
    with pytest.raises(ValueError, match="read of 32 bytes at address 0xfffff0"):
        flash.read(0xFFFFF0, 32)


@pytest.mark.parametrize("bad", [0, 0xFF01])
def test_max_transfer_is_bounded_by_pyftdi(bad):
    """pyftdi refuses payloads above 0xFF00 bytes; the driver refuses to be set up so."""
    with pytest.raises(ValueError, match="max_transfer"):
        SpiFlash(RamSpiPort(), VirtualClock(), max_transfer=bad)


def test_unique_id_is_read_after_four_dummy_bytes():
    """4Bh returns the 64-bit unique ID after four dummy bytes (datasheet 8.2.27)."""
    flash = SpiFlash(RamSpiPort(unique_id=b"\x01\x23\x45\x67\x89\xab\xcd\xef"), VirtualClock())
    assert flash.unique_id() == b"\x01\x23\x45\x67\x89\xab\xcd\xef"


# Waiting -----------------------------------------------------------------------------


def test_a_chip_stuck_busy_times_out_naming_the_operation(monkeypatch):
    """BUSY past the datasheet maximum (tSE 400 ms, 9.6) is a clear FlashTimeout."""
    monkeypatch.setattr(time, "sleep", lambda s: pytest.fail("slept for real"))
    clock = VirtualClock()
    port = TamperingPort(clock, busy_s=float("inf"))
    flash = SpiFlash(port, clock)
    with pytest.raises(
        FlashTimeout,
        match=r"still BUSY 600 ms after sector erase at 0x001000 "
        r"\(datasheet max tSE 400 ms\)",
    ):
        flash.erase_sector(0x1000)


def test_waiting_sleeps_on_the_clock_between_polls():
    """A stuck chip is polled a bounded number of times: the driver sleeps, not spins."""
    clock = VirtualClock()
    port = TamperingPort(clock, busy_s=float("inf"))
    with pytest.raises(FlashTimeout):
        SpiFlash(port, clock).program(0, b"\x00")
    assert 0.0045 <= clock.monotonic() < 0.005  # 1.5 x tPP max (3 ms)
    assert 3 <= port.polls <= 100  # a poll per 1/64 of tPP max for 1.5 x tPP: ~96, not 1000s


def test_a_chip_taking_the_datasheet_maximum_is_not_timed_out():
    """Operations may take up to the AC table maximum (9.6); only beyond it is a fault."""
    clock = VirtualClock()
    port = TamperingPort(clock, busy_s=0.400)
    SpiFlash(port, clock).erase_sector(0)
    assert clock.monotonic() >= 0.400


def test_the_first_poll_is_immediate(ram):
    """A port that is never BUSY costs one status poll per operation, with no sleep."""
    clock = VirtualClock()
    SpiFlash(ram, clock).program(0, bytes(256))
    assert [c.opcode for c in ram.log[-4:]] == [0x06, 0x05, 0x02, 0x05]
    assert clock.monotonic() == 0.0


def test_an_operation_at_max_time_on_the_model_completes():
    """The model with ``timing="max"`` takes tSE = 400 ms; the driver waits it out."""
    clock = VirtualClock()
    rig = _model_rig(clock, timing="max")
    flash = SpiFlash(rig.port, clock)
    start = clock.monotonic()
    flash.erase_sector(0x3000)
    assert clock.monotonic() - start >= 0.400


# Protection and verify ---------------------------------------------------------------


def test_write_enable_that_does_not_latch_is_a_protection_error():
    """06h must set WEL (8.2.1); if SR1 still shows WEL=0 the status bits are named."""
    clock = VirtualClock()
    port = TamperingPort(clock, rewrite=lambda out: b"" if out == b"\x06" else out)
    flash = SpiFlash(port, clock)
    with pytest.raises(
        ProtectedError,
        match=r"did not latch before page program at 0x000100"
        r".*SR1=0x00 .*BP=0",
    ):
        flash.program(0x100, b"\x00")


def test_an_operation_the_chip_ignores_is_a_protection_error():
    """A completed program clears WEL (7.1.2); WEL still set means the chip refused it."""
    clock = VirtualClock()
    port = TamperingPort(clock, rewrite=lambda out: b"" if out[:1] == b"\x20" else out)
    with pytest.raises(ProtectedError, match="sector erase at 0x002000 was ignored"):
        SpiFlash(port, clock).erase_sector(0x2000)


def test_verify_catches_a_program_that_did_not_take():
    """Read-back after program names the first bad address and the bytes seen."""
    clock = VirtualClock()
    # The chip drops the data but clears WEL, as if the program silently failed.
    port = TamperingPort(clock, rewrite=lambda out: b"\x04" if out[:1] == b"\x02" else out)
    with pytest.raises(
        FlashVerifyError,
        match=r"program verify failed at 0x000100: "
        r"expected 00 01 02 .* read ff ff ff .*\(4 of 4 bytes differ\)",
    ):
        SpiFlash(port, clock, verify=True).program(0x100, b"\x00\x01\x02\x03")


def test_without_verify_a_failed_program_goes_unnoticed():
    """Verify is opt-in: the same silent failure passes when ``verify`` is off."""
    clock = VirtualClock()
    port = TamperingPort(clock, rewrite=lambda out: b"\x04" if out[:1] == b"\x02" else out)
    SpiFlash(port, clock).program(0x100, b"\x00")
    assert port.ram.memory[0x100] == 0xFF


def test_verify_catches_programming_over_unerased_data(rig):
    """Programming only clears bits (8.2.13): 0x0F over 0xF0 reads 0x00, not 0x0F."""
    flash = SpiFlash(rig.port, rig.clock, verify=True)
    flash.program(0x40, b"\xf0")
    with pytest.raises(FlashVerifyError, match="at 0x000040: expected 0f, read 00"):
        flash.program(0x40, b"\x0f")


def test_verify_catches_an_erase_that_did_not_take():
    """Read-back after erase expects FF everywhere in the range."""
    clock = VirtualClock()
    port = TamperingPort(clock, rewrite=lambda out: b"\x04" if out[:1] == b"\x20" else out)
    port.ram.memory[0x1000] = 0x00
    with pytest.raises(FlashVerifyError, match="erase verify failed at 0x001000"):
        SpiFlash(port, clock, verify=True).erase_sector(0x1000)


# Power loss --------------------------------------------------------------------------


@pytest.mark.parametrize("cut_after", [1, 5, 6, 7, 40])
def test_power_loss_from_the_port_propagates_untouched(cut_after):
    """PowerLoss (agent.errors) is the port's to raise and the agent's to stop on."""
    clock = VirtualClock()
    port = TamperingPort(clock)
    flash = SpiFlash(port, clock)
    port.cut_after = port.exchanges + cut_after
    with pytest.raises(PowerLoss) as caught:
        flash.program(0, bytes(4096))
        flash.erase(0, 4096)
    assert type(caught.value) is PowerLoss and str(caught.value) == "cut by the test"


def test_power_loss_on_the_model_propagates():
    """After ``power_off()`` every exchange raises PowerLoss, through the driver."""
    clock = VirtualClock()
    rig = _model_rig(clock)
    flash = SpiFlash(rig.port, clock)
    rig.chip.power_off()
    with pytest.raises(PowerLoss):
        flash.read(0, 16)
