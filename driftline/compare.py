"""``driftline drift compare``: batch drift between a reference and a current data set.

Thin: reading files is ``driftline.tables``, statistics are ``detectors.drift``;
this module picks the columns and renders the result.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

from detectors.drift import DatasetDrift, DriftConfig, compare_columns
from driftline.errors import UsageError
from driftline.tables import read_table

FORMATS = ("table", "json", "html")


def run_compare(
    reference: str | Path,
    current: str | Path,
    *,
    test: str = "auto",
    binning: str = "quantile",
    columns: list[str] | None = None,
    drift_share: float = 0.5,
    metrics: str = "all",
) -> DatasetDrift:
    """Compare two files column by column; raises ``UsageError`` on bad input."""
    ref = read_table(reference, role="reference")
    cur = read_table(current, role="current")
    wanted = columns if columns else list(ref)
    for name in wanted:
        if name not in ref:
            raise UsageError(f"column '{name}' is not in the reference file '{reference}'")
        if name not in cur:
            raise UsageError(
                f"column '{name}' is in the reference but not in the current file '{current}'"
            )
    config = DriftConfig(test=test, binning=binning, drift_share=drift_share, metrics=metrics)
    try:
        return compare_columns({c: ref[c] for c in wanted}, {c: cur[c] for c in wanted}, config)
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None


def to_json(result: DatasetDrift, **meta: Any) -> str:
    """The ``--format json`` document: ``{"dataset": {...}, "columns": [...]}``."""
    doc = result.to_dict()
    doc["dataset"].update(meta)
    return json.dumps(_finite(doc), indent=2, sort_keys=False)


def _finite(value: Any) -> Any:
    """JSON has no NaN: statistics that are undefined become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if value != 0 and abs(value) < 10 ** (-digits):
        return f"{value:.2e}"
    return f"{value:.{digits}f}"


def render_table(
    result: DatasetDrift, reference: str, current: str, drift_share: float = 0.5
) -> None:
    """Print a rich table to the terminal."""
    from rich.table import Table

    from driftline.console import make_console

    console = make_console()
    table = Table(title=f"Drift: {reference} → {current}", title_justify="left")
    for header in (
        "column",
        "kind",
        "test",
        "statistic",
        "p-value",
        "threshold",
        "missing",
        "drift",
    ):
        table.add_column(
            header, justify="right" if header not in ("column", "kind", "test") else "left"
        )
    for col in result.columns:
        verdict = "[bold red]DRIFT[/]" if col.drift else "[green]ok[/]"
        if getattr(col, "status", "ok") == "all_missing":
            verdict = "[yellow]all missing[/]"
        table.add_row(
            col.column,
            col.kind,
            col.test,
            _fmt(col.statistic),
            _fmt(col.pvalue),
            _fmt(col.threshold, 3),
            f"{col.missing_rate:.1%}",
            verdict,
        )
    console.print(table)
    verdict = "[bold red]DRIFT[/]" if result.drift else "[green]no drift[/]"
    console.print(
        f"Dataset: {verdict} — {result.n_drifted} of {result.n_features} columns drifted "
        f"(share {result.share_drifted:.2f}, dataset threshold {drift_share:.2f})"
    )


def render_html(
    result: DatasetDrift, reference: str, current: str, drift_share: float = 0.5
) -> str:
    """A self-contained HTML page (no scripts, no network)."""
    rows = []
    for col in result.columns:
        cls = "drift" if col.drift else "ok"
        rows.append(
            "<tr class='{cls}'><td>{c}</td><td>{k}</td><td>{t}</td><td>{s}</td><td>{p}</td>"
            "<td>{th}</td><td>{m:.1%}</td><td>{v}</td></tr>".format(
                cls=cls,
                c=html.escape(col.column),
                k=col.kind,
                t=col.test,
                s=_fmt(col.statistic),
                p=_fmt(col.pvalue),
                th=_fmt(col.threshold, 3),
                m=col.missing_rate,
                v="DRIFT" if col.drift else "ok",
            )
        )
    verdict = "Drift detected" if result.drift else "No drift"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>driftline drift report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; }}
th, td {{ padding: .3rem .8rem; border-bottom: 1px solid #ddd; text-align: right; }}
td:nth-child(-n+3), th:nth-child(-n+3) {{ text-align: left; }}
tr.drift td:last-child {{ color: #b00020; font-weight: bold; }}
tr.ok td:last-child {{ color: #1b5e20; }}
.verdict {{ font-size: 1.3rem; font-weight: bold; }}
</style></head><body>
<h1>driftline drift report</h1>
<p>Reference: <code>{html.escape(reference)}</code><br>Current: <code>{html.escape(current)}</code></p>
<p class="verdict" id="verdict">{verdict}: {result.n_drifted} of {result.n_features} columns drifted
(share {result.share_drifted:.2f}, threshold {drift_share:.2f})</p>
<table id="columns"><thead><tr><th>column</th><th>kind</th><th>test</th><th>statistic</th>
<th>p-value</th><th>threshold</th><th>missing</th><th>drift</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
</body></html>
"""
