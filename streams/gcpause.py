"""The cyclic garbage collector, paused around batch work.

A batch allocates tens of thousands of short-lived (acyclic) objects — records,
rows, tuples — that reference counting frees, while the processors' state keeps
the heap large; automatic collections would walk young objects and, now and
then, that whole heap many times per batch. Both runtimes pause the collector
for a batch and run at most the one collection that came due meanwhile.

Which collection comes due follows CPython's own rule: the young generations by
their thresholds, the whole heap only when, besides its threshold, the heap has
grown by a quarter since the last full collection (CPython counts objects promoted to
the oldest generation against the ones already there; allocated memory blocks,
``sys.getallocatedblocks``, stand in for that count here). Without the second
condition a full collection would walk the whole heap every ~100 batches however
little of it changed.

Examples
--------
>>> import gc
>>> with gc_paused():
...     gc.isenabled()
False
>>> gc.isenabled()
True
"""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["FULL_COLLECTION_GROWTH", "collect_due_garbage", "gc_paused"]

FULL_COLLECTION_GROWTH = 1.25
"""Heap growth (allocated blocks) since the last full collection that makes the next one due."""

_allocated_blocks = sys.getallocatedblocks  # (replaceable in tests)
_lock = threading.Lock()
_blocks_after_full = 0  # allocated blocks right after the last full collection this module ran


def collect_due_garbage() -> int | None:
    """The collection automatic GC would have started during a pause, if any.

    Returns the generation collected (``None`` when none was due). Cyclic garbage is
    still collected: the young generations never later than one batch, the oldest once
    the heap has grown by ``FULL_COLLECTION_GROWTH`` since its last collection.
    """
    global _blocks_after_full
    t0, t1, t2 = gc.get_threshold()
    c0, c1, c2 = gc.get_count()
    if t0 <= 0 or c0 <= t0:
        return None
    generation = 1 if c1 > t1 else 0
    if c2 > t2:
        with _lock:
            if _allocated_blocks() > _blocks_after_full * FULL_COLLECTION_GROWTH:
                gc.collect(2)
                _blocks_after_full = _allocated_blocks()
                return 2
        generation = 1
    gc.collect(generation)
    return generation


@contextmanager
def gc_paused() -> Iterator[None]:
    """Automatic collection off inside the block, the due collection after it.

    Process-wide, like the collector itself. Re-entrant and safe across threads: only
    the block that found the collector on turns it back on, so it is never left off,
    and a collector that was off before stays off.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        collect_due_garbage()
