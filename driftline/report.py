"""``driftline report``: one self-contained HTML page about a model's drift, quality and alerts.

:func:`build_report` reads a model's aggregates from the store (drift metrics, dataset
summaries, performance metrics, detections, alerts) and returns one HTML document that
needs no network: plotly's JavaScript is inlined once, before the first chart, and
every other chart reuses it. Once every chart's ``Plotly.newPlot`` promise has resolved,
the page marks itself ``<html data-charts-drawn="N">`` (and ``window.__driftlineChartsDrawn
= N``), N the number of charts: a headless browser waits for that before a screenshot. The
page holds

- a title with the model, its versions and the time range covered;
- a summary box: windows, features drifted in the last window, dataset drift, open
  and acknowledged alerts, concept-drift detections, latest performance, dead letters;
- PSI per feature over time (one line per feature, the PSI threshold as a line);
- the share of drifted features per window with its threshold (and events per window);
- performance (accuracy / F1 / ..., or MAE / RMSE) over time, concept-drift detections
  marked on it;
- the alert timeline (open → acknowledged → resolved, a Gantt-like chart) and a table;
- the detections in the range, and the latest window's per-feature statistics.

A model without closed windows gets a clear "no data yet" section instead of charts; a
model the store has never heard of raises :class:`ReportError`.

The store is duck-typed (:class:`ReportStore`): today a
:class:`streams.store.ClickHouseStore`; later possibly a client of the HTTP API.

Plotly was chosen over a lighter library because it is on PyPI with its JavaScript
bundled (Evidently, the ``bench`` extra, already pulls it in), draws interactive (zoom,
hover) date-axis charts with shapes and Gantt-like bars out of the box, and escapes user
strings in the figure JSON. Its cost is size: the inlined bundle is ~4.6 MB per report,
paid once per file; a month of hourly windows for 20 features adds ~1.5 MB of data.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np

from driftline import __version__
from driftline.errors import UsageError
from schemas.topics import DATASET_FEATURE, PREDICTION_FEATURE

__all__ = ["ReportError", "ReportStore", "add_report_parser", "build_report", "parse_time"]

_QUERY_LIMIT: Final = 100_000  # detections and alerts read per report
_TABLE_ROWS: Final = 200  # rows shown in the alert and detection tables
_CONCEPT_KINDS: Final = ("concept_drift", "performance")
_PERFORMANCE_ORDER: Final = ("accuracy", "f1", "precision", "recall", "rmse", "mae")
_STATE_COLORS: Final = {"open": "#EF553B", "acknowledged": "#FFA15A", "resolved": "#00CC96"}
_PLOT_CONFIG: Final = {"displaylogo": False, "responsive": True}

# plotly's own default palette, fixed here (see ``_Charts.render``).
COLORWAY = (
    "#636EFA",
    "#EF553B",
    "#00CC96",
    "#AB63FA",
    "#FFA15A",
    "#19D3F3",
    "#FF6692",
    "#B6E880",
    "#FF97FF",
    "#FECB52",
)


class ReportError(UsageError):
    """The report cannot be built: unknown model or version, or an empty time range."""


class ReportStore(Protocol):
    """The queries the report needs (those of :class:`streams.store.ClickHouseStore`)."""

    def models(self) -> list[dict[str, Any]]: ...

    def drift_series(
        self,
        model: str,
        version: str | None = None,
        *,
        feature: str | None = None,
        metric: str | None = None,
        segment: str | None = None,
        primary_only: bool = False,
        since_ms: int | None = None,
        until_ms: int | None = None,
    ) -> list[dict[str, Any]]: ...

    def dataset_drift_series(
        self,
        model: str,
        version: str | None = None,
        *,
        segment: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
    ) -> list[dict[str, Any]]: ...

    def performance_series(
        self,
        model: str,
        version: str | None = None,
        *,
        metric: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
    ) -> list[dict[str, Any]]: ...

    def detections(
        self,
        model: str | None = None,
        version: str | None = None,
        *,
        kind: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]: ...

    def alerts(
        self,
        state: Any = None,
        model: str | None = None,
        version: str | None = None,
        *,
        limit: int = 100,
    ) -> list[dict[str, Any]]: ...

    def dead_letter_count(self, source_topic: str | None = None) -> int: ...


# ---------------------------------------------------------------------- data


@dataclass
class _Alert:
    row: dict[str, Any]
    label: str
    opened: int
    acknowledged: int | None
    acknowledged_exact: bool
    resolved: int | None


@dataclass
class _Data:
    model: str
    versions: list[str]
    since_ms: int | None
    until_ms: int | None
    features: list[dict[str, Any]]  # drift metric rows of real features and the prediction
    dataset: list[dict[str, Any]]  # "__dataset__" rows
    performance: list[dict[str, Any]]
    detections: list[dict[str, Any]]  # newest first
    alerts: list[_Alert]
    all_alerts: list[dict[str, Any]]  # current state of every alert, whatever the range
    dead_letters: int | None
    multi_version: bool = False
    multi_segment: bool = False
    end_ms: int | None = None  # where still-active alert bars stop
    notes: list[str] = field(default_factory=list)

    @property
    def has_windows(self) -> bool:
        return bool(self.features or self.dataset or self.performance)

    def series_suffix(self, version: str, segment: str) -> str:
        parts = []
        if self.multi_version:
            parts.append(f"v{version}")
        if self.multi_segment:
            parts.append(f"segment {segment or '(none)'}")
        return f" ({', '.join(parts)})" if parts else ""


def _version_key(version: str) -> tuple[int, int, str]:
    return (0, int(version), "") if version.isdigit() else (1, 0, version)


def _collect(
    store: ReportStore,
    model: str,
    version: str | None,
    since_ms: int | None,
    until_ms: int | None,
) -> _Data:
    features: list[dict[str, Any]] = []
    dataset: list[dict[str, Any]] = []
    for row in store.drift_series(model, version, since_ms=since_ms, until_ms=until_ms):
        (dataset if row["feature"] == DATASET_FEATURE else features).append(row)
    performance = store.performance_series(model, version, since_ms=since_ms, until_ms=until_ms)
    detections = store.detections(
        model, version, since_ms=since_ms, until_ms=until_ms, limit=_QUERY_LIMIT
    )
    all_alerts = store.alerts(model=model, version=version, limit=_QUERY_LIMIT)
    known: list[dict[str, Any]] = []
    if not (features or dataset or performance):
        # No window: the registry's and the raw events' view tells which versions exist
        # (models() scans the raw predictions, so only when the windows cannot tell).
        known = [m for m in store.models() if m["model_name"] == model]
        if version is not None:
            known = [m for m in known if m["model_version"] == version]

    if not (known or features or dataset or performance or detections or all_alerts):
        # Nothing in the range: does the model exist at all (outside the range)?
        exists = bool(
            store.dataset_drift_series(model, version)
            or store.performance_series(model, version)
            or store.detections(model, version, limit=1)
        )
        if not exists:
            what = f"model {model!r}" + (f" version {version!r}" if version is not None else "")
            raise ReportError(f"no events for {what}")

    versions = {m["model_version"] for m in known}
    for rows in (features, dataset, performance, detections, all_alerts):
        versions.update(str(r["model_version"]) for r in rows)
    if version is not None:
        versions = {version}
    data = _Data(
        model=model,
        versions=sorted(versions, key=_version_key),
        since_ms=since_ms,
        until_ms=until_ms,
        features=features,
        dataset=dataset,
        performance=performance,
        detections=detections,
        alerts=[],
        all_alerts=all_alerts,
        dead_letters=_dead_letters(store),
    )
    data.multi_version = len({r["model_version"] for r in [*features, *dataset, *performance]}) > 1
    data.multi_segment = len({r.get("segment") or "" for r in [*features, *dataset]}) > 1

    times = [r["window_end"] for r in [*features, *dataset, *performance]]
    times += [d["detected_at"] for d in detections]
    times += [a["updated_at"] for a in all_alerts]
    data.end_ms = until_ms if until_ms is not None else (max(times) if times else None)
    data.alerts = _alerts_in_range(store, all_alerts, data)
    return data


def _dead_letters(store: ReportStore) -> int | None:
    count = getattr(store, "dead_letter_count", None)  # a remote store may not offer it
    return int(count()) if callable(count) else None


def _ack_times(store: ReportStore, alert_ids: Sequence[str]) -> dict[str, tuple[int, str]]:
    """Alert id -> (time, actor) of its first acknowledgement, from the ``alert_acks`` log.

    Only the latest revision of an alert survives in the ``alerts`` table, so when an alert
    is resolved the time it was acknowledged is known only from the responders' log. The
    store has no public query for that log yet: a store offering ``alert_acks(alert_ids)``
    is asked; a :class:`ClickHouseStore` is read with one parameterised query; any other
    store gives nothing, and the timeline falls back on the alerts' own revisions.
    """
    if not alert_ids:
        return {}
    rows: Sequence[Mapping[str, Any]]
    fetch = getattr(store, "alert_acks", None)
    if callable(fetch):
        rows = list(fetch(list(alert_ids)))
    else:
        from streams.store import ClickHouseStore

        if not isinstance(store, ClickHouseStore):
            return {}
        rows = store._rows(
            f"""SELECT alert_id, actor, toUnixTimestamp64Milli(timestamp) AS timestamp
            FROM {store.database}.alert_acks FINAL
            WHERE action = 'acknowledge' AND alert_id IN {{ids:Array(String)}}
            ORDER BY timestamp""",
            "reading alert acknowledgements",
            {"ids": list(alert_ids)},
        )
    out: dict[str, tuple[int, str]] = {}
    for row in rows:
        if row.get("action", "acknowledge") != "acknowledge":
            continue
        previous = out.get(row["alert_id"])
        if previous is None or int(row["timestamp"]) < previous[0]:
            out[row["alert_id"]] = (int(row["timestamp"]), str(row["actor"]))
    return out


def _alert_label(row: Mapping[str, Any], multi_version: bool) -> str:
    feature = row.get("feature")
    label = str(row["kind"])
    if feature:
        label += f" · {'prediction' if feature == PREDICTION_FEATURE else feature}"
    if multi_version:
        label += f" · v{row['model_version']}"
    return label


def _alerts_in_range(store: ReportStore, rows: list[dict[str, Any]], data: _Data) -> list[_Alert]:
    multi_version = len({r["model_version"] for r in rows}) > 1 or data.multi_version
    chosen = []
    for row in rows:
        resolved = row["updated_at"] if row["state"] == "resolved" else None
        if data.until_ms is not None and row["opened_at"] >= data.until_ms:
            continue
        if data.since_ms is not None and resolved is not None and resolved < data.since_ms:
            continue
        chosen.append((row, resolved))
    acks = _ack_times(store, [row["alert_id"] for row, _ in chosen])
    alerts = []
    for row, resolved in chosen:
        ack = acks.get(row["alert_id"])
        acknowledged, exact = (ack[0], True) if ack else (None, False)
        if acknowledged is None and row["state"] == "acknowledged":
            acknowledged = row["updated_at"]  # the latest revision: at or after the ack
        alerts.append(
            _Alert(
                row=row,
                label=_alert_label(row, multi_version),
                opened=row["opened_at"],
                acknowledged=acknowledged,
                acknowledged_exact=exact,
                resolved=resolved,
            )
        )
    alerts.sort(key=lambda a: (a.opened, a.row["alert_id"]))
    return alerts


# ---------------------------------------------------------------------- formatting


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _axis_time(ms: int) -> str:
    """Epoch ms as plotly's date string, UTC (plotly.js ignores time zones)."""
    return _dt(ms).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _fmt_time(ms: int | None) -> str:
    if ms is None:
        return "–"
    moment = _dt(ms)
    return moment.strftime("%Y-%m-%d %H:%M:%S" if moment.second else "%Y-%m-%d %H:%M") + " UTC"


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if number != 0 and abs(number) < 1e-3:
        return f"{number:.2e}"
    return f"{number:.{digits}g}"


def _pct(value: Any) -> str:
    return "–" if value is None else f"{100 * float(value):.1f}%"


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _feature_name(feature: str) -> str:
    return "prediction (model output)" if feature == PREDICTION_FEATURE else feature


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], css: str = "") -> str:
    """An HTML table; cells are HTML already (escape them before)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _badge(text: str, kind: str) -> str:
    return f'<span class="badge {kind}">{_e(text)}</span>'


# ---------------------------------------------------------------------- charts


# Runs when a chart's Plotly.newPlot promise resolves (plotly's post_script is chained
# with .then on it); a rejected promise never calls it, so the page never says "drawn".
_CHART_DONE_JS: Final = 'window.__driftlineChartDone("{plot_id}");'

# In <head>, before any chart: one promise per chart, resolved by _CHART_DONE_JS; once all
# of them are (Promise.all), the page says how many charts it drew, for whoever waits on
# it (a headless browser taking a screenshot): <html data-charts-drawn="N"> and
# window.__driftlineChartsDrawn = N.
_CHARTS_DRAWN_JS: Final = """(function () {
  var ids = %s, resolvers = {};
  var drawn = ids.map(function (id) {
    return new Promise(function (resolve) { resolvers[id] = resolve; });
  });
  window.__driftlineChartDone = function (id) { if (resolvers[id]) resolvers[id](id); };
  Promise.all(drawn).then(function () {
    window.__driftlineChartsDrawn = ids.length;
    document.documentElement.dataset.chartsDrawn = String(ids.length);
  });
})();"""


class _Figures:
    """Renders plotly figures to HTML divs; plotly.js is inlined with the first one."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    @property
    def count(self) -> int:
        return len(self.ids)

    def head_script(self) -> str:
        """The ``<script>`` that marks the page once every chart is drawn ("" if none)."""
        if not self.ids:
            return ""
        return f"<script>{_CHARTS_DRAWN_JS % json.dumps(self.ids)}</script>"

    def render(self, fig: Any, div_id: str, height: int) -> str:
        fig.update_layout(
            height=height,
            template="plotly",
            # Our own colours: other libraries (Evidently does) re-colour plotly's shared
            # default template in place when imported, which would re-colour the report.
            colorway=COLORWAY,
            margin={"l": 64, "r": 24, "t": 36, "b": 48},
            font={"family": "DejaVu Sans, Liberation Sans, Arial, sans-serif", "size": 12},
            hoverlabel={"namelength": -1},
            legend={"orientation": "v", "x": 1.01, "xanchor": "left", "y": 1},
        )
        text: str = fig.to_html(
            full_html=False,
            include_plotlyjs=self.count == 0,
            div_id=div_id,
            default_height=f"{height}px",
            default_width="100%",
            config=_PLOT_CONFIG,
            post_script=_CHART_DONE_JS,
        )
        self.ids.append(div_id)
        return f'<div class="chart">{text}</div>'


def _most_common(values: Iterable[float]) -> float | None:
    counted = Counter(round(float(v), 12) for v in values)
    return counted.most_common(1)[0][0] if counted else None


def _psi_chart(data: _Data, figures: _Figures) -> str:
    import plotly.graph_objects as go

    rows = [r for r in data.features if r["metric"] == "psi"]
    if not rows:
        return '<p class="empty">No PSI values in this range.</p>'
    series: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        series[(row["feature"], row["model_version"], row.get("segment") or "")].append(row)
    fig = go.Figure()
    order = sorted(
        series, key=lambda k: (k[0] == PREDICTION_FEATURE, k[0], _version_key(k[1]), k[2])
    )
    for key in order:
        points = sorted(series[key], key=lambda r: r["window_start"])
        feature, version, segment = key
        prediction = feature == PREDICTION_FEATURE
        fig.add_trace(
            go.Scatter(
                x=[_axis_time(p["window_start"]) for p in points],
                y=[p["value"] for p in points],
                mode="lines+markers",
                name=_feature_name(feature) + data.series_suffix(version, segment),
                line={"dash": "dot" if prediction else "solid", "width": 2.5},
                marker={
                    "size": [11 if p["drift"] else 6 for p in points],
                    "symbol": ["diamond" if p["drift"] else "circle" for p in points],
                },
                customdata=[
                    [_fmt_time(p["window_start"]), _fmt_time(p["window_end"]), p["n_current"]]
                    for p in points
                ],
                hovertemplate="window %{customdata[0]} → %{customdata[1]}<br>"
                "PSI %{y:.4f}<br>events %{customdata[2]}",
            )
        )
    threshold = _most_common(r["threshold"] for r in rows)
    if threshold is not None:
        fig.add_hline(
            y=threshold,
            line={"color": "#d62728", "dash": "dash", "width": 2},
            annotation_text=f"PSI threshold {threshold:g}",
            annotation_position="top left",
        )
    fig.update_yaxes(title_text="PSI", rangemode="tozero")
    fig.update_xaxes(title_text="window start (UTC)")
    return figures.render(fig, "psi-chart", 440)


def _dataset_chart(data: _Data, figures: _Figures) -> str:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rows = [r for r in data.dataset if r["metric"] == "share_drifted"]
    if not rows:
        return '<p class="empty">No dataset summaries in this range.</p>'
    series: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        series[(row["model_version"], row.get("segment") or "")].append(row)
    # The share goes on the overlaying (secondary) axis so that it is drawn above the
    # bars; the axes swap sides so that the share still reads on the left.
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for (version, segment), points in sorted(series.items(), key=lambda kv: _version_key(kv[0][0])):
        points.sort(key=lambda r: r["window_start"])
        suffix = data.series_suffix(version, segment)
        x = [_axis_time(p["window_start"]) for p in points]
        fig.add_trace(
            go.Bar(
                x=x,
                y=[p["n_current"] for p in points],
                name="events per window" + suffix,
                marker={"color": "rgba(99, 110, 250, 0.25)"},
                hovertemplate="%{y} events",
            ),
            secondary_y=False,
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=[p["value"] for p in points],
                mode="lines+markers",
                name="share of drifted features" + suffix,
                line={"width": 3, "color": "#636EFA" if not data.multi_version else None},
                marker={
                    "size": 10,
                    "color": ["#EF553B" if p["drift"] else "#636EFA" for p in points],
                    "line": {"width": 1, "color": "white"},
                },
                customdata=[
                    ["dataset drift" if p["drift"] else "no dataset drift", p["late_events"]]
                    for p in points
                ],
                hovertemplate="share %{y:.0%}<br>%{customdata[0]}<br>late events %{customdata[1]}",
            ),
            secondary_y=True,
        )
    threshold = _most_common(r["threshold"] for r in rows)
    if threshold is not None:
        # add_hline puts its annotation on the primary axis: place it by hand
        fig.add_hline(
            y=threshold, line={"color": "#d62728", "dash": "dash", "width": 2}, secondary_y=True
        )
        fig.add_annotation(
            text=f"drift share threshold {threshold:g}",
            x=0,
            xref="x domain",
            xanchor="left",
            y=threshold,
            yref="y2",
            yanchor="bottom",
            showarrow=False,
        )
    fig.update_yaxes(
        title_text="share of drifted features",
        range=[0, 1.05],
        tickformat=".0%",
        side="left",
        showgrid=True,
        secondary_y=True,
    )
    fig.update_yaxes(
        title_text="events", rangemode="tozero", side="right", showgrid=False, secondary_y=False
    )
    fig.update_xaxes(title_text="window start (UTC)")
    fig.update_layout(barmode="overlay")
    return figures.render(fig, "dataset-chart", 340)


def _performance_chart(data: _Data, figures: _Figures) -> str:
    import plotly.graph_objects as go

    concept = [d for d in data.detections if d["kind"] in _CONCEPT_KINDS]
    if not data.performance and not concept:
        return '<p class="empty">No labelled windows and no concept-drift detections in this range.</p>'
    series: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in data.performance:
        series[(row["metric"], row["model_version"])].append(row)

    def rank(metric: str) -> tuple[int, str]:
        order = _PERFORMANCE_ORDER
        return (order.index(metric) if metric in order else len(order), metric)

    fig = go.Figure()
    for (metric, version), points in sorted(
        series.items(), key=lambda kv: (rank(kv[0][0]), _version_key(kv[0][1]))
    ):
        points.sort(key=lambda r: r["window_start"])
        fig.add_trace(
            go.Scatter(
                x=[_axis_time(p["window_start"]) for p in points],
                y=[p["value"] for p in points],
                mode="lines+markers",
                name=metric + (f" (v{version})" if data.multi_version else ""),
                line={"width": 2.5},
                customdata=[[p["n_labels"]] for p in points],
                hovertemplate=metric + " %{y:.4f}<br>labels %{customdata[0]}",
            )
        )
    if concept:
        # Markers sit on the main metric's line (the same version's, if it has one),
        # interpolated between the window starts the line is drawn at.
        main = min((k[0] for k in series), key=rank, default=None)
        xs, ys, texts = [], [], []
        for det in sorted(concept, key=lambda d: d["detected_at"]):
            t = det["detected_at"]
            y = 0.0
            if main is not None:
                line = series.get((main, det["model_version"])) or next(
                    points for (metric, _), points in series.items() if metric == main
                )
                y = float(
                    np.interp(t, [p["window_start"] for p in line], [p["value"] for p in line])
                )
            xs.append(_axis_time(t))
            ys.append(y)
            texts.append(
                f"{_e(det['kind'])} ({_e(det['detector'])}), v{_e(det['model_version'])}<br>"
                f"{_fmt_time(t)}<br>value {_num(det['value'])}, severity {_e(det['severity'])}"
            )
            fig.add_vline(x=_axis_time(t), line={"color": "#AB63FA", "dash": "dot", "width": 2})
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="markers",
                name="concept drift detected",
                marker={
                    "symbol": "x",
                    "size": 16,
                    "color": "#AB63FA",
                    "line": {"width": 2, "color": "#4b0082"},
                },
                text=texts,
                hovertemplate="%{text}<extra></extra>",
            )
        )
    fig.update_yaxes(title_text="metric value")
    fig.update_xaxes(title_text="window start (UTC)")
    return figures.render(fig, "performance-chart", 380)


def _alert_chart(data: _Data, figures: _Figures) -> str:
    import plotly.graph_objects as go

    if not data.alerts or data.end_ms is None:
        return ""
    end = data.end_ms
    bars: dict[str, tuple[list[str], list[str], list[int], list[str]]] = {
        "open": ([], [], [], []),
        "acknowledged": ([], [], [], []),
    }

    def add(state: str, alert: _Alert, start: int, stop: int, active: bool) -> None:
        labels, bases, widths, texts = bars[state]
        labels.append(alert.label)
        bases.append(_axis_time(start))
        widths.append(max(stop - start, 60_000))  # at least a minute, so it shows
        texts.append(
            f"{_e(alert.row['alert_id'][:12])} · {_e(alert.row['severity'])}<br>"
            f"{state} {_fmt_time(start)} → {'still active' if active else _fmt_time(stop)}<br>"
            f"{_e(alert.row['message'])}"
        )

    resolved_x, resolved_y, resolved_text = [], [], []
    for alert in data.alerts:
        stop = alert.resolved if alert.resolved is not None else max(end, alert.opened)
        ack = alert.acknowledged
        active = alert.resolved is None
        if ack is not None and alert.opened <= ack <= stop:
            add("open", alert, alert.opened, ack, False)
            add("acknowledged", alert, ack, stop, active)
        else:
            add("open", alert, alert.opened, stop, active)
        if alert.resolved is not None:
            resolved_x.append(_axis_time(alert.resolved))
            resolved_y.append(alert.label)
            resolved_text.append(
                f"resolved by {_e(alert.row.get('resolved_by') or '?')} {_fmt_time(alert.resolved)}"
            )
    fig = go.Figure()
    for state, (labels, bases, widths, texts) in bars.items():
        if labels:
            fig.add_trace(
                go.Bar(
                    orientation="h",
                    y=labels,
                    base=bases,
                    x=widths,
                    name=state,
                    marker={"color": _STATE_COLORS[state], "line": {"width": 1, "color": "white"}},
                    text=texts,
                    textposition="none",
                    hovertemplate="%{text}<extra></extra>",
                )
            )
    if resolved_x:
        fig.add_trace(
            go.Scatter(
                x=resolved_x,
                y=resolved_y,
                mode="markers",
                name="resolved",
                marker={
                    "symbol": "diamond",
                    "size": 14,
                    "color": _STATE_COLORS["resolved"],
                    "line": {"width": 1, "color": "#1b5e20"},
                },
                text=resolved_text,
                hovertemplate="%{text}<extra></extra>",
            )
        )
    rows = len({a.label for a in data.alerts})
    fig.update_layout(barmode="overlay", bargap=0.35)
    # the same time axis as the charts above, widened to the alerts if they start earlier
    starts = [r["window_start"] for r in [*data.features, *data.dataset, *data.performance]]
    first = min([*starts, *(a.opened for a in data.alerts)])
    margin = max((end - first) // 50, 60_000)
    fig.update_xaxes(
        type="date",
        title_text="time (UTC)",
        range=[_axis_time(first - margin), _axis_time(end + margin)],
    )
    fig.update_yaxes(autorange="reversed", type="category")
    return figures.render(fig, "alert-chart", min(max(180 + 44 * rows, 240), 900))


# ---------------------------------------------------------------------- sections


def _latest_start(data: _Data) -> int | None:
    starts = [r["window_start"] for r in [*data.features, *data.dataset]]
    return max(starts) if starts else None


def _summary(data: _Data) -> str:
    starts = {r["window_start"] for r in [*data.features, *data.dataset]}
    latest = _latest_start(data)
    items: list[tuple[str, str]] = []
    if latest is None:
        items.append(("Windows", "0 — no closed windows yet"))
    else:
        latest_end = max(
            r["window_end"] for r in [*data.features, *data.dataset] if r["window_start"] == latest
        )
        items.append(
            (
                "Windows",
                f"{len(starts)}; latest {_e(_fmt_time(latest))} → {_e(_fmt_time(latest_end))}",
            )
        )
        primary = [
            r
            for r in data.features
            if r["window_start"] == latest and r["primary"] and r["feature"] != PREDICTION_FEATURE
        ]
        drifted = sorted({r["feature"] for r in primary if r["drift"]})
        total = len({r["feature"] for r in primary})
        badges = " ".join(_badge(name, "bad") for name in drifted) or _badge("none", "good")
        items.append(
            ("Features drifted in the last window", f"{len(drifted)} of {total}: {badges}")
        )
        prediction = [
            r
            for r in data.features
            if r["window_start"] == latest and r["primary"] and r["feature"] == PREDICTION_FEATURE
        ]
        if prediction:
            items.append(
                (
                    "Prediction drift in the last window",
                    _badge("yes", "bad")
                    if any(r["drift"] for r in prediction)
                    else _badge("no", "good"),
                )
            )
        shares = [r for r in data.dataset if r["window_start"] == latest]
        if shares:
            drift = any(r["drift"] for r in shares)
            share = max(r["value"] for r in shares)
            items.append(
                (
                    "Dataset drift in the last window",
                    f"{_pct(share)} of features drifted (threshold {_pct(shares[0]['threshold'])}) "
                    + (_badge("drift", "bad") if drift else _badge("no drift", "good")),
                )
            )
    states = Counter(a["state"] for a in data.all_alerts)
    items.append(
        (
            "Open alerts (now)",
            f"{_badge(str(states['open']), 'bad' if states['open'] else 'good')} open, "
            f"{states['acknowledged']} acknowledged, {states['resolved']} resolved",
        )
    )
    concept = [d for d in data.detections if d["kind"] == "concept_drift"]
    last = f", latest {_e(_fmt_time(concept[0]['detected_at']))}" if concept else ""
    items.append(("Concept-drift detections", f"{len(concept)}{last}"))
    if data.performance:
        latest_perf = max(r["window_start"] for r in data.performance)
        values = sorted(
            (r for r in data.performance if r["window_start"] == latest_perf),
            key=lambda r: (r["metric"], _version_key(r["model_version"])),
        )
        items.append(
            (
                "Latest performance",
                ", ".join(
                    f"{_e(r['metric'])} {_num(r['value'], 3)}"
                    + (f" (v{_e(r['model_version'])})" if data.multi_version else "")
                    for r in values
                )
                + f" <span class='muted'>({_e(_fmt_time(latest_perf))} window)</span>",
            )
        )
    if data.dead_letters is not None:
        items.append(
            (
                "Dead letters",
                f"{data.dead_letters} <span class='muted'>(rejected inputs of every model, "
                "still kept)</span>",
            )
        )
    cells = "".join(f'<div class="item"><dt>{_e(k)}</dt><dd>{v}</dd></div>' for k, v in items)
    return f'<section class="summary" id="summary"><h2>Summary</h2><dl>{cells}</dl></section>'


def _latest_table(data: _Data) -> str:
    latest = _latest_start(data)
    if latest is None:
        return ""
    rows = [r for r in data.features if r["window_start"] == latest]
    if not rows:
        return ""
    groups: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = defaultdict(dict)
    for row in rows:
        groups[(row["model_version"], row.get("segment") or "", row["feature"])][row["metric"]] = (
            row
        )
    metric_names = [
        m
        for m in ("psi", "ks", "chi2", "cramers_v", "jensenshannon", "wasserstein")
        if any(m in metrics for metrics in groups.values())
    ]
    metric_names += sorted({m for metrics in groups.values() for m in metrics} - set(metric_names))
    multi = data.multi_version or data.multi_segment
    headers = [
        *(["series"] if multi else []),
        "feature",
        "test",
        "statistic",
        "threshold",
        "p-value",
        "drift",
        *metric_names,
        "events",
        "reference n",
        "missing",
        "out of range",
    ]
    table_rows = []
    for (version, segment, feature), metrics in sorted(
        groups.items(),
        key=lambda kv: (_version_key(kv[0][0]), kv[0][1], kv[0][2] == PREDICTION_FEATURE, kv[0][2]),
    ):
        primary = next((r for r in metrics.values() if r["primary"]), None)
        any_row = primary or next(iter(metrics.values()))
        cells = []
        if multi:
            cells.append(_e(data.series_suffix(version, segment).strip(" ()")))
        cells += [
            f"<b>{_e(_feature_name(feature))}</b>",
            _e(primary["metric"]) if primary else "–",
            _num(primary["value"]) if primary else "–",
            _num(primary["threshold"]) if primary else "–",
            _num(primary["pvalue"], 3) if primary else "–",
            (_badge("drift", "bad") if primary["drift"] else _badge("ok", "good"))
            if primary
            else "–",
            *(
                _num(metrics[m]["value"]) + ("*" if metrics[m]["drift"] else "")
                if m in metrics
                else "–"
                for m in metric_names
            ),
            _e(any_row["n_current"]),
            _e(any_row["n_reference"]),
            _pct(any_row["missing_rate"]),
            _pct(any_row["out_of_range_rate"]),
        ]
        table_rows.append(cells)
    end = max(r["window_end"] for r in rows)
    return (
        '<section id="latest-window"><h2>Latest window, per feature</h2>'
        f'<p class="muted">Window {_e(_fmt_time(latest))} → {_e(_fmt_time(end))}. '
        "<i>test</i> is the statistic deciding the verdict; * marks a statistic over its own "
        "threshold.</p>" + _table(headers, table_rows, "stats") + "</section>"
    )


def _alert_table(data: _Data) -> str:
    if not data.alerts:
        return '<p class="empty">No alerts in this range.</p>'
    rows = []
    for alert in sorted(data.alerts, key=lambda a: a.row["updated_at"], reverse=True)[:_TABLE_ROWS]:
        r = alert.row
        ack = "–"
        if r.get("acknowledged_by") or alert.acknowledged is not None:
            when = (
                _fmt_time(alert.acknowledged) if alert.acknowledged is not None else "time unknown"
            )
            if alert.acknowledged is not None and not alert.acknowledged_exact:
                when = f"by {when}"
            ack = f"{_e(r.get('acknowledged_by') or '?')}, {_e(when)}"
        resolved = "–"
        if alert.resolved is not None:
            resolved = f"{_e(r.get('resolved_by') or '?')}, {_e(_fmt_time(alert.resolved))}"
        rows.append(
            [
                f"<code>{_e(r['alert_id'][:12])}</code>",
                _badge(r["state"], {"open": "bad", "acknowledged": "warn"}.get(r["state"], "good")),
                _e(r["severity"]),
                _e(r["kind"]),
                _e(_feature_name(r["feature"])) if r.get("feature") else "–",
                _e(r["model_version"]),
                _e(_fmt_time(alert.opened)),
                ack,
                resolved,
                _e(r["occurrences"]),
                f"{_num(r['value'])} / {_num(r.get('threshold'))}",
                _e(r["message"]) + (f"<br><i>{_e(r['note'])}</i>" if r.get("note") else ""),
            ]
        )
    headers = [
        "alert",
        "state",
        "severity",
        "kind",
        "feature",
        "version",
        "opened",
        "acknowledged",
        "resolved",
        "occurrences",
        "value / threshold",
        "message",
    ]
    more = len(data.alerts) - _TABLE_ROWS
    tail = f'<p class="muted">{more} older alerts not shown.</p>' if more > 0 else ""
    return _table(headers, rows, "alerts") + tail


def _detection_table(data: _Data) -> str:
    if not data.detections:
        return '<p class="empty">No detections in this range.</p>'
    rows = [
        [
            _e(_fmt_time(d["detected_at"])),
            _e(d["kind"]),
            _e(d["detector"]),
            _e(_feature_name(d["feature"])) if d.get("feature") else "–",
            _e(d["model_version"]),
            _num(d["value"]),
            _num(d.get("threshold")),
            _e(d["severity"]),
            _e(", ".join(f"{k}={v}" for k, v in sorted((d.get("details") or {}).items()))),
        ]
        for d in data.detections[:_TABLE_ROWS]
    ]
    headers = ["detected", "kind", "detector", "feature", "version", "value", "threshold"]
    headers += ["severity", "details"]
    more = len(data.detections) - _TABLE_ROWS
    tail = f'<p class="muted">{more} older detections not shown.</p>' if more > 0 else ""
    return _table(headers, rows, "detections") + tail


_CSS: Final = """
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; margin: 0;
       color: #1f2933; background: #ffffff; }
header { padding: 20px 32px 8px; border-bottom: 1px solid #d9dee4; }
header h1 { margin: 0 0 6px; font-size: 24px; }
header p { margin: 2px 0; color: #52606d; font-size: 14px; }
main { padding: 8px 32px 32px; }
h2 { font-size: 18px; margin: 28px 0 10px; }
section.summary dl { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr));
       gap: 10px 24px; margin: 0; padding: 14px 18px; border: 1px solid #d9dee4;
       border-radius: 6px; background: #f7f9fb; }
section.summary dt { font-size: 12px; text-transform: uppercase; letter-spacing: .04em;
       color: #52606d; }
section.summary dd { margin: 2px 0 0; font-size: 15px; }
.badge { display: inline-block; padding: 0 7px; border-radius: 9px; font-size: 12px;
       font-weight: bold; border: 1px solid; }
.badge.bad { color: #a61b1b; border-color: #a61b1b; }
.badge.warn { color: #8a4b00; border-color: #8a4b00; }
.badge.good { color: #1e6b3a; border-color: #1e6b3a; }
.muted { color: #7b8794; font-size: 13px; }
.empty, .nodata { color: #52606d; font-style: italic; }
section.nodata { border: 2px dashed #cbd2d9; border-radius: 6px; padding: 14px 18px;
       margin-top: 20px; }
section.nodata h2 { margin-top: 0; }
.chart { border: 1px solid #e4e7eb; border-radius: 6px; padding: 4px; }
table { border-collapse: collapse; font-size: 13px; width: 100%; }
th, td { border-bottom: 1px solid #e4e7eb; padding: 4px 8px; text-align: left;
       vertical-align: top; }
th { background: #f0f4f8; }
table.stats td { font-variant-numeric: tabular-nums; }
footer { padding: 12px 32px; color: #7b8794; font-size: 12px; border-top: 1px solid #d9dee4; }
"""


def build_report(
    store: ReportStore,
    model: str,
    version: str | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
) -> str:
    """A self-contained HTML report of one model (all versions, or one).

    Parameters
    ----------
    store
        Where the aggregates are (a :class:`streams.store.ClickHouseStore`, or anything
        with the same query methods, see :class:`ReportStore`).
    model
        Model name.
    version
        One version, or None for every version of the model.
    since_ms, until_ms
        Windows, detections and alerts in ``[since_ms, until_ms)``, epoch ms UTC; None
        leaves that end open. The alert counts of the summary are always the current ones.

    Returns
    -------
    str
        One HTML document: no external script, stylesheet or image; plotly.js is inlined
        once. A model without closed windows gets a "no data yet" section.

    Raises
    ------
    ReportError
        The store knows nothing of the model (or version): ``"no events for model 'x'"``;
        or ``since_ms`` is not before ``until_ms``.
    streams.store.StoreError
        The store failed.
    """
    if since_ms is not None and until_ms is not None and since_ms >= until_ms:
        raise ReportError(
            f"empty time range: since ({_fmt_time(since_ms)}) is not before "
            f"until ({_fmt_time(until_ms)})"
        )
    data = _collect(store, model, version, since_ms, until_ms)
    figures = _Figures()
    parts: list[str] = [_summary(data)]

    if not data.has_windows:
        parts.append(
            '<section class="nodata" id="no-data"><h2>No data yet</h2>'
            f"<p>No closed windows for model <b>{_e(model)}</b>"
            + (f" version <b>{_e(version)}</b>" if version is not None else "")
            + (" in this time range" if since_ms is not None or until_ms is not None else "")
            + ". Drift and performance appear once predictions (and labels) have been "
            "published and the first event-time window has closed (its end has passed the "
            "watermark: the newest event time minus the allowed lateness).</p></section>"
        )
    else:
        parts.append(
            '<section id="data-drift"><h2>Data drift: PSI per feature</h2>'
            '<p class="muted">One line per feature (dotted: the model output); large diamonds '
            "mark windows where PSI crossed its threshold.</p>"
            + _psi_chart(data, figures)
            + "</section>"
        )
        parts.append(
            '<section id="dataset-drift"><h2>Dataset drift: share of drifted features</h2>'
            '<p class="muted">Red markers: windows judged as dataset drift. Bars: events per '
            "window (right axis).</p>" + _dataset_chart(data, figures) + "</section>"
        )
        parts.append(
            '<section id="performance"><h2>Model performance and concept drift</h2>'
            '<p class="muted">Windowed metrics from joined labels; × and dotted lines: '
            "concept-drift detections on the per-event loss.</p>"
            + _performance_chart(data, figures)
            + "</section>"
        )
    alert_chart = _alert_chart(data, figures)
    parts.append(
        '<section id="alerts"><h2>Alerts</h2>'
        + (
            '<p class="muted">Bars: time open (red) and acknowledged (orange); diamonds: resolved. '
            "Alerts still active run to the end of the report.</p>"
            if alert_chart
            else ""
        )
        + alert_chart
        + _alert_table(data)
        + "</section>"
    )
    if data.has_windows:
        parts.append(_latest_table(data))
    parts.append(
        '<section id="detections"><h2>Detections</h2>' + _detection_table(data) + "</section>"
    )

    versions = ", ".join(data.versions) if data.versions else "none"
    label = "version" if len(data.versions) == 1 else "versions"
    starts = [r["window_start"] for r in [*data.features, *data.dataset, *data.performance]]
    ends = [r["window_end"] for r in [*data.features, *data.dataset, *data.performance]]
    covered = (
        f"windows {_fmt_time(min(starts))} → {_fmt_time(max(ends))}" if starts else "no windows"
    )
    requested = ""
    if since_ms is not None or until_ms is not None:
        requested = (
            f"<p>Requested range: {_e(_fmt_time(since_ms) if since_ms is not None else 'start')}"
            f" → {_e(_fmt_time(until_ms) if until_ms is not None else 'now')}</p>"
        )
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    title = f"driftline report — {model}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style>{figures.head_script()}</head><body>"
        f"<header><h1>{_e(title)}</h1>"
        f"<p>Model <b>{_e(model)}</b>, {label} <b>{_e(versions)}</b> · {_e(covered)}</p>"
        f"{requested}</header>"
        f"<main>{''.join(parts)}</main>"
        f"<footer>Generated {_e(generated)} by driftline {_e(__version__)}. Times are UTC "
        "(event time). Self-contained: open it anywhere, no network needed.</footer>"
        "</body></html>\n"
    )


# ---------------------------------------------------------------------- command line

_INTEGER: Final = re.compile(r"[+-]?\d+")


def parse_time(text: str) -> int:
    """``--since``/``--until`` value: epoch milliseconds, or an ISO 8601 date or time.

    A time without a zone is UTC.

    Examples
    --------
    >>> parse_time("1717200000000")
    1717200000000
    >>> parse_time("2024-06-01T00:00:00Z"), parse_time("2024-06-01")
    (1717200000000, 1717200000000)
    >>> parse_time("2024-06-01T02:00:00+02:00")
    1717200000000
    """
    text = text.strip()
    if _INTEGER.fullmatch(text):
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither epoch milliseconds nor an ISO 8601 time "
            "(e.g. 2024-06-01T12:00:00Z or 2024-06-01)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _cmd_report(args: argparse.Namespace) -> int:
    from driftline.settings import load_settings
    from streams.store import ClickHouseStore, StoreError

    settings = load_settings()
    try:
        with ClickHouseStore.connect(
            settings.clickhouse_dsn,
            database=settings.clickhouse_database,
            raw_ttl_days=settings.raw_ttl_days,
        ) as store:
            text = build_report(
                store, args.model, args.version, since_ms=args.since, until_ms=args.until
            )
    except StoreError as exc:
        raise UsageError(str(exc)) from exc
    out = Path(args.out).expanduser().resolve()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write the report to {out}: {exc}") from exc
    what = args.model + (f" version {args.version}" if args.version else "")
    print(f"wrote the report of model {what} to {out}")
    return 0


def add_report_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``driftline report`` on an ``add_subparsers()`` object; returns its parser.

    The handler (``args.func(args) -> int``) opens the store named by the settings
    (``DRIFTLINE_CLICKHOUSE_DSN``, ``DRIFTLINE_DATA_DIR``, ...), writes the report to
    ``--out`` and prints where it went. Bad input raises :class:`UsageError`.
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "report",
        help="write a self-contained HTML report of a model's drift, performance and alerts",
        description=(
            "Write a self-contained HTML report (charts inlined, no network needed) of one "
            "model: data drift per feature, dataset drift, performance and concept drift, "
            "alerts, and the latest window's statistics."
        ),
    )
    parser.add_argument("--model", "-m", required=True, help="model name")
    parser.add_argument("--version", help="one model version (default: every version)")
    parser.add_argument(
        "--out",
        "-o",
        type=Path,
        default=Path("report.html"),
        help="HTML file to write (default: report.html)",
    )
    parser.add_argument(
        "--since",
        type=parse_time,
        help="first window start to include: ISO 8601 (UTC unless a zone is given) or epoch ms",
    )
    parser.add_argument("--until", type=parse_time, help="exclusive end of the range, like --since")
    parser.set_defaults(func=_cmd_report)
    return parser


if __name__ == "__main__":  # pragma: no cover
    _parser = argparse.ArgumentParser(prog="driftline")
    add_report_parser(_parser.add_subparsers(dest="command", required=True))
    _args = _parser.parse_args()
    try:
        sys.exit(_args.func(_args))
    except UsageError as _exc:
        print(f"driftline: error: {_exc}", file=sys.stderr)
        sys.exit(_exc.exit_code)
