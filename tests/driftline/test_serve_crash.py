"""`driftline serve` killed with SIGKILL mid-stream and restarted loses nothing and counts nothing
twice: its aggregates equal those of an uninterrupted run on the same input.

Both runs are real `driftline serve` subprocesses (each with its own data dir, so its own chDB
engine), fed over HTTP by the SDK; the aggregates are read back through the HTTP API.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from support.serve import free_port
from support.stream_data import labels_for, predictions, profile

from driftline import Publisher
from driftline.client import ApiClient
from driftline.publisher import send_record

EXE = Path(sys.executable).with_name("driftline")


def start(data_dir: Path, port: int) -> subprocess.Popen:
    env = dict(
        os.environ,
        DRIFTLINE_CHECKPOINT_INTERVAL_SECONDS="0.3",
        DRIFTLINE_ALLOWED_LATENESS_SECONDS="0",
    )
    log = open(data_dir.parent / f"{data_dir.name}-serve.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        [EXE, "serve", "--data-dir", str(data_dir), "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=log,
        stderr=log,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, (data_dir.parent / f"{data_dir.name}-serve.log").read_text()[
            -3000:
        ]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("driftline serve did not come up in 90 s")


def aggregates(url: str) -> dict:
    api = ApiClient(url)
    drift = api._call("GET", "/v1/models/churn/drift")
    alerts = api.alerts(limit=1000)
    return {
        "drift": sorted(map(repr, (sorted(r.items()) for r in drift["drift"]))),
        "dataset": sorted(map(repr, (sorted(r.items()) for r in drift["dataset_drift"]))),
        "performance": sorted(map(repr, (sorted(r.items()) for r in drift["performance"]))),
        "alerts": sorted(map(repr, (sorted(a.items()) for a in alerts))),
    }


def events_in(url: str) -> int:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("driftline_events_in_total{") and "predictions" in line
        )
    )


def publish_all(url: str, events: list[dict], labels: list[dict], pause: float = 0.0) -> None:
    """Publish in event-time order; ``pause`` seconds after every 150 events (so that the
    server can be killed mid-stream, after a checkpoint, however fast it ingests)."""
    pub = Publisher(url, batch_size=150, max_retries=60, backoff=0.05, timeout=10)
    by_time = sorted(
        [(e["timestamp"], 0, e) for e in events] + [(lb["timestamp"], 1, lb) for lb in labels],
        key=lambda t: (t[0], t[1]),
    )
    for i, (_, kind, r) in enumerate(by_time):
        send_record(pub, "predictions" if kind == 0 else "labels", r)
        if pause and i % 150 == 149:
            time.sleep(pause)
    pub.flush(wait=True)
    pub.close()


@pytest.mark.slow
def test_sigkill_mid_stream_then_restart_equals_uninterrupted_run(tmp_path) -> None:
    events = predictions(8, 400, drift_from=4, seed=21)
    labels = labels_for(events, every=2)
    prof = profile().to_json()

    # the uninterrupted run
    port = free_port()
    ref = start(tmp_path / "ref", port)
    url = f"http://127.0.0.1:{port}"
    try:
        ApiClient(url).register("churn", "1", prof)
        publish_all(url, events, labels)
        expected = aggregates(url)
    finally:
        ref.terminate()
        ref.wait(30)
    assert expected["drift"] and expected["alerts"] and expected["performance"]

    # the same input; the server is SIGKILLed while the publisher is mid-stream
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start(tmp_path / "run", port)
    try:
        ApiClient(url).register("churn", "1", prof)
        # paced so that a checkpoint (every 0.3 s, but at most 5% of the time: 19x its own
        # duration apart, ~1 s on a slow machine) falls well before the stream ends
        publisher = threading.Thread(target=publish_all, args=(url, events, labels, 0.15))
        publisher.start()
        deadline = time.monotonic() + 120
        while events_in(url) < len(events) // 3:
            assert time.monotonic() < deadline and publisher.is_alive()
            time.sleep(0.05)
        # killed once a checkpoint written since then covers part of the stream
        third_in = time.time()
        checkpoint = tmp_path / "run" / "runtime" / "checkpoint"
        while not checkpoint.exists() or checkpoint.stat().st_mtime <= third_in:
            assert time.monotonic() < deadline and publisher.is_alive()
            time.sleep(0.02)
    finally:  # (killed here in any case: a failed wait must not leave the server running)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    killed_at = len(events) // 3
    proc = start(tmp_path / "run", port)  # same data dir and port: resumes from its checkpoint
    try:
        publisher.join(180)
        assert not publisher.is_alive(), "the publisher did not finish after the restart"
        got = aggregates(url)
    finally:
        proc.terminate()
        proc.wait(30)
    restarted = (tmp_path / "run-serve.log").read_text(errors="replace")
    resumed = re.search(r"restored checkpoint at log position (\d+)", restarted)
    assert resumed and int(resumed.group(1)) > 0  # it resumed mid-stream, not started over
    assert killed_at < len(events)
    assert got == expected
