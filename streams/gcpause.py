"""The cyclic garbage collector, paused around batch work.

A batch allocates tens of thousands of short-lived (acyclic) objects — records,
rows, tuples — that reference counting frees, while the processors' state keeps
the heap large; automatic collections would walk young objects and, now and
then, that whole heap many times per batch. Both runtimes pause the collector
for a batch and run at most the one collection that came due meanwhile.

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
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collect_due_garbage", "gc_paused"]


def collect_due_garbage() -> None:
    """The collection automatic GC would have started during a pause, if any.

    Same generation choice as CPython's (a generation is collected when its count passes
    its threshold), so cyclic garbage is still collected, and never later than one batch.
    """
    t0, t1, t2 = gc.get_threshold()
    c0, c1, c2 = gc.get_count()
    if t0 <= 0 or c0 <= t0:
        return
    gc.collect(2 if c2 > t2 else 1 if c1 > t1 else 0)


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
