"""Tests of driftline/report.py: the HTML report, on a real store (chDB) and in real Chromium.

The data is synthetic but shaped like what the processors emit: 12 hourly windows of drift
metrics for three features and the model output (PSI of ``income`` rises from window 6 on,
``city``'s Jensen-Shannon distance crosses its threshold in the last two windows, so those
two windows are dataset drift), dataset summaries, accuracy and F1 that drop after an
ADWIN concept-drift detection, and alerts written revision by revision with the
responders' acknowledgements.

The rendering test opens the report in Debian's headless Chromium (``/usr/bin/chromium``,
installed by ``make test``), driven by Playwright, twice: as it is, and stripped of its
scripts. The screenshot is taken once the page says that every chart is drawn (the report
sets ``<html data-charts-drawn="N">`` when all its ``Plotly.newPlot`` promises resolved),
however slow the machine; what differs from the script-less one is what plotly drew. It
also checks the DOM after the scripts ran, that the page requested nothing but itself and
that no script failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from driftline.errors import UsageError
from driftline.report import ReportError, add_report_parser, build_report, parse_time
from schemas.codec import DecodeError, dead_letter_record
from schemas.topics import DATASET_FEATURE, PREDICTION_FEATURE, Topic
from streams.store import ClickHouseStore

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, ViewportSize

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
T0 = 1_717_200_000_000  # 2024-06-01 00:00 UTC
HOUR = 3_600_000
MINUTE = 60_000
WINDOWS = 12
MODEL, VERSION = "churn", "3"
FEATURES = ("age", "income", "city")

# PSI of each monitored column per window: income drifts from window 7 on.
PSI = {
    "age": [0.021, 0.018, 0.025, 0.019, 0.023, 0.027, 0.022, 0.020, 0.026, 0.024, 0.021, 0.028],
    "income": [0.031, 0.029, 0.036, 0.041, 0.038, 0.092, 0.161, 0.243, 0.314, 0.381, 0.426, 0.471],
    "city": [0.012, 0.015, 0.011, 0.014, 0.016, 0.013, 0.018, 0.022, 0.035, 0.061, 0.118, 0.142],
    PREDICTION_FEATURE: [
        0.015,
        0.017,
        0.016,
        0.019,
        0.018,
        0.041,
        0.072,
        0.103,
        0.121,
        0.135,
        0.148,
        0.159,
    ],
}
CITY_JS = [0.031, 0.034, 0.029, 0.033, 0.036, 0.032, 0.041, 0.048, 0.063, 0.081, 0.118, 0.134]
ACCURACY = [0.912, 0.918, 0.905, 0.915, 0.921, 0.903, 0.894, 0.842, 0.803, 0.781, 0.772, 0.764]
CONCEPT_AT = T0 + 7 * HOUR + 20 * MINUTE

INCOME_ALERT = "a1f0c3d2e4b5a6978877665544332211"
CONCEPT_ALERT = "b2e1d4c3f5a6b7c8d9e0f1a2b3c4d5e6"
PREDICTION_ALERT = "c3d2e5f4a6b7c8d9e0f1a2b3c4d5e6f7"
CITY_ALERT = "d4e3f6a5b7c8d9e0f1a2b3c4d5e6f7a8"


# --------------------------------------------------------------------------- data


def _metric(window: int, feature: str, metric: str, value: float, **fields: Any) -> dict[str, Any]:
    start = T0 + window * HOUR
    return {
        "metric_id": f"{MODEL}-{VERSION}-{window}-{feature}-{metric}",
        "model_name": MODEL,
        "model_version": VERSION,
        "window_start": start,
        "window_end": start + HOUR,
        "feature": feature,
        "metric": metric,
        "value": float(value),
        "pvalue": None,
        "threshold": 0.2,
        "drift": False,
        "primary": False,
        "n_reference": 20_000,
        "n_current": 4_800 + 37 * window,
        "missing_rate": 0.004,
        "out_of_range_rate": 0.0,
        "late_events": 0,
        "segment": None,
        **fields,
    }


def drift_metrics() -> list[dict[str, Any]]:
    rng = np.random.default_rng(7)
    rows = []
    for w in range(WINDOWS):
        for feature in ("age", "income", PREDICTION_FEATURE):
            psi = PSI[feature][w]
            ks = 0.02 + psi / 4 + rng.uniform(0, 0.004)
            rows += [
                _metric(w, feature, "psi", psi, drift=psi > 0.2, primary=True),
                _metric(
                    w,
                    feature,
                    "ks",
                    ks,
                    pvalue=float(np.exp(-ks * 90)),
                    threshold=0.1,
                    drift=ks > 0.1,
                ),
                _metric(w, feature, "jensenshannon", psi / 3, threshold=0.1, drift=psi / 3 > 0.1),
                _metric(w, feature, "wasserstein", psi / 2.5, threshold=0.1, drift=psi > 0.25),
            ]
        psi, js = PSI["city"][w], CITY_JS[w]
        chi2 = 12.0 + 900 * psi
        rows += [
            _metric(w, "city", "psi", psi, drift=psi > 0.2),
            _metric(w, "city", "chi2", chi2, pvalue=float(np.exp(-chi2 / 20)), threshold=0.05),
            _metric(
                w, "city", "cramers_v", js * 0.8, pvalue=float(np.exp(-chi2 / 20)), threshold=0.1
            ),
            _metric(w, "city", "jensenshannon", js, threshold=0.1, drift=js > 0.1, primary=True),
        ]
        drifted = (PSI["age"][w] > 0.2) + (PSI["income"][w] > 0.2) + (js > 0.1)
        rows.append(
            _metric(
                w,
                DATASET_FEATURE,
                "share_drifted",
                drifted / 3,
                threshold=0.5,
                drift=drifted / 3 >= 0.5,
                primary=True,
                n_reference=0,
                missing_rate=0.0,
                late_events=3 if w == 4 else 0,
            )
        )
    return rows


def performance_metrics() -> list[dict[str, Any]]:
    rows = []
    for w, accuracy in enumerate(ACCURACY):
        start = T0 + w * HOUR
        for metric, value in (("accuracy", accuracy), ("f1", accuracy - 0.043)):
            rows.append(
                {
                    "metric_id": f"{MODEL}-{VERSION}-{w}-{metric}",
                    "model_name": MODEL,
                    "model_version": VERSION,
                    "window_start": start,
                    "window_end": start + HOUR,
                    "metric": metric,
                    "value": value,
                    "n_labels": 1_150 + 11 * w,
                }
            )
    return rows


def detections() -> list[dict[str, Any]]:
    return [
        {
            "detection_id": "det-concept-1",
            "model_name": MODEL,
            "model_version": VERSION,
            "kind": "concept_drift",
            "detector": "adwin",
            "feature": None,
            "detected_at": CONCEPT_AT,
            "value": 0.31,
            "threshold": None,
            "severity": "critical",
            "details": {"joined_labels": "8412", "task": "classification"},
        }
    ]


def _alert(alert_id: str, revision: int, state: str, updated_at: int, **fields: Any) -> dict:
    return {
        "alert_id": alert_id,
        "model_name": MODEL,
        "model_version": VERSION,
        "state": state,
        "updated_at": updated_at,
        "revision": revision,
        "severity": "warning",
        "occurrences": revision,
        "acknowledged_by": None,
        "resolved_by": None,
        "note": None,
        **fields,
    }


def alert_revisions() -> list[list[dict[str, Any]]]:
    """Batches of alert revisions, in the order the alert lifecycle would emit them."""
    income = {
        "kind": "data_drift",
        "feature": "income",
        "opened_at": T0 + 8 * HOUR,
        "threshold": 0.2,
    }
    concept = {
        "kind": "concept_drift",
        "feature": None,
        "opened_at": CONCEPT_AT,
        "threshold": None,
        "severity": "critical",
        "value": 0.31,
    }
    prediction = {
        "kind": "prediction_drift",
        "feature": PREDICTION_FEATURE,
        "opened_at": T0 + 3 * HOUR,
        "threshold": 0.1,
        "value": 0.12,
    }
    city = {"kind": "data_drift", "feature": "city", "opened_at": T0 + 11 * HOUR, "threshold": 0.1}
    return [
        [
            _alert(
                PREDICTION_ALERT,
                1,
                "open",
                T0 + 3 * HOUR,
                **prediction,
                message="prediction drift: PSI 0.12 > 0.1",
            )
        ],
        [
            _alert(
                PREDICTION_ALERT,
                2,
                "resolved",
                T0 + 6 * HOUR,
                **prediction,
                resolved_by="auto",
                message="prediction drift: PSI 0.12 > 0.1; resolved after 3 clean windows",
            ),
            _alert(
                CONCEPT_ALERT, 1, "open", CONCEPT_AT, **concept, message="ADWIN: mean loss 0.31"
            ),
        ],
        [
            _alert(
                CONCEPT_ALERT,
                2,
                "acknowledged",
                CONCEPT_AT + 25 * MINUTE,
                **concept,
                acknowledged_by="bo",
                message="ADWIN: mean loss 0.31; acknowledged by bo",
            ),
            _alert(
                INCOME_ALERT,
                1,
                "open",
                T0 + 8 * HOUR,
                **income,
                value=0.243,
                message="data drift on income: PSI 0.243 > 0.2",
            ),
        ],
        [
            _alert(
                CONCEPT_ALERT,
                3,
                "resolved",
                T0 + 9 * HOUR + 30 * MINUTE,
                **concept,
                acknowledged_by="bo",
                resolved_by="bo",
                note="rolled back the feature pipeline",
                message="ADWIN: mean loss 0.31; resolved by bo",
            ),
            _alert(
                INCOME_ALERT,
                2,
                "open",
                T0 + 10 * HOUR,
                **{**income, "severity": "critical"},
                value=0.381,
                message="data drift on income: PSI 0.381 > 0.2; severity raised to critical",
            ),
        ],
        [
            _alert(
                INCOME_ALERT,
                3,
                "acknowledged",
                T0 + 10 * HOUR + 15 * MINUTE,
                **{**income, "severity": "critical"},
                value=0.381,
                acknowledged_by="ana",
                note="retrain requested",
                message="data drift on income: PSI 0.381 > 0.2; acknowledged by ana",
            ),
            _alert(
                CITY_ALERT,
                1,
                "open",
                T0 + 11 * HOUR,
                **city,
                value=0.118,
                message="data drift on city: jensenshannon 0.118 > 0.1",
            ),
        ],
    ]


def alert_acks() -> list[dict[str, Any]]:
    return [
        {
            "alert_id": CONCEPT_ALERT,
            "action": "acknowledge",
            "actor": "bo",
            "timestamp": CONCEPT_AT + 25 * MINUTE,
        },
        {
            "alert_id": CONCEPT_ALERT,
            "action": "resolve",
            "actor": "bo",
            "timestamp": T0 + 9 * HOUR + 30 * MINUTE,
            "note": "rolled back the feature pipeline",
        },
        {
            "alert_id": INCOME_ALERT,
            "action": "acknowledge",
            "actor": "ana",
            "timestamp": T0 + 10 * HOUR + 15 * MINUTE,
            "note": "retrain requested",
        },
    ]


def model_events() -> list[dict[str, Any]]:
    return [
        {
            "event_id": "ev-churn-3",
            "model_name": MODEL,
            "model_version": VERSION,
            "event_type": "registered",
            "timestamp": T0 - HOUR,
        },
        {
            "event_id": "ev-fraud-1",
            "model_name": "fraud",
            "model_version": "1",
            "event_type": "registered",
            "timestamp": T0,
        },
    ]


def dead_letters() -> list[dict[str, Any]]:
    return [
        dead_letter_record("driftline.predictions", b"\xc3\x01garbage", DecodeError("truncated")),
        dead_letter_record("driftline.labels", b"{not avro", DecodeError("bad magic")),
    ]


def fill(store: ClickHouseStore) -> None:
    store.write(Topic.MODEL_EVENTS, model_events())
    store.write(Topic.DRIFT_METRICS, drift_metrics())
    store.write(Topic.PERFORMANCE_METRICS, performance_metrics())
    store.write(Topic.DRIFT_DETECTIONS, detections())
    for batch in alert_revisions():
        store.write(Topic.ALERTS, batch)
    store.write(Topic.ALERT_ACKS, alert_acks())
    store.write(Topic.DEAD_LETTERS, dead_letters())


@pytest.fixture
def store(chdb_client: Any, ch_database: str) -> ClickHouseStore:
    store = ClickHouseStore(chdb_client, database=ch_database)
    store.migrate()
    fill(store)
    return store


@pytest.fixture
def report(store: ClickHouseStore) -> str:
    return build_report(store, MODEL)


# --------------------------------------------------------------------------- content


def external_references(text: str) -> list[str]:
    """``src``/``href`` of script, link, img, iframe... that point at http(s) or //host."""
    found = re.findall(
        r"<(?:script|link|img|iframe|source|embed|object)\b[^>]*?\b(?:src|href|data)\s*=\s*"
        r"[\"']?\s*((?:https?:)?//[^\"'\s>]+)",
        text,
        flags=re.IGNORECASE,
    )
    found += re.findall(r"@import\s+(?:url\()?[\"']?(?:https?:)?//", text, flags=re.IGNORECASE)
    return found


def test_report_is_self_contained_and_names_everything(report: str) -> None:
    assert report.startswith("<!DOCTYPE html>")
    assert external_references(report) == []
    # plotly.js inlined exactly once, before the first chart
    assert report.count("<script") >= 5
    assert len(re.findall(r"<script[^>]*\bsrc=", report)) == 0
    bundle = report.find("plotly.js v")
    assert bundle != -1 and report.count("plotly.js v") == 1
    assert bundle < report.find('id="psi-chart"')
    assert 3_000_000 < len(report) < 8_000_000

    # title: model, version, range
    title = re.search(r"<header>(.*?)</header>", report, re.S)
    assert title is not None
    assert "churn" in title.group(1) and "version <b>3</b>" in title.group(1)
    assert "2024-06-01 00:00 UTC → 2024-06-01 12:00 UTC" in title.group(1)

    # every feature, in the charts' data and in the latest-window table
    latest = report[report.index('id="latest-window"') :]
    for feature in FEATURES:
        assert f'"name":"{feature}"' in report
        assert f"<b>{feature}</b>" in latest
    assert "prediction (model output)" in latest

    # the alerts: table rows with their state and who acted
    alerts = report[report.index('id="alerts"') : report.index('id="latest-window"')]
    assert "data drift on income: PSI 0.381 &gt; 0.2; acknowledged by ana" in alerts
    assert INCOME_ALERT[:12] in alerts and CITY_ALERT[:12] in alerts
    assert "ana, 2024-06-01 10:15 UTC" in alerts  # the acknowledgement time, from the log
    assert "bo, 2024-06-01 09:30 UTC" in alerts  # resolved by bo
    assert "auto, 2024-06-01 06:00 UTC" in alerts
    assert 'id="alert-chart"' in alerts


def test_summary_numbers(report: str) -> None:
    summary = report[report.index('id="summary"') : report.index("</section>")]
    text = re.sub(r"<[^>]+>", "", summary)
    assert "Windows12; latest 2024-06-01 11:00 UTC → 2024-06-01 12:00 UTC" in text
    assert "Features drifted in the last window2 of 3: city income" in text
    assert "Dataset drift in the last window66.7% of features drifted (threshold 50.0%)" in text
    assert "1 open, 1 acknowledged, 2 resolved" in text
    assert "Concept-drift detections1, latest 2024-06-01 07:20 UTC" in text
    assert "accuracy 0.764, f1 0.721" in text
    assert "Dead letters2" in text


def test_latest_window_table(report: str) -> None:
    table = report[report.index('id="latest-window"') :]
    table = table[: table.index("</section>")]
    rows = {
        re.sub(r"<[^>]+>", "", row[0]): row
        for row in (
            re.findall(r"<td>(.*?)</td>", tr) for tr in re.findall(r"<tr>(.*?)</tr>", table)
        )
        if row
    }
    assert set(rows) == {"age", "income", "city", "prediction (model output)"}
    assert rows["income"][1:4] == ["psi", "0.471", "0.2"]
    assert "drift" in rows["income"][5] and "ok" in rows["age"][5]
    assert rows["city"][1] == "jensenshannon" and "drift" in rows["city"][5]


def test_time_range_and_version_filters(store: ClickHouseStore) -> None:
    text = build_report(store, MODEL, VERSION, since_ms=T0 + 9 * HOUR, until_ms=T0 + 11 * HOUR)
    summary = re.sub(r"<[^>]+>", "", text[: text.index('id="data-drift"')])
    assert "Windows2; latest 2024-06-01 10:00 UTC" in summary
    assert "Requested range: 2024-06-01 09:00 UTC → 2024-06-01 11:00 UTC" in summary
    assert "Concept-drift detections0" in summary  # detected at 07:20, before the range
    alerts = text[text.index('id="alerts"') :]
    assert PREDICTION_ALERT[:12] not in alerts  # resolved at 06:00, before the range
    assert CITY_ALERT[:12] not in alerts  # opened at 11:00, at the (exclusive) end
    assert INCOME_ALERT[:12] in alerts and CONCEPT_ALERT[:12] in alerts

    with pytest.raises(ReportError, match="empty time range"):
        build_report(store, MODEL, since_ms=T0, until_ms=T0)


def test_model_without_windows_says_no_data_yet(store: ClickHouseStore) -> None:
    text = build_report(store, "fraud")
    assert 'id="no-data"' in text and "No data yet" in text
    assert "version <b>1</b>" in text
    assert "Windows0 — no closed windows yet" in re.sub(r"<[^>]+>", "", text)
    assert "plotly.js v" not in text and "<script" not in text  # nothing to draw
    assert "No alerts in this range." in text and "No detections in this range." in text
    # a range with nothing in it is "no data" too, not an error
    empty = build_report(store, MODEL, since_ms=T0 + 100 * HOUR)
    assert 'id="no-data"' in empty and "in this time range" in empty


def test_unknown_model_or_version(store: ClickHouseStore) -> None:
    with pytest.raises(ReportError, match=r"^no events for model 'nope'$"):
        build_report(store, "nope")
    with pytest.raises(ReportError, match=r"^no events for model 'churn' version '9'$"):
        build_report(store, MODEL, "9")
    assert issubclass(ReportError, UsageError)  # the CLI prints it and exits 2


def test_user_strings_are_escaped(chdb_client: Any, ch_database: str) -> None:
    store = ClickHouseStore(chdb_client, database=ch_database)
    store.migrate()
    hostile = "</script><img src=https://evil.example/x.png>"
    store.write(
        Topic.DRIFT_METRICS,
        [_metric(0, hostile, "psi", 0.3, drift=True, primary=True)],
    )
    text = build_report(store, MODEL)
    assert hostile not in text
    assert external_references(text) == []
    assert "&lt;/script&gt;&lt;img src=https://evil.example/x.png&gt;" in text


def test_parse_time() -> None:
    assert parse_time("1717200000000") == T0
    assert parse_time("2024-06-01T00:00:00Z") == T0
    assert parse_time("2024-06-01 01:00") == T0 + HOUR
    assert parse_time("2024-06-01T02:00:00+02:00") == T0
    with pytest.raises(argparse.ArgumentTypeError, match="neither epoch milliseconds"):
        parse_time("yesterday")


# --------------------------------------------------------------------------- command line


def test_report_parser() -> None:
    parser = argparse.ArgumentParser(prog="driftline")
    add_report_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        ["report", "--model", MODEL, "--since", "2024-06-01", "--version", "3"]
    )
    assert (args.model, args.version, args.since, args.until) == (MODEL, "3", T0, None)
    assert args.out == Path("report.html") and callable(args.func)
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["report", "--model", MODEL, "--until", "tomorrow"])
    assert exc.value.code == 2


_CLI_SCRIPT = """
import argparse, json, sys
from driftline.errors import UsageError
from driftline.report import add_report_parser
from driftline.settings import load_settings
from schemas.topics import Topic
from streams.store import ClickHouseStore

job = json.load(sys.stdin)
settings = load_settings()
with ClickHouseStore.connect(settings.clickhouse_dsn, database=settings.clickhouse_database) as s:
    for topic, records in job["batches"]:
        s.write(Topic(topic), records)
parser = argparse.ArgumentParser(prog="driftline")
add_report_parser(parser.add_subparsers(dest="command", required=True))
for argv in job["runs"]:
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except UsageError as exc:
        print(f"driftline: error: {exc}", file=sys.stderr)
        code = exc.exit_code
    print(f"exit {code}", flush=True)
"""


def test_cli_report_subcommand(tmp_path: Path) -> None:
    # In a subprocess: the store opened from the settings is a chDB engine on another path.
    out = tmp_path / "out" / "churn.html"
    job = {
        "batches": [
            [Topic.DRIFT_METRICS.value, drift_metrics()],
            [Topic.PERFORMANCE_METRICS.value, performance_metrics()],
            [Topic.DRIFT_DETECTIONS.value, detections()],
        ],
        "runs": [
            ["report", "--model", MODEL, "--out", str(out), "--since", "2024-06-01T06:00Z"],
            ["report", "--model", "nope", "--out", str(tmp_path / "nope.html")],
        ],
    }
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("DRIFTLINE_")}
    env["DRIFTLINE_DATA_DIR"] = str(tmp_path / "data")
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, "-c", _CLI_SCRIPT],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"wrote the report of model churn to {out}",
        "exit 0",
        "exit 2",
    ], done.stderr
    assert "driftline: error: no events for model 'nope'" in done.stderr
    text = out.read_text(encoding="utf-8")
    assert "Windows6; latest 2024-06-01 11:00 UTC" in re.sub(r"<[^>]+>", "", text)
    assert not (tmp_path / "nope.html").exists()


# --------------------------------------------------------------------------- real browser

CHARTS = ("psi-chart", "dataset-chart", "performance-chart", "alert-chart")
# No sandbox (CI runs as root), no GPU, none of Chromium's own traffic (updates, sync,
# field trials), no QUIC; Playwright adds --headless and --hide-scrollbars.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--force-device-scale-factor=1",
)
VIEWPORT: ViewportSize = {"width": 1400, "height": 2400}
DRAWN_TIMEOUT_MS = 60_000  # generous: the machine may be busy (a Kafka JVM, other tests)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright (whose driver ships in its wheel:
    no browser is downloaded). A dead proxy catches any attempt to reach the network."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: run `make test`, which installs Debian's chromium package "
            "(or `apt-get update && apt-get install -y chromium` as root)",
            pytrace=False,
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "playwright is missing: run `make test`, or `pip install -e '.[dev]'` "
            "(no `playwright install`: the test drives /usr/bin/chromium)",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=list(CHROMIUM_ARGS),
            proxy={"server": "http://127.0.0.1:9"},
            timeout=120_000,
        )
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Visit:
    """A page open in its own browser context, and everything it did there."""

    page: Page
    requests: list[str] = field(default_factory=list)  # every URL, the page's own included
    console: list[str] = field(default_factory=list)  # "type: text"
    errors: list[str] = field(default_factory=list)  # uncaught exceptions

    def problems(self) -> list[str]:
        """Uncaught exceptions and console errors."""
        bad = [m for m in self.console if m.startswith("error:") or "Uncaught" in m]
        return [*self.errors, *bad]


@contextmanager
def visit(browser: Browser, url: str) -> Iterator[Visit]:
    """Open ``url`` (up to its load event) in a fresh context that records every request
    (documents, scripts, styles, images, fetch/XHR, workers' requests, web sockets), the
    console and uncaught exceptions."""
    context = browser.new_context(
        viewport=VIEWPORT,
        device_scale_factor=1,
        service_workers="block",
    )
    try:
        page = context.new_page()
        seen = Visit(page)
        context.on("request", lambda request: seen.requests.append(request.url))
        page.on("websocket", lambda socket: seen.requests.append(socket.url))
        page.on("console", lambda message: seen.console.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: seen.errors.append(str(error)))
        page.goto(url, wait_until="load", timeout=DRAWN_TIMEOUT_MS)
        yield seen
    finally:
        context.close()


def test_network_and_console_checks_catch_offenders(browser: Browser, tmp_path: Path) -> None:
    """The control for the checks below: a page with a CDN script, a remote stylesheet and
    image, a fetch() and a failing script is caught on every count."""
    page = tmp_path / "cdn.html"
    page.write_text(
        '<html><head><link rel="stylesheet" href="http://fonts.example.org/x.css"></head><body>'
        '<script src="https://cdn.plot.ly/plotly-2.35.2.min.js"></script>'
        '<img src="https://img.example.net/pixel.png"><p>x</p>'
        '<script>window.beacon = fetch("https://api.example.com/b").catch(() => "failed");</script>'
        "<script>Plotly.newPlot('x', []);</script></body></html>",
        encoding="utf-8",
    )
    assert len(external_references(page.read_text(encoding="utf-8"))) == 3
    with visit(browser, page.as_uri()) as seen:
        assert seen.page.evaluate("window.beacon") == "failed"  # the fetch was tried
    assert sorted(seen.requests) == [
        page.as_uri(),
        "http://fonts.example.org/x.css",
        "https://api.example.com/b",
        "https://cdn.plot.ly/plotly-2.35.2.min.js",
        "https://img.example.net/pixel.png",
    ]
    assert any("Plotly is not defined" in e for e in seen.errors), seen.errors
    assert any("ERR_PROXY_CONNECTION_FAILED" in m for m in seen.problems()), seen.console


def _load_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def palette(pixels: np.ndarray, min_pixels: int = 60) -> int:
    """Distinct colours among RGB pixels (n x 3): 8 levels a channel, each >= min_pixels."""
    if len(pixels) == 0:
        return 0
    levels = pixels // 32
    cells = np.bincount(levels[:, 0] * 64 + levels[:, 1] * 8 + levels[:, 2], minlength=512)
    return int((cells >= min_pixels).sum())


def colour_pixels(region: np.ndarray, colour: str, tolerance: int = 24) -> int:
    """Pixels of ``region`` within ``tolerance`` (per channel) of ``#RRGGBB``."""
    rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.int16)
    return int((np.abs(region - rgb).max(axis=2) <= tolerance).sum())


def drawn_bands(drawn: np.ndarray, gap: int = 40, min_pixels: int = 3) -> list[tuple[int, int]]:
    """Row ranges [top, bottom) of the screenshot where JavaScript drew, split at ``gap`` rows."""
    rows = np.flatnonzero(drawn.sum(axis=1) >= min_pixels)
    if rows.size == 0:
        return []
    splits = np.flatnonzero(np.diff(rows) > gap)
    tops = [rows[0], *rows[splits + 1]]
    bottoms = [*rows[splits], rows[-1]]
    return [(int(t), int(b) + 1) for t, b in zip(tops, bottoms, strict=True)]


def measure(with_js: np.ndarray, without_js: np.ndarray) -> list[dict[str, Any]]:
    """Per band drawn by JavaScript: size, drawn share, coloured pixels, distinct hues."""
    drawn = np.abs(with_js - without_js).max(axis=2) > 12
    saturated = (with_js.max(axis=2) - with_js.min(axis=2)) > 60
    out = []
    for top, bottom in drawn_bands(drawn):
        band_drawn = drawn[top:bottom]
        coloured = with_js[top:bottom][band_drawn & saturated[top:bottom]]
        out.append(
            {
                "top": top,
                "height": bottom - top,
                "drawn_share": round(float(band_drawn.mean()), 3),
                "coloured_pixels": len(coloured),
                "palette": palette(coloured),
                "distinct_rgb": len(np.unique(coloured, axis=0)),
            }
        )
    return out


def trace_lines(svg: str) -> list[int]:
    """Points of each trace line plotly drew (``<g class="lines"><path class="js-line">``)."""
    out = []
    for path in re.findall(r'<g class="lines"><path\b([^>]*)>', svg):
        assert "js-line" in path
        d = re.search(r'\bd="([^"]*)"', path)
        out.append(len(re.findall(r"[ML]", d.group(1))) if d else 0)
    return out


@pytest.mark.slow
def test_report_renders_in_headless_chromium(report: str, browser: Browser, tmp_path: Path) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    started = time.monotonic()
    page = tmp_path / "report.html"
    page.write_text(report, encoding="utf-8")
    url = page.as_uri()
    # The baseline: the same page without its scripts (same layout: chart divs have fixed
    # heights), so what differs between the screenshots is what JavaScript drew.
    bare = tmp_path / "report-noscript.html"
    bare.write_text(re.sub(r"<script\b.*?</script>", "", report, flags=re.S), encoding="utf-8")
    shots = {"js": tmp_path / "report.png", "nojs": tmp_path / "report-noscript.png"}
    # The marker is not in the file: only the page's own script, once every chart's
    # Plotly.newPlot promise resolved, sets it. The screenshot waits for it, not a clock.
    assert "data-charts-drawn" not in report and "__driftlineChartsDrawn = ids.length" in report
    drawn = (
        f"document.documentElement.dataset.chartsDrawn === '{len(CHARTS)}'"
        f" && window.__driftlineChartsDrawn === {len(CHARTS)}"
    )
    with visit(browser, url) as seen:
        try:
            seen.page.wait_for_function(drawn, timeout=DRAWN_TIMEOUT_MS)
        except PlaywrightTimeoutError:
            pytest.fail(
                f"the charts were not all drawn within {DRAWN_TIMEOUT_MS / 1000:.0f}s: "
                f"marker {seen.page.evaluate('document.documentElement.dataset.chartsDrawn')!r}, "
                f"errors {seen.errors}, console {seen.console}",
                pytrace=False,
            )
        # let a frame with the finished charts be painted before the screenshot
        seen.page.evaluate("() => new Promise(r => requestAnimationFrame(() => setTimeout(r)))")
        seen.page.screenshot(path=shots["js"], animations="disabled", caret="hide")
        dom = seen.page.content()
    drawn_after = time.monotonic() - started
    with visit(browser, bare.as_uri()) as bare_seen:
        assert bare_seen.page.evaluate("document.documentElement.dataset.chartsDrawn") is None
        bare_seen.page.screenshot(path=shots["nojs"], animations="disabled", caret="hide")
    if os.environ.get("DRIFTLINE_REPORT_SCREENSHOT"):  # keep a copy to look at
        shutil.copy(shots["js"], os.environ["DRIFTLINE_REPORT_SCREENSHOT"])

    # The page asked for nothing but itself (not even a failed try), and no script failed.
    assert seen.requests == [url], seen.requests
    assert bare_seen.requests == [bare.as_uri()], bare_seen.requests
    assert seen.problems() == [], (seen.errors, seen.console)
    assert bare_seen.problems() == [], (bare_seen.errors, bare_seen.console)

    # --- the DOM after the inlined plotly.js ran
    assert re.search(rf'<html [^>]*data-charts-drawn="{len(CHARTS)}"', dom)
    for chart in CHARTS:
        tag = re.search(rf'<div [^>]*id="{chart}"[^>]*>', dom)
        assert tag is not None and "js-plotly-plot" in tag.group(0), chart
    parts = {
        chart: dom[dom.index(f'id="{chart}"') : dom.index(f'id="{nxt}"')]
        for chart, nxt in zip(CHARTS, (*CHARTS[1:], "latest-window"), strict=True)
    }
    main_svgs = {c: p.count('class="main-svg"') for c, p in parts.items()}
    lines = {c: trace_lines(p) for c, p in parts.items()}
    points = {c: len(re.findall(r'class="point\b', p)) for c, p in parts.items()}
    assert all(n >= 2 for n in main_svgs.values()), main_svgs
    # one drawn line per trace (legend samples not counted); plotly drops collinear vertices
    assert [len(lines[c]) for c in CHARTS] == [4, 1, 2, 0], lines
    assert min(n for c in CHARTS for n in lines[c]) >= 5, lines
    # markers and bars: one per window and trace, one per concept drift, one per alert phase
    assert points == {
        "psi-chart": 4 * WINDOWS,  # age, income, city, the model output
        "dataset-chart": 2 * WINDOWS,  # share markers, events-per-window bars
        "performance-chart": 2 * WINDOWS + 1,  # accuracy, f1, the ADWIN detection
        "alert-chart": 4 + 2 + 2,  # open bars, acknowledged bars, resolved diamonds
    }, points
    for feature in FEATURES:
        assert re.search(rf'class="legendtext"[^>]*>{feature}<', parts["psi-chart"]), feature
    assert "concept drift detected" in parts["performance-chart"]
    assert 'class="shapelayer"' in parts["psi-chart"]  # the threshold line

    # --- the screenshots: what JavaScript drew, chart by chart
    with_js, without_js = _load_rgb(shots["js"]), _load_rgb(shots["nojs"])
    assert with_js.shape == without_js.shape == (2400, 1400, 3)
    bands = measure(with_js, without_js)
    print(json.dumps(bands), f"charts drawn after {drawn_after:.1f}s")
    assert len(bands) == len(CHARTS), bands
    for band in bands:
        assert band["height"] >= 250, band
        assert band["drawn_share"] >= 0.4, band  # plot background, grid, axes, traces
        assert band["coloured_pixels"] >= 2000, band
        assert band["palette"] >= 5, band
        assert band["distinct_rgb"] >= 50, band  # anti-aliased lines, not flat boxes
    # each chart's own colours: every trace of it was drawn
    expected = {
        "psi-chart": ("#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#D62728"),
        "dataset-chart": ("#636EFA", "#EF553B", "#D62728"),
        "performance-chart": ("#636EFA", "#EF553B", "#AB63FA"),
        "alert-chart": ("#EF553B", "#FFA15A", "#00CC96"),
    }
    found = {}
    for chart, band in zip(CHARTS, bands, strict=True):
        region = with_js[band["top"] : band["top"] + band["height"]]
        found[chart] = {colour: colour_pixels(region, colour) for colour in expected[chart]}
    print(json.dumps(found))
    for chart, counts in found.items():
        assert all(n >= 40 for n in counts.values()), (chart, counts)
    # without JavaScript the chart areas are blank: the difference really is the charts
    top, bottom = bands[0]["top"], bands[0]["top"] + bands[0]["height"]
    blank = without_js[top:bottom]
    assert float((blank.min(axis=2) > 240).mean()) > 0.95


def test_colours_do_not_depend_on_plotly_global_state(
    store: ClickHouseStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Evidently re-colours plotly's shared default template when imported; the report keeps its own."""
    import plotly.io as pio

    from driftline.report import COLORWAY

    template = pio.templates["plotly"]
    monkeypatch.setattr(template.layout, "colorway", ("#000001", "#000002"))
    html = build_report(store, MODEL).replace(" ", "")
    ours = '"colorway":[' + ",".join(f'"{c}"' for c in COLORWAY) + "]"
    # every chart's own layout sets our palette, which wins over the (mutated) template's
    assert html.count(ours) == 4
    assert COLORWAY[:2] == ("#636EFA", "#EF553B")
