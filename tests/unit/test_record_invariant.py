"""Invariant 8, readable record (the hardening issue's "the progress record is readable
after every cut", sim/explore/invariants.py): judged on hand-made records of what each
boot found, and the look itself, which never touches the chip through its SPI port."""

import re

import pytest

from agent.flash import SpiFlash
from agent.record import Record, save_record
from agent.staging import OTA_DIR, RECORD_PATH
from agent.storage import Storage
from sim.chip.w25q128 import W25Q128
from sim.clock import VirtualClock
from sim.cloud.blobserver import BlobServer
from sim.explore.explorers import Explorer
from sim.explore.invariants import INVARIANTS, RECORD, check_all, record_readable
from sim.explore.mutants import MUTANTS
from sim.explore.records import look
from sim.explore.result import FsCheck, RecordCheck, ScenarioResult
from sim.explore.scenario import Scenario
from sim.ports.model import SimSpiPort

pytestmark = pytest.mark.sim


def result(*checks: RecordCheck, before: bool = False) -> ScenarioResult:
    return ScenarioResult(
        scenario=Scenario(),
        images={},
        reached=True,
        boots=len(checks),
        cuts_fired=max(0, len(checks) - 1),
        device_time_s=1.0,
        reports=[],
        boot_marks=[],
        final_reported={},
        installs=[],
        target_version=2,
        target_sha256="",
        requests=[],
        faulted_requests=0,
        fs=FsCheck(True, False, None, {}),
        record_checks=list(checks),
        record_before=before,
    )


def test_records_readable_at_every_look_hold():
    ok = result(RecordCheck(1, True, True), RecordCheck(2, True, True))
    assert record_readable(ok) == []


def test_no_record_ever_is_fine():
    """An agent keeping no record at the project's path (or a blank chip) breaks nothing."""
    assert record_readable(result(RecordCheck(1, True, False), RecordCheck(2, True, False))) == []


def test_an_unreadable_record_is_a_violation_naming_the_boot_and_why():
    broken = result(RecordCheck(1, True, True), RecordCheck(2, False, False, "not JSON"))
    (violation,) = record_readable(broken)
    assert violation.invariant == RECORD
    assert "boot 2" in violation.message and "not JSON" in violation.message


def test_a_record_gone_after_one_was_seen_is_lost():
    lost = result(RecordCheck(1, True, True), RecordCheck(2, True, False))
    (violation,) = record_readable(lost)
    assert "gone" in violation.message and "boot 2" in violation.message


def test_a_record_gone_after_one_was_on_flash_before_the_run_is_lost():
    """A cut run's only look is after its cut; the clean run had a record before it."""
    assert record_readable(result(RecordCheck(1, True, False), before=True))
    assert record_readable(result(RecordCheck(1, True, False), before=False)) == []


def test_the_look_costs_no_device_time_and_no_spi_command():
    clock = VirtualClock()
    chip = W25Q128(clock)
    storage = Storage.mount(SpiFlash(SimSpiPort(chip, frequency=8e6), clock))
    storage.makedirs(OTA_DIR)
    save_record(storage, Record(installed_version=3), RECORD_PATH)
    storage.unmount()
    ops, now = dict(chip.counters.ops), clock.monotonic()
    assert look(5, array=chip.array) == RecordCheck(5, True, True)
    assert dict(chip.counters.ops) == ops and clock.monotonic() == now


def test_check_all_judges_by_the_named_invariants_only():
    broken = result(RecordCheck(1, True, True), RecordCheck(2, False, False, "not JSON"))
    assert RECORD in {v.invariant for v in check_all(broken)}
    assert [v.invariant for v in check_all(broken, {RECORD})] == [RECORD]
    assert RECORD not in {v.invariant for v in check_all(broken, set(INVARIANTS) - {RECORD})}


@pytest.mark.parametrize(
    ("names", "named"),
    [
        ({"readable-recrod"}, "unknown invariant(s) 'readable-recrod'; known: integrity"),
        ("readable-record", "a collection of names, got the string"),
    ],
)
def test_an_unknown_invariant_name_is_refused_naming_it(names, named):
    with pytest.raises(ValueError, match=re.escape(named)):
        check_all(result(), names)
    with pytest.raises(ValueError, match=re.escape(named)):
        Explorer(Scenario(), invariants=names)


async def test_an_explorer_without_readable_record_lets_a_record_of_another_format_pass():
    """An agent keeping a record of its own format at this project's path (here: the
    record_in_place mutant's empty file after a cut) is judged by the other invariants."""
    kill = MUTANTS["record_in_place"].kill
    assert kill.explore is not None

    async def invariants_broken(names):
        async with BlobServer() as server:
            factory = MUTANTS["record_in_place"].factory()
            explorer = Explorer(kill.explore, server, agent_factory=factory, invariants=names)
            await explorer.prepare()
            found = await explorer.explore("linear", max_runs=kill.last)
        return {v.invariant for f in found.findings for v in f.violations}

    assert RECORD in await invariants_broken(None)
    assert await invariants_broken(set(INVARIANTS) - {RECORD}) == set()


def test_the_plugins_explorer_fixture_takes_the_invariants_to_check(explorer):
    assert explorer(image_size=4096, invariants={RECORD, "integrity"}).invariants == (
        "integrity",
        RECORD,
    )
    assert explorer(image_size=4096).invariants is None
