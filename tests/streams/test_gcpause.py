"""The collector pause of both runtimes: due collections run, full ones only on heap growth."""

from __future__ import annotations

import gc
import weakref

import pytest

from streams import gcpause


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def collector():
    """Real thresholds restored afterwards; tiny ones make every collection due."""
    saved = gc.get_threshold()
    gc.collect()
    gc.set_threshold(1, 1, 1)
    try:
        yield
    finally:
        gc.set_threshold(*saved)
        gc.enable()


def cycle() -> weakref.ref:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_the_pause_turns_the_collector_off_and_collects_cycles_made_inside_it(collector):
    with gcpause.gc_paused():
        assert not gc.isenabled()
        ref = cycle()
        assert ref() is not None  # no collection inside the pause
    assert gc.isenabled()
    assert ref() is None  # the due young collection ran after it


def test_nested_pauses_leave_the_collector_on_only_at_the_outermost(collector):
    with gcpause.gc_paused():
        with gcpause.gc_paused():
            pass
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    with gcpause.gc_paused():
        pass
    assert not gc.isenabled()  # off before: stays off


def test_nothing_is_collected_when_nothing_is_due(collector):
    gc.set_threshold(10**9, 10, 10)
    gc.disable()
    ref = cycle()
    assert gcpause.collect_due_garbage() is None
    assert ref() is not None
    gc.collect()


def test_the_whole_heap_is_collected_only_once_it_grew_by_a_quarter(collector, monkeypatch):
    blocks = {"now": 1_000_000}
    monkeypatch.setattr(gcpause, "_allocated_blocks", lambda: blocks["now"])
    monkeypatch.setattr(gcpause, "_blocks_after_full", 1_000_000)
    gc.disable()
    a, b = Node(), Node()
    a.other, b.other = b, a
    old = weakref.ref(a)
    gc.collect(1)  # the live cycle is promoted to the oldest generation ...
    del a, b  # ... and only then becomes garbage: only a full collection frees it
    gc.collect(1)
    gc.collect(1)  # the oldest generation's count (2) is over its threshold (1)

    def due() -> int | None:
        gc.collect(0)
        gc.collect(0)  # generation 1's count over its threshold too
        _ = [Node() for _ in range(3)]  # and generation 0's
        return gcpause.collect_due_garbage()

    assert gc.get_count()[2] > 1
    assert due() == 1  # the heap has not grown: a young collection only
    assert old() is not None
    blocks["now"] = 1_200_000  # +20%: still not
    assert due() == 1
    assert old() is not None
    blocks["now"] = 1_260_000  # +26%: the full collection frees the old cycle
    assert due() == 2
    assert old() is None
    assert gcpause._blocks_after_full == 1_260_000


def test_the_young_threshold_is_raised_and_restored_unless_changed_meanwhile(collector):
    gc.set_threshold(700, 10, 10)
    restore = gcpause.raise_young_threshold(50_000)
    assert gc.get_threshold() == (50_000, 10, 10)
    restore()
    assert gc.get_threshold() == (700, 10, 10)
    restore = gcpause.raise_young_threshold(50_000)
    gc.set_threshold(1_000, 5, 5)  # somebody else's setting: left alone
    restore()
    assert gc.get_threshold() == (1_000, 5, 5)
    assert gcpause.raise_young_threshold(500)() is None  # never lowered
    assert gc.get_threshold() == (1_000, 5, 5)
    gcpause.raise_young_threshold(0)
    assert gc.get_threshold() == (1_000, 5, 5)


def test_a_running_runtime_holds_the_raised_threshold(
    collector, tmp_path, chdb_client, ch_database
):
    from driftline.settings import load_settings
    from streams.embedded import EmbeddedRuntime
    from streams.store import ClickHouseStore

    gc.set_threshold(700, 10, 10)
    store = ClickHouseStore(chdb_client, database=ch_database)
    store.migrate()
    rt = EmbeddedRuntime(load_settings(data_dir=tmp_path, gc_young_threshold=40_000), store=store)
    rt.start()
    assert gc.get_threshold() == (40_000, 10, 10)
    rt.stop()
    assert gc.get_threshold() == (700, 10, 10)
