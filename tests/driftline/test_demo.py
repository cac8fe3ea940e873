"""`driftline demo`: the main job end to end — SDK → HTTP API → embedded runtime → store → report."""

from __future__ import annotations

from driftline import demo


def test_streaming_demo_detects_the_injected_drift_and_nothing_before(tmp_path) -> None:
    r = demo.run(events=8_000, seed=3, hours=16, data_dir=tmp_path / "demo", quiet=True)
    assert r.windows == 16
    assert r.first_data_drift_ms is not None and r.first_data_drift_ms >= r.onset_ms
    assert r.first_data_drift_ms - r.onset_ms <= 2 * demo.HOUR_MS  # within two windows
    assert r.first_concept_drift_ms is not None and r.first_concept_drift_ms >= r.onset_ms
    assert r.alerts.get("data_drift", 0) >= 2 and r.alerts.get("concept_drift", 0) >= 1
    assert r.dead_letters >= r.malformed_sent >= 1
    assert r.report is not None and "plotly" in r.report.read_text()
