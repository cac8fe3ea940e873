"""CPU time of another process, for the benchmarks' CPU-per-event lines."""

from __future__ import annotations

import os


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (``/proc/<pid>/stat``; NaN if
    unavailable): less disturbed by the rest of a busy machine than a rate is."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
