"""The ota_hil pytest plugin as another team meets it: options, markers, fixtures (issue 13).

Each test runs pytest on a small test file in a fresh directory (pytester), which imports
nothing from this repository's tests: only the plugin, loaded from the package's entry point.
"""

import pytest

pytestmark = pytest.mark.sim

RIG = """
[rig]
name = "no-cut"
[ftdi]
url = "ftdi://ftdi:232h/1"
virtual = true
[gpio]
wp = 9
[capabilities]
write_protect = true
"""


@pytest.fixture(autouse=True)
def _quiet_asyncio(pytester: pytest.Pytester) -> None:
    """The inner runs' own ini: pytest-asyncio warns without a loop scope."""
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")


GATED = """
import pytest

@pytest.fixture(params=[pytest.param("sim", marks=pytest.mark.sim),
                        pytest.param("hil", marks=pytest.mark.hil)])
def where(request):
    return request.param

@pytest.mark.needs_power_cut
def test_cuts(where):
    assert where in ("sim", "hil")

@pytest.mark.needs_write_protect
def test_protects(where):
    assert where in ("sim", "hil")
"""


def test_a_missing_rig_file_is_one_usage_error_naming_it(pytester: pytest.Pytester) -> None:
    """A missing ``--rig`` file stops pytest once at configure time (exit 4), not once per
    bench test, and names the file."""
    pytester.makepyfile(test_a="import pytest\n@pytest.mark.hil\ndef test_x(): pass\n")
    result = pytester.runpytest("--rig", "nowhere.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.startswith("ERROR")]
    assert errors == ["ERROR: --rig: nowhere.toml: cannot read rig file: No such file or directory"]
    assert "Traceback" not in result.stderr.str()


def test_an_invalid_rig_names_the_key(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", rig=RIG.replace("[gpio]", "[spi]\nmode = 2\n[gpio]"))
    pytester.makepyfile(test_a="def test_x(): pass\n")
    result = pytester.runpytest("--rig", "rig.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --rig: rig.toml: [[]spi[]] mode: 2: *"])


def test_capability_markers_skip_bench_tests_at_collection_with_the_rigs_reason(
    pytester: pytest.Pytester,
) -> None:
    """On a rig without ``power_cut`` the bench variant of a ``needs_power_cut`` test is
    skipped with the rig's reason; the simulator variant and the capability the rig has run."""
    pytester.makefile(".toml", rig=RIG)
    pytester.makepyfile(test_gated=GATED)
    result = pytester.runpytest("--rig", "rig.toml", "-rs", "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK
    result = pytester.runpytest("--rig", "rig.toml", "-rs")
    result.assert_outcomes(passed=3, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "SKIPPED [[]1[]] test_gated.py:*: rig 'no-cut' (rig.toml) does not declare "
            "[[]capabilities[]] power_cut"
        ]
    )
    result = pytester.runpytest("--rig", "rig.toml", "-v")
    result.stdout.fnmatch_lines(
        ["*test_cuts?hil? SKIPPED*", "*test_protects?hil? PASSED*"], consecutive=False
    )


def test_without_a_rig_every_bench_test_skips_with_one_folded_reason(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_gated=GATED)
    result = pytester.runpytest("-p", "no:randomly", "-rs", "-m", "hil")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["SKIPPED [[]2[]] *no bench rig configured: run with --rig*"])


def test_an_unknown_capability_marker_is_refused_under_strict_markers(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_a="import pytest\n@pytest.mark.needs_teleport\ndef test_x(): pass\n")
    result = pytester.runpytest("--strict-markers")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*'needs_teleport' not found in `markers`*"])


FIXTURES = """
import asyncio, hashlib, random
from sim.cloud.twin import publish_ota
from sim.device import applied

def test_chip(w25q128, w25q128_port):
    assert w25q128_port.exchange(b"\\x9f", 3) == b"\\xef\\x40\\x18"
    assert w25q128.clock.monotonic() > 0

def test_ota_on_the_plugins_device_and_server(sim_device, blob_server):
    image = random.Random(7).randbytes(20000)
    blob_server.put_blob("ota", "fw.bin", image)
    publish_ota(sim_device.twin, version=2, image=image,
                url=blob_server.blob_url("ota", "fw.bin"), sas=blob_server.make_sas("ota"))
    done = asyncio.run(sim_device.run_until(applied(2)))
    assert done.reached
    assert hashlib.sha256(bytes(sim_device.target.image)).digest() == hashlib.sha256(image).digest()
    assert any(e.blob == "ota/fw.bin" for e in blob_server.events)

def test_hub(hub):
    hub.add_device("gw-1")
    assert list(hub) == ["gw-1"]

def test_explorer_on_the_default_agent(explorer):
    ex = explorer(image_size=8192, checkpoint_bytes=4096)
    found = asyncio.run(ex.explore("log", max_runs=3))
    assert found.runs == 3 and not found.findings
"""


def test_fixtures_work_in_a_file_that_imports_nothing_from_this_repositorys_tests(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_fixtures=FIXTURES)
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
