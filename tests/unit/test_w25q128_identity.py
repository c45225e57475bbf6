"""W25Q128JV identity: 9Fh, 90h, ABh, 4Bh and the SFDP table (datasheet 8.2.27-8.2.32)."""

import pytest

from sim.chip import sfdp
from tests.common.nor import Nor

pytestmark = pytest.mark.sim


def test_jedec_id_is_ef_40_18():
    """9Fh returns manufacturer EFh, memory type 40h, capacity 18h (datasheet 8.2.32)."""
    assert Nor().cmd(0x9F, readlen=3) == b"\xef\x40\x18"


def test_jedec_id_follows_the_constructor_for_im_parts():
    """IM parts report EF 70 18 (datasheet 8.2.32, ordering information)."""
    assert Nor(jedec_id=b"\xef\x70\x18").cmd(0x9F, readlen=3) == b"\xef\x70\x18"


def test_manufacturer_device_id_is_ef_17_and_address_bit0_swaps_order():
    """90h with address 000000h gives EF 17, with 000001h gives 17 EF (datasheet 8.2.29)."""
    nor = Nor()
    assert nor.cmd(0x90, 0, readlen=4) == b"\xef\x17\xef\x17"
    assert nor.cmd(0x90, 1, readlen=2) == b"\x17\xef"


def test_release_power_down_reads_device_id_after_three_dummy_bytes():
    """ABh followed by three dummy bytes outputs the device ID 17h (datasheet 8.2.28)."""
    assert Nor().cmd(0xAB, readlen=5) == b"\xff\xff\xff\x17\x17"


def test_unique_id_is_64_bits_after_four_dummy_bytes_and_deterministic_per_seed():
    """4Bh + 4 dummy bytes returns a 64-bit unique ID (datasheet 8.2.31); the model derives it
    from the seed, so equal seeds agree and different seeds differ."""
    a, b, c = Nor(seed=1), Nor(seed=1), Nor(seed=2)
    uid = a.cmd(0x4B, dummy=4, readlen=8)
    assert len(uid) == 8
    assert uid == b.cmd(0x4B, dummy=4, readlen=8)
    assert uid != c.cmd(0x4B, dummy=4, readlen=8)


def test_sfdp_header_has_signature_and_one_basic_parameter_table():
    """5Ah + address + 8 dummy clocks reads SFDP; header "SFDP", BFPT ID FF00h (JESD216B 6.2)."""
    space = Nor().cmd(0x5A, 0, dummy=1, readlen=16)
    assert space[:4] == b"SFDP"
    assert space[6] == 0  # one parameter header
    assert (space[8], space[15]) == (0x00, 0xFF)  # BFPT id LSB / MSB


def test_sfdp_describes_16_mib_256_byte_pages_and_4k_32k_64k_erases():
    """The BFPT gives density, page size and erase types 4K/20h, 32K/52h, 64K/D8h
    (JESD216B 6.4; datasheet 8.2.30 and the SFDP table of the part)."""
    summary = sfdp.parse(Nor().cmd(0x5A, 0, dummy=1, readlen=256))
    assert summary.density_bytes == 16 * 1024 * 1024
    assert summary.page_size == 256
    assert summary.erase_4k_opcode == 0x20
    assert [(e.size, e.opcode) for e in summary.erase_types] == [
        (4096, 0x20),
        (32768, 0x52),
        (65536, 0xD8),
    ]


def test_sfdp_timings_bracket_the_datasheet_figures():
    """BFPT typical/max times, in JESD216B units, cover tSE, tBE1, tBE2, tPP (datasheet 9.6)."""
    summary = sfdp.parse(Nor().cmd(0x5A, 0, dummy=1, readlen=256))
    sector, block32, block64 = summary.erase_types
    assert 40e-3 <= sector.typical_s <= 50e-3 and sector.max_s >= 400e-3
    assert 110e-3 <= block32.typical_s <= 130e-3 and block32.max_s >= 1.6
    assert 140e-3 <= block64.typical_s <= 160e-3 and block64.max_s >= 2.0
    assert 0.3e-3 <= summary.page_program_typical_s <= 0.5e-3
    assert summary.page_program_max_s >= 3e-3


def test_sfdp_does_not_advertise_dual_or_quad_reads_the_model_declines():
    """BFPT DWORD 1 bits 16, 20-22 and DWORD 5 bits 0, 4 are clear (module doc deviation)."""
    table = Nor().cmd(0x5A, 0x80, dummy=1, readlen=20)
    dw1, dw5 = int.from_bytes(table[0:4], "little"), int.from_bytes(table[16:20], "little")
    assert dw1 & (1 << 16 | 0x7 << 20) == 0
    assert dw5 & 0x11 == 0


def test_unique_id_starts_right_after_the_fourth_dummy_byte():
    """4Bh: the 64-bit ID follows exactly four dummy bytes, then MISO idles at FFh
    (datasheet 8.2.31; module doc: undriven MISO reads FFh)."""
    nor = Nor(seed=5)
    assert nor.cmd(0x4B, dummy=4, readlen=12) == nor.chip.unique_id + b"\xff" * 4
