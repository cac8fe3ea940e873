"""Benchmark: what the length of a merged run costs the Kafka worker's processors.

The worker merges a partition's input topics (``PartitionTask.release``) and hands the
processors each run of one topic as one batch (``PartitionTask.process``: decode, dedup,
windows, label join, ADWIN). A batch has a fixed cost, so how the merge cuts the stream
into runs matters: merged by the millisecond, live traffic (predictions and labels
appended in small producer batches, millisecond by millisecond) gives runs of a record or
two; merged by time buckets (``--merge-bucket-ms``), runs of a bucket's records.

The same events — 20-feature predictions of one model, one every 432 ms of event time
(bench_kafka's rate per model), and a label 10 min later for every other one — are fed
to ``PartitionTask.process`` in steps of 5,000 records (a busy worker takes up to
``--batch-size``, 50,000 by default, per step; fewer when less has arrived), in
merged orders of different run lengths; printed: µs per prediction, and the ratio
against the longest runs, measured in the same run (the baseline). No Kafka, no store:
the processors alone, in this process. The merge itself is measured by bench_kafka
(phase 3), end to end.

Run: ``.venv/bin/python benchmarks/bench_merge_runs.py [--predictions N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from typing import Any

from bench_embedded import make_events, model_event

from driftline.settings import load_settings
from schemas.codec import AvroCodec
from schemas.topics import Topic
from streams.embedded import processor_config
from streams.kafka_runtime import PartitionTask

T0 = 1_700_000_000_000
SPACING_MS = 432  # one model's predictions in bench_kafka: 50,000 over 6 hours
STEP = 5_000


def entries(n: int, codec: AvroCodec) -> list[tuple[int, int, int, Any, Any, bytes, bytes]]:
    """Queue entries of the predictions (undecoded, as the worker queues them) and labels
    (decoded), unordered: (time, rank, offset, record, failure, payload, key, topic)."""
    preds, labels = make_events(n, T0)
    out: list[Any] = []
    for i, p in enumerate(preds):
        p["timestamp"] = T0 + i * SPACING_MS
        out.append(
            (
                p["timestamp"],
                1,
                i,
                None,
                None,
                codec.encode("prediction", p),
                b"b",
                Topic.PREDICTIONS,
            )
        )
    for i, label in enumerate(labels):
        label["timestamp"] = int(label["prediction_id"][1:]) * SPACING_MS + T0 + 600_000
        payload = codec.encode("label", label)
        record = codec.decode_as("label", payload)
        out.append((label["timestamp"], 2, i, record, None, payload, b"b", Topic.LABELS))
    return out


def ordered(items: list[Any], bucket: int | None) -> list[tuple[Topic, tuple]]:
    """The merged order: by time (``bucket=None``: each record its own time, as live
    traffic merged by the millisecond), or by ``bucket`` predictions' worth of time."""
    if bucket is None:
        key = lambda e: (e[0], e[1], e[2])  # noqa: E731
    else:
        span = bucket * SPACING_MS
        key = lambda e: (e[0] - e[0] % span, e[1], e[2])  # noqa: E731
    return [(e[7], e[:7]) for e in sorted(items, key=key)]


def run_lengths(merged: list[tuple[Topic, tuple]]) -> float:
    runs = sum(1 for i in range(len(merged)) if i == 0 or merged[i][0] is not merged[i - 1][0])
    return len(merged) / runs


def timed(merged: list[tuple[Topic, tuple]], codec: AvroCodec) -> float:
    """Seconds to process ``merged`` in steps, from a fresh task."""
    config = processor_config(load_settings(data_dir=tempfile.mkdtemp()))
    task = PartitionTask(0, config, {})
    registration = (T0, 0, 0, model_event(T0), None, b"m", None)
    task.process([(Topic.MODEL_EVENTS, registration)], defaultdict(list), [], codec)
    started = time.perf_counter()
    for lo in range(0, len(merged), STEP):
        task.process(merged[lo : lo + STEP], defaultdict(list), [], codec)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--predictions", type=int, default=20_000, help="predictions (default 20000)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="best of (default 3)")
    args = parser.parse_args()
    if args.predictions < 2 or args.repeat < 1:
        parser.error("--predictions must be at least 2 and --repeat at least 1")
    codec = AvroCodec()
    items = entries(args.predictions, codec)
    cases = [
        ("by the ms (each record its own time)", None),
        *[(f"runs of {b} predictions' time", b) for b in (3, 10, 30, 100, 300, 1000)],
    ]
    results = []
    for label, bucket in cases:
        merged = ordered(items, bucket)
        best = min(timed(merged, codec) for _ in range(args.repeat))
        results.append((label, run_lengths(merged), best / args.predictions * 1e6))
    base = results[-1][2]
    print(
        f"# PartitionTask.process over {args.predictions:,} 20-feature predictions + "
        f"{args.predictions // 2:,} labels, steps of {STEP:,} records, best of {args.repeat}"
    )
    print(f"{'merged order':<40}{'records per run':>16}{'us / prediction':>17}{'vs longest':>12}")
    for label, length, us in results:
        print(f"{label:<40}{length:>16.1f}{us:>17.1f}{us / base:>11.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
