"""``python -m sim replay``: a finding replays with its verdict and its SPI trace; anything
else is refused with one line (issue 13, "Commands a person enjoys")."""

import json
import shutil
import subprocess

import pytest

from sim.explore.scenario import Cut, Scenario
from sim.tools.replay import main

pytestmark = pytest.mark.sim

# the fuzzer's finding for record_before_sync: the record claims bytes before their sync
FINDING = Scenario(image_size=65536, mutant="record_before_sync", cuts=(Cut(after_ops=256),))


def test_a_finding_replays_its_violation_and_writes_a_vcd(tmp_path, capsys):
    path = FINDING.save(tmp_path / "finding-1-0.json")
    assert main([str(path), "--trace", str(tmp_path / "cut.vcd"), "--around", "40"]) == 1
    out = capsys.readouterr().out
    assert "VIOLATION resume-efficiency" in out
    assert "wrote " in out and "80 of " in out
    if shutil.which("sigrok-cli"):
        decoded = subprocess.run(
            [
                "sigrok-cli",
                "-I",
                "vcd:compress=1000",
                "-i",
                str(tmp_path / "cut.vcd"),
                "-P",
                "spi:clk=sck:mosi=mosi:miso=miso:cs=cs,spiflash",
                "-A",
                "spiflash=commands",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        assert "Page program (addr 0x" in decoded


@pytest.mark.parametrize(
    "content, message",
    [
        ({}, "not a finding written by python -m sim fuzz (missing base_image_size"),
        ({"rules": []}, "not a finding written by python -m sim fuzz"),
        ([1, 2], "not a finding (a JSON list)"),
        ("not json", "not JSON"),
    ],
)
def test_a_file_that_is_not_a_finding_is_an_error(tmp_path, capsys, content, message):
    path = tmp_path / "x.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    assert main([str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("python -m sim replay: error")


def test_a_missing_finding_or_trace_folder_is_one_line(tmp_path, capsys):
    assert main([str(tmp_path / "nothere.json")]) == 2
    assert capsys.readouterr().err.strip().endswith("nothere.json: no such file")
    path = FINDING.save(tmp_path / "f.json")
    assert main([str(path), "--trace", str(tmp_path / "no" / "t.vcd")]) == 2
    assert "folder" in capsys.readouterr().err
