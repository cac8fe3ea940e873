"""``driftline demo``: the main job, end to end, on the embedded runtime.

A simulated prediction service: trains a small scikit-learn model on synthetic
tabular data, registers it with its reference profile, then publishes
predictions through the SDK (``driftline.Publisher``) to ``driftline serve``'s
HTTP API running in this process, over loopback. Halfway through, the world
changes: incomes rise, the sales channel mix shifts (data drift) and churn starts
to depend on tenure differently (concept drift: the model gets worse). Labels
arrive two hours (event time) after their predictions. A few malformed events are
sent on purpose. At the end it says when drift started, when each detector fired,
which alerts opened, and what went to the dead-letter table.

``driftline demo --files`` instead writes a reference and a current CSV with a
known drift and runs ``driftline drift compare`` on them.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HOUR_MS = 3_600_000
DRIFTED = ("income", "tenure_months", "channel")
CHANNELS = np.array(["web", "branch", "phone"], dtype=object)
REGIONS = np.array(["north", "south", "east", "west"], dtype=object)


# -- the synthetic world ----------------------------------------------------------------------


def customers(rng: np.random.Generator, n: int, drifted: bool) -> dict[str, np.ndarray]:
    """Customer features; ``drifted`` shifts income, tenure and the channel mix."""
    age = rng.normal(41, 12, n).clip(18, 90).round()
    income = rng.lognormal(10.6 + (0.35 if drifted else 0.0), 0.5, n)
    tenure = rng.gamma(2.0, 30.0 if drifted else 18.0, n).round()
    balance = rng.normal(2_500, 900, n)
    balance[rng.random(n) < 0.03] = np.nan
    channel = rng.choice(CHANNELS, n, p=[0.30, 0.30, 0.40] if drifted else [0.55, 0.30, 0.15])
    region = rng.choice(REGIONS, n)
    return {
        "age": age,
        "income": income,
        "tenure_months": tenure,
        "balance": balance,
        "channel": channel,
        "region": region,
    }


def churn_labels(
    rng: np.random.Generator, x: dict[str, np.ndarray], concept_shift: bool
) -> np.ndarray:
    """True churn; after the concept shift, long tenure no longer protects customers."""
    tenure_effect = 0.02 if concept_shift else -0.03
    logit = (
        -0.5
        + tenure_effect * (x["tenure_months"] - 36)
        - 0.8 * (np.log(x["income"]) - 10.6)
        + 0.02 * (x["age"] - 41)
        + np.where(x["channel"] == "phone", 0.8, 0.0)
    )
    return np.where(rng.random(logit.size) < 1 / (1 + np.exp(-logit)), "churn", "stay").astype(
        object
    )


def matrix(x: dict[str, np.ndarray]) -> np.ndarray:
    """Model inputs: numeric features (missing balance imputed) + one-hot channel."""
    balance = np.where(np.isnan(x["balance"]), 2_500.0, x["balance"])
    cols = [x["age"], np.log(x["income"]), x["tenure_months"], balance]
    cols += [(x["channel"] == c).astype(float) for c in CHANNELS]
    return np.column_stack(cols)


# -- the run ------------------------------------------------------------------------------------


@dataclass
class DemoResult:
    """What the demo measured (also used by its test)."""

    events: int
    onset_ms: int
    first_data_drift_ms: int | None
    first_concept_drift_ms: int | None
    alerts: dict[str, int]
    dead_letters: int
    rejected: int
    malformed_sent: int
    retrain_requests: int
    windows: int
    report: Path | None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(
    *,
    events: int = 60_000,
    seed: int = 7,
    hours: int = 48,
    data_dir: Path = Path(".driftline/demo"),
    quiet: bool = False,
) -> DemoResult:
    """Run the streaming demo; returns what it measured."""
    import uvicorn
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )
    from sklearn.linear_model import LogisticRegression

    from detectors.profile import ReferenceProfile
    from driftline.console import make_console
    from driftline.publisher import Publisher
    from driftline.settings import load_settings
    from schemas.topics import Topic
    from streams.api import create_app
    from streams.embedded import EmbeddedRuntime

    console = make_console()
    say = (lambda *a: None) if quiet else console.print
    rng = np.random.default_rng(seed)
    if data_dir.exists():
        shutil.rmtree(data_dir)  # the demo's own folder: start clean every time

    # 1. Train and register the model.
    train = customers(rng, 8_000, drifted=False)
    y = churn_labels(rng, train, concept_shift=False)
    model = LogisticRegression(max_iter=1_000).fit(matrix(train), y)
    accuracy = float((model.predict(matrix(train)) == y).mean())
    profile = ReferenceProfile.from_columns(
        train,
        prediction=model.predict(matrix(train)),
        model_name="churn",
        model_version="1",
        seed=seed,
    )
    say(
        f"[bold]driftline demo[/]: trained a logistic-regression churn model on 8,000 rows (accuracy {accuracy:.2f})"
    )

    settings = load_settings(
        data_dir=data_dir,
        api_host="127.0.0.1",
        api_port=_free_port(),
        window_seconds=3600,
        allowed_lateness_seconds=300,
        checkpoint_interval_seconds=2.0,
    )
    runtime = EmbeddedRuntime(settings).start()
    t_end = int(time.time() * 1000) // HOUR_MS * HOUR_MS
    t_start = t_end - hours * HOUR_MS
    onset = t_start + hours // 2 * HOUR_MS
    runtime.wait_for(
        runtime.publish(
            Topic.MODEL_EVENTS,
            [
                {
                    "event_id": "demo-churn-1",
                    "model_name": "churn",
                    "model_version": "1",
                    "event_type": "registered",
                    "timestamp": t_start,
                    "reference_profile": profile.to_json(),
                }
            ],
        )
    )

    # 2. Serve the HTTP API in this process (a thread), as `driftline serve` does.
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(runtime, settings),
            host="127.0.0.1",
            port=settings.api_port,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, name="driftline-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the demo's HTTP API did not start")
        time.sleep(0.05)
    url = f"http://127.0.0.1:{settings.api_port}"
    say(
        f"serving the API at {url} (data in {data_dir}/); publishing {events:,} predictions over {hours} h of event time"
    )

    # 3. The simulated service: predictions in event-time order, labels 2 h later, a drift halfway.
    times = np.sort(rng.integers(t_start, t_end, events))
    drifted = times >= onset
    x_old = customers(rng, events, drifted=False)
    x_new = customers(rng, events, drifted=True)
    x = {k: np.where(drifted, x_new[k], x_old[k]) for k in x_old}
    truth = np.where(drifted, churn_labels(rng, x, True), churn_labels(rng, x, False))
    predicted = model.predict(matrix(x))
    labelled = rng.random(events) < 0.6
    label_times = times + 2 * HOUR_MS
    order = np.argsort(label_times[labelled], kind="stable")
    label_idx = np.flatnonzero(labelled)[order]
    next_label = 0
    malformed = 0
    pub = Publisher(url)
    columns = list(x)
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet,
        transient=False,
    ) as progress:
        task = progress.add_task("publishing", total=events)
        for i in range(events):
            t = int(times[i])
            while next_label < label_idx.size and label_times[label_idx[next_label]] <= t:
                j = int(label_idx[next_label])
                pub.label(f"p{j}", "churn", str(truth[j]), timestamp=int(label_times[j]))
                next_label += 1
            features: dict[str, Any] = {c: x[c][i] for c in columns}
            pub.predict(
                "churn", "1", features, str(predicted[i]), prediction_id=f"p{i}", timestamp=t
            )
            if i % 5_000 == 2_500:  # a malformed event now and then: a text where a number belongs
                pub.predict(
                    "churn",
                    "1",
                    dict(features, age="forty"),
                    "stay",
                    prediction_id=f"bad{i}",
                    timestamp=t,
                )
                malformed += 1
            if i % 1_000 == 999:
                progress.update(task, completed=i + 1)
        report = pub.flush(wait=True)
        progress.update(task, completed=events)
    pub.close()

    # 4. End of the stream: close the open windows, then read the results back.
    runtime.flush()
    server.should_exit = True
    thread.join(timeout=10)
    stats = runtime.stats()
    store = runtime.store
    dataset = store.dataset_drift_series("churn", "1")
    drift_windows = [r["window_start"] for r in dataset if r["drift"]]
    concept = sorted(d["detected_at"] for d in store.detections("churn", kind="concept_drift"))
    concept_after = [t for t in concept if t >= onset]
    alerts: dict[str, int] = {}
    for a in store.alerts(model="churn", limit=10_000):
        alerts[a["kind"]] = alerts.get(a["kind"], 0) + 1
    report_path: Path | None = None
    try:
        from driftline.report import build_report

        report_path = data_dir / "report.html"
        report_path.write_text(build_report(store, "churn"), encoding="utf-8")
    except ImportError:  # pragma: no cover - the report module is part of the package
        report_path = None
    result = DemoResult(
        events=events,
        onset_ms=onset,
        first_data_drift_ms=min((w for w in drift_windows if w >= onset), default=None),
        first_concept_drift_ms=concept_after[0] if concept_after else None,
        alerts=alerts,
        dead_letters=store.dead_letter_count(),
        rejected=len(report.rejected),
        malformed_sent=malformed,
        retrain_requests=int(runtime.counters.get(f"out:{Topic.RETRAIN_REQUESTS.value}", 0)),
        windows=len(dataset),
        report=report_path,
    )
    runtime.stop()
    if not quiet:
        _summary(console, result, times, concept, drift_windows, stats)
    return result


def _summary(
    console: Any,
    r: DemoResult,
    times: np.ndarray,
    concept: list[int],
    drift_windows: list[int],
    stats: dict,
) -> None:
    from rich.table import Table

    def hours_after(t: int | None) -> str:
        return "never" if t is None else f"{(t - r.onset_ms) / HOUR_MS:+.1f} h"

    def events_after(t: int | None) -> str:
        return (
            "—" if t is None else f"{int(np.count_nonzero((times >= r.onset_ms) & (times < t))):,}"
        )

    table = Table(title="What driftline saw", title_justify="left")
    table.add_column("")
    table.add_column("event time vs. onset", justify="right")
    table.add_column("events after onset", justify="right")
    table.add_row("drift injected (data + concept)", "0.0 h", "0")
    first_window_end = None if r.first_data_drift_ms is None else r.first_data_drift_ms + HOUR_MS
    table.add_row(
        "data drift: first drifted window closed",
        hours_after(first_window_end),
        events_after(first_window_end),
    )
    table.add_row(
        "concept drift: ADWIN fired (label time)",
        hours_after(r.first_concept_drift_ms),
        events_after(r.first_concept_drift_ms),
    )
    false_alarms = [w for w in drift_windows if w < r.onset_ms] + [
        t for t in concept if t < r.onset_ms
    ]
    console.print(table)
    console.print(
        f"{r.windows} windows closed; alerts opened: "
        + (", ".join(f"{n} {k}" for k, n in sorted(r.alerts.items())) or "none")
        + f"; false alarms before onset: {len(false_alarms)}; retrain requests: {r.retrain_requests}"
    )
    console.print(
        f"dead letters: {r.dead_letters} — {r.malformed_sent} malformed events were sent on purpose "
        f"(a text where a number belongs: valid Avro, so accepted by the API, then dead-lettered by "
        f"the drift window with the feature named); rejected at the API: {r.rejected}; "
        f"duplicates dropped: {stats.get('duplicates', 0)}"
    )
    if r.report is not None:
        console.print(f"report: {r.report}  (open it in a browser)")


# -- `driftline demo --files` -------------------------------------------------------------------


def sample_frames(seed: int, rows: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Reference and current columns; the columns in ``DRIFTED`` drift, the rest do not."""
    rng = np.random.default_rng(seed)
    return customers(rng, rows, drifted=False), customers(rng, rows, drifted=True)


def write_csv(columns: dict[str, np.ndarray], path: Path) -> None:
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(columns).to_csv(path, index=False)


def run_files(
    *, seed: int = 7, rows: int = 20_000, out_dir: Path = Path(".driftline/demo-files")
) -> int:
    from driftline import compare
    from driftline.console import make_console

    console = make_console()
    reference, current = sample_frames(seed, rows)
    ref_path, cur_path = out_dir / "reference.csv", out_dir / "current.csv"
    write_csv(reference, ref_path)
    write_csv(current, cur_path)
    console.print(
        f"[bold]driftline demo --files[/]: {rows:,} reference rows and {rows:,} current rows in {out_dir}/; "
        f"drift injected in {', '.join(DRIFTED)}"
    )
    result = compare.run_compare(ref_path, cur_path)
    compare.render_table(result, str(ref_path), str(cur_path))
    found = {c.column for c in result.columns if c.drift}
    missed = set(DRIFTED) - found
    false_alarms = found - set(DRIFTED)
    console.print(
        f"Injected drift found in {len(set(DRIFTED) & found)} of {len(DRIFTED)} columns; "
        f"false alarms: {len(false_alarms)}"
        + (f" ({', '.join(sorted(false_alarms))})" if false_alarms else "")
        + (f"; missed: {', '.join(sorted(missed))}" if missed else "")
    )
    console.print(
        f"Try it yourself: driftline drift compare --reference {ref_path} --current {cur_path} --format json"
    )
    return 0
