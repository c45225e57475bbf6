"""Rig files: loaded from TOML, validated on construction, errors naming the bad field."""

from pathlib import Path

import pytest

from hil.rig import GpioRole, Rig, RigError

pytestmark = pytest.mark.sim

RIGS = Path(__file__).resolve().parents[2] / "fixtures" / "rigs"


def _rig(**sections):
    data = {"ftdi": {"url": "ftdi://ftdi:232h/1"}}
    for name, body in sections.items():
        data.setdefault(name, {}).update(body)
    return Rig.from_mapping(data, source="test.toml")


@pytest.mark.parametrize("name", ["ft232h-example.toml", "virtual.toml"])
def test_shipped_rig_files_load(name):
    """The example rigs in fixtures/rigs are valid and declare both capabilities."""
    rig = Rig.load(RIGS / name)
    assert rig.capabilities == {"power_cut", "write_protect"}
    assert rig.power == GpioRole(8, active_high=True)


def test_virtual_rig_is_marked_virtual_and_the_example_is_not():
    """[ftdi] virtual selects the virtual FT232H."""
    assert (
        Rig.load(RIGS / "virtual.toml").virtual,
        Rig.load(RIGS / "ft232h-example.toml").virtual,
    ) == (
        True,
        False,
    )


def test_missing_url_names_the_field():
    with pytest.raises(RigError, match=r"test.toml: \[ftdi\] url: is required"):
        Rig.from_mapping({"ftdi": {}}, source="test.toml")


def test_unknown_key_is_refused_by_name():
    """A typo must not silently fall back to a default."""
    with pytest.raises(RigError, match=r"\[spi\] frequncy_hz: unknown key"):
        _rig(spi={"frequncy_hz": 1})


def test_wrong_type_names_the_field():
    with pytest.raises(RigError, match=r"\[spi\] frequency_hz: 'fast' is not"):
        _rig(spi={"frequency_hz": "fast"})


def test_gpio_on_an_spi_pin_is_refused():
    """AD0-AD2 are SCK/MOSI/MISO and AD3 is /CS0 (pyftdi SpiController)."""
    with pytest.raises(RigError, match=r"\[gpio\] power: pin 3 is not a free GPIO"):
        _rig(gpio={"power": 3})


def test_two_roles_on_one_pin_are_refused():
    with pytest.raises(RigError, match=r"\[gpio\] wp: pin 8 is already power"):
        _rig(gpio={"power": 8, "wp": 8})


def test_power_cut_capability_needs_a_power_gpio():
    with pytest.raises(RigError, match=r"\[capabilities\] power_cut: needs \[gpio\] power"):
        _rig(capabilities={"power_cut": True})


def test_frequency_above_the_ft232h_maximum_is_refused():
    """FT232H datasheet 4.4: SCK at most 30 MHz (60 MHz master clock / 2)."""
    with pytest.raises(RigError, match=r"\[spi\] frequency_hz"):
        _rig(spi={"frequency_hz": 40_000_000})


def test_unaligned_test_region_is_refused():
    """Destructive tests erase whole 4 KiB sectors (datasheet 8.2.17)."""
    with pytest.raises(RigError, match=r"\[flash\] test_region"):
        _rig(flash={"test_region": [0x100, 0x2000]})


def test_unsupported_spi_mode_is_refused():
    """W25Q128JV datasheet 6.1: SPI modes 0 and 3 only."""
    with pytest.raises(RigError, match=r"\[spi\] mode: 1"):
        _rig(spi={"mode": 1})


def test_unreadable_file_names_the_path(tmp_path):
    with pytest.raises(RigError, match="cannot read rig file"):
        Rig.load(tmp_path / "absent.toml")


def test_invalid_toml_names_the_path(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[ftdi\nurl=", encoding="utf-8")
    with pytest.raises(RigError, match=r"bad\.toml: not valid TOML"):
        Rig.load(path)


def test_lacking_a_capability_gives_the_reason():
    rig = _rig(rig={"name": "bare"})
    assert "does not declare [capabilities] power_cut" in rig.lacks("power_cut")


def test_declared_capability_is_not_lacking():
    rig = _rig(gpio={"wp": 9}, capabilities={"write_protect": True})
    assert rig.lacks("write_protect") is None


def test_cs_line_reserves_pyftdi_cs_count():
    """pyftdi reserves /CS from AD3 upward: cs 1 (AD4) needs cs_count 2, freeing AD5 upward."""
    rig = _rig(spi={"cs": 1}, gpio={"power": 5})
    assert (rig.cs_count, rig.power.pin) == (2, 5)
