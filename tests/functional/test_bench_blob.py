"""``python -m sim bench blob`` runs end to end and prints the ratio (figures, not asserts)."""

import pytest

from sim.cloud.azurite import find_azurite
from sim.tools.bench import blob as bench

pytestmark = pytest.mark.sim


@pytest.mark.parametrize(
    "argv", [["--size-mib", "0"], ["--chunk-kib", "0"], ["--repeat", "0"]], ids=str
)
def test_refuses_a_bad_option_naming_it(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    """A bad size, range size or repeat count exits 2 with the field's name."""
    assert bench.main(argv) == 2
    field = argv[0].removeprefix("--").replace("-", "_")
    assert field in capsys.readouterr().err


@pytest.mark.skipif(find_azurite()[0] is None, reason=find_azurite()[1])
def test_prints_throughput_and_ratio_for_both_modes(capsys: pytest.CaptureFixture) -> None:
    """A small run fetches the blob both ways from both servers and prints ours/azurite."""
    assert bench.main(["--size-mib", "1", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "ours/azurite" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split()}
    for mode in ("ranges", "whole"):
        assert len(rows[mode]) == 7  # mode, 2 x (best, median), 2 ratios
        assert all(float(value) > 0 for value in rows[mode][1:])
