"""Runs spread over Dask workers give the same findings as in one process (issue 11
"Work is partitioned deterministically"): a LocalCluster of 1 and of 2 workers, and
``--shard`` shares, over the same small campaign of a mutant that the explorer kills."""

import pytest

from sim.distribute import Engine, EngineConfig, chunks, parse_shard, shard
from sim.explore.campaign import Item
from sim.explore.mutants.kills import SMALL
from sim.explore.work import Setup, run_items

pytestmark = pytest.mark.sim

SETUP = Setup(base={**SMALL.to_dict(), "mutant": "no_sync"}, mutant="no_sync", full_sample=0.0)
ITEMS = [Item("sweep", "cut", index=i) for i in (1, 2, 4, 8, 16, 32, 64, 128, 256, 300)] + [
    Item("flash", "scenario", scenario={**SMALL.to_dict(), "image_size": 4096})
]


def _findings(outcomes):
    return [(i, o.violations) for i, o in enumerate(outcomes) if o.violations]


def test_chunks_and_shards_cover_every_item_once():
    items = list(range(23))
    assert sorted(x for part in chunks(items, 4) for x in part) == items
    assert sorted(x for i in range(3) for x in shard(items, i, 3)) == items
    assert parse_shard("1/4") == (1, 4)
    with pytest.raises(ValueError, match="i/n"):
        parse_shard("4/4")


def test_one_worker_two_workers_and_shards_find_the_same():
    with Engine(EngineConfig(workers=0)) as here:
        inline = here.map(run_items, ITEMS, SETUP)
    with Engine(EngineConfig(workers=1, chunks_per_worker=3)) as one:
        single = one.map(run_items, ITEMS, SETUP)
    with Engine(EngineConfig(workers=2, chunks_per_worker=3)) as two:
        double = two.map(run_items, ITEMS, SETUP)
    sharded = [run_items(shard(ITEMS, i, 2), SETUP) for i in range(2)]
    merged = [None] * len(ITEMS)
    for i in range(2):
        merged[i::2] = sharded[i]
    assert _findings(inline), "no_sync should be caught by late cuts"
    assert _findings(single) == _findings(double) == _findings(inline) == _findings(merged)
