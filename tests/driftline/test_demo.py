"""`driftline demo`: the main job end to end — SDK → HTTP API → embedded runtime → store → report.

The demo opens its own embedded ClickHouse (chDB allows one path per process), so it runs in
a subprocess, as `make demo` does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HOUR_MS = 3_600_000

SCRIPT = """
import dataclasses, json, sys
from pathlib import Path
from driftline import demo
r = demo.run(events=8_000, seed=3, hours=16, data_dir=Path(sys.argv[1]), quiet=True)
print(json.dumps(dataclasses.asdict(r), default=str))
"""


def test_streaming_demo_detects_the_injected_drift_and_nothing_before(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["windows"] == 16
    assert r["first_data_drift_ms"] is not None and r["first_data_drift_ms"] >= r["onset_ms"]
    assert r["first_data_drift_ms"] - r["onset_ms"] <= 2 * HOUR_MS  # within two windows
    assert r["first_concept_drift_ms"] is not None and r["first_concept_drift_ms"] >= r["onset_ms"]
    assert r["alerts"].get("data_drift", 0) >= 2 and r["alerts"].get("concept_drift", 0) >= 1
    assert r["dead_letters"] >= r["malformed_sent"] >= 1
    assert "plotly" in Path(r["report"]).read_text()


def test_make_demo_command_prints_the_summary(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("driftline")
    proc = subprocess.run(
        [exe, "demo", "--quick", "--events", "5000", "--data-dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (
        "What driftline saw" in proc.stdout
        and "data drift: first drifted window closed" in proc.stdout
    )
    assert "dead letters:" in proc.stdout and "report:" in proc.stdout
