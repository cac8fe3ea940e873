"""The ``driftline`` command line.

Exit codes follow the drift-check convention: 0 no drift, 1 drift, 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from driftline import __version__
from driftline.errors import UsageError


def _cmd_drift_compare(args: argparse.Namespace) -> int:
    from driftline import compare

    columns = [c.strip() for c in args.columns.split(",") if c.strip()] if args.columns else None
    result = compare.run_compare(
        args.reference,
        args.current,
        test=args.test,
        binning=args.binning,
        columns=columns,
        drift_share=args.drift_share,
        metrics=args.metrics,
    )
    if args.format == "json":
        text = compare.to_json(
            result,
            reference=str(args.reference),
            current=str(args.current),
            binning=args.binning,
            drift_share=args.drift_share,
        )
        _write(text + "\n", args.out)
    elif args.format == "html":
        _write(
            compare.render_html(result, str(args.reference), str(args.current), args.drift_share),
            args.out,
        )
    else:
        compare.render_table(result, str(args.reference), str(args.current), args.drift_share)
    return 1 if result.drift else 0


def _write(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        print(f"wrote {out}", file=sys.stderr)


def _cmd_demo(args: argparse.Namespace) -> int:
    from driftline import demo

    if args.files:
        return demo.run_files(seed=args.seed, rows=args.rows, out_dir=args.data_dir / "files")
    events = args.events if args.events is not None else (15_000 if args.quick else 60_000)
    hours = 24 if args.quick else 48
    demo.run(events=events, seed=args.seed, hours=hours, data_dir=args.data_dir)
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    import logging

    import uvicorn

    from driftline.settings import load_settings
    from streams.api import create_app
    from streams.embedded import EmbeddedRuntime

    settings = load_settings(
        config_file=args.config, data_dir=args.data_dir, api_host=args.host, api_port=args.port
    )
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from streams.api import ApiConfigError

    runtime = EmbeddedRuntime(settings)
    try:
        try:
            app = create_app(runtime, settings)
        except ApiConfigError as exc:
            raise UsageError(str(exc)) from None
        runtime.start()
        print(
            f"driftline serve: data in {settings.data_dir}, API on "
            f"http://{settings.api_host}:{settings.api_port} (docs at /docs)",
            file=sys.stderr,
            flush=True,
        )
        uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_level=args.log_level)
    finally:
        runtime.stop()
    return 0


def _cmd_config_show(args: argparse.Namespace) -> int:
    import json

    from driftline.settings import load_settings

    settings = load_settings(config_file=args.config)
    print(json.dumps(settings.masked_dict(), indent=2, default=str))
    return 0


def _api(args: argparse.Namespace) -> Any:
    from driftline.client import ApiClient
    from driftline.settings import load_settings

    url = args.url
    if url is None:
        settings = load_settings()
        url = f"http://{settings.api_host}:{settings.api_port}"
    return ApiClient(url, args.token)


def _cmd_models_register(args: argparse.Namespace) -> int:
    from detectors.columns import UnsupportedColumnError
    from detectors.profile import ReferenceProfile
    from driftline.tables import read_table

    columns = read_table(args.reference, role="reference")
    prediction = None
    if args.prediction_column:
        if args.prediction_column not in columns:
            raise UsageError(f"column '{args.prediction_column}' is not in '{args.reference}'")
        prediction = columns.pop(args.prediction_column)
    for name in args.exclude or []:
        columns.pop(name, None)
    try:
        profile = ReferenceProfile.from_columns(
            columns, prediction=prediction, model_name=args.name, model_version=args.version
        )
    except (UnsupportedColumnError, ValueError) as exc:
        raise UsageError(f"'{args.reference}': {exc}") from None
    result = _api(args).register(args.name, args.version, profile.to_json())
    state = "processed" if result.get("processed") else "accepted (still processing)"
    print(
        f"registered {args.name} version {args.version}: {len(profile.features)} features"
        f"{' + prediction' if prediction is not None else ''} profiled from "
        f"{args.reference}; {state}"
    )
    return 0


def _cmd_models_list(args: argparse.Namespace) -> int:
    from rich.table import Table

    from driftline.console import make_console

    table = Table(title="Models")
    for col in ("model", "version", "predictions", "first seen", "last seen", "open alerts"):
        table.add_column(col)
    for m in _api(args).models():
        table.add_row(
            m["model_name"],
            m["model_version"],
            str(m.get("predictions", 0)),
            _when(m.get("first_seen")),
            _when(m.get("last_seen")),
            str(m.get("open_alerts", 0)),
        )
    make_console().print(table)
    return 0


def _cmd_alerts_list(args: argparse.Namespace) -> int:
    import json

    from rich.table import Table

    from driftline.console import make_console

    alerts = _api(args).alerts(state=args.state, model=args.model, limit=args.limit)
    if args.json:
        print(json.dumps(alerts, indent=2))
        return 0
    table = Table(title=f"Alerts ({args.state or 'all states'})")
    for col in ("id", "state", "severity", "model", "kind", "feature", "opened", "message"):
        table.add_column(col, overflow="fold")
    for a in alerts:
        table.add_row(
            a["alert_id"],
            a["state"],
            a["severity"],
            f"{a['model_name']} v{a['model_version']}",
            a["kind"],
            a.get("feature") or "—",
            _when(a.get("opened_at")),
            a.get("message", ""),
        )
    make_console().print(table)
    return 0


def _cmd_alerts_act(args: argparse.Namespace) -> int:
    action = "acknowledge" if args.alerts_command == "ack" else "resolve"
    alert = _api(args).act(args.alert_id, action, args.note)
    pending = " (still being applied)" if alert.get("pending") else ""
    print(f"alert {alert['alert_id']} is {alert['state']}{pending}")
    return 0


def _when(ms: Any) -> str:
    from datetime import UTC, datetime

    if ms is None:
        return "—"
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", help="driftline serve's URL (default: from DRIFTLINE_API_HOST/PORT)"
    )
    parser.add_argument("--token", help="API bearer token (default: DRIFTLINE_TOKEN)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="driftline",
        description="Streaming ML monitoring: data drift, concept drift, alerts and retraining.",
    )
    parser.add_argument("--version", action="version", version=f"driftline {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    drift = sub.add_parser(
        "drift", help="drift checks on files", description="Drift checks on files."
    )
    drift_sub = drift.add_subparsers(dest="drift_command", metavar="SUBCOMMAND")
    drift_sub.required = True
    cmp = drift_sub.add_parser(
        "compare",
        help="compare a current data set to a reference, column by column",
        description=(
            "Compare a current data set to a reference (CSV, Parquet or JSON lines), column by "
            "column. Exit 0: no dataset drift; 1: dataset drift; 2: bad input."
        ),
    )
    cmp.add_argument(
        "--reference", "-r", required=True, type=Path, help="reference (training) data file"
    )
    cmp.add_argument(
        "--current", "-c", required=True, type=Path, help="current (production) data file"
    )
    cmp.add_argument(
        "--format",
        "-f",
        choices=("table", "json", "html"),
        default="table",
        help="output format (default: table)",
    )
    cmp.add_argument(
        "--test",
        choices=("auto", "psi", "ks", "chi2", "jensenshannon", "wasserstein"),
        default="auto",
        help="statistic that decides each column's verdict (default: auto, see README)",
    )
    cmp.add_argument(
        "--binning",
        choices=("quantile", "evidently"),
        default="quantile",
        help="PSI binning: reference quantiles (default) or Evidently 0.7's batch binning",
    )
    cmp.add_argument(
        "--metrics",
        choices=("all", "test"),
        default="all",
        help="all: every statistic per column (default); test: only the deciding one (faster)",
    )
    cmp.add_argument(
        "--columns", help="comma-separated columns to compare (default: all reference columns)"
    )
    cmp.add_argument(
        "--drift-share",
        type=float,
        default=0.5,
        help="share of drifted columns at which the dataset drifts (default: 0.5)",
    )
    cmp.add_argument(
        "--out", "-o", type=Path, help="write json/html output to this file instead of stdout"
    )
    cmp.set_defaults(func=_cmd_drift_compare)

    demo = sub.add_parser(
        "demo",
        help="run the main job end to end on a simulated prediction service",
        description=(
            "Train a small model, serve the embedded runtime and its HTTP API, publish "
            "predictions and delayed labels through the SDK with a drift injected halfway, "
            "and report when each detector fired. --files instead compares two sample CSVs."
        ),
    )
    demo.add_argument(
        "--events", type=int, help="predictions to publish (default 60000; 15000 with --quick)"
    )
    demo.add_argument("--quick", action="store_true", help="a smaller run (under a minute)")
    demo.add_argument("--seed", type=int, default=7, help="random seed (default: 7)")
    demo.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".driftline/demo"),
        help="the demo's data folder (wiped first)",
    )
    demo.add_argument(
        "--files", action="store_true", help="batch mode: write two sample CSVs and compare them"
    )
    demo.add_argument(
        "--rows", type=int, default=20_000, help="rows per CSV with --files (default: 20000)"
    )
    demo.set_defaults(func=_cmd_demo)

    serve = sub.add_parser(
        "serve",
        help="run the embedded runtime and its HTTP API",
        description=(
            "Run the embedded runtime (processors, durable input log, ClickHouse engine "
            "in-process) and its HTTP API. It owns the data dir while it runs."
        ),
    )
    serve.add_argument("--config", type=Path, help="YAML settings file (else DRIFTLINE_CONFIG)")
    serve.add_argument(
        "--data-dir", type=Path, help="data folder (else DRIFTLINE_DATA_DIR, default ./.driftline)"
    )
    serve.add_argument("--host", help="bind address (else DRIFTLINE_API_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (else DRIFTLINE_API_PORT, default 8000)")
    serve.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    serve.set_defaults(func=_cmd_serve)

    config = sub.add_parser("config", help="inspect settings", description="Inspect settings.")
    config_sub = config.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    config_sub.required = True
    show = config_sub.add_parser(
        "show",
        help="print the effective settings (secrets masked)",
        description="Print the effective settings (defaults < YAML < DRIFTLINE_* env), secrets masked.",
    )
    show.add_argument("--config", type=Path, help="YAML settings file (else DRIFTLINE_CONFIG)")
    show.set_defaults(func=_cmd_config_show)

    models = sub.add_parser("models", help="register and list models (talks to driftline serve)")
    models_sub = models.add_subparsers(dest="models_command", metavar="SUBCOMMAND")
    models_sub.required = True
    reg = models_sub.add_parser(
        "register",
        help="register a model version with the reference profile of its training data",
        description=(
            "Profile a reference (training) data file and register the model version with "
            "driftline serve; its predictions are compared to this profile from then on."
        ),
    )
    reg.add_argument("--name", required=True, help="model name")
    reg.add_argument("--version", required=True, help="model version")
    reg.add_argument(
        "--reference", required=True, type=Path, help="training data (CSV, Parquet, JSON lines)"
    )
    reg.add_argument("--prediction-column", help="column holding the model's output on that data")
    reg.add_argument(
        "--exclude", action="append", help="a column that is not a feature (repeatable)"
    )
    _client_options(reg)
    reg.set_defaults(func=_cmd_models_register)
    lst = models_sub.add_parser("list", help="list model versions seen")
    _client_options(lst)
    lst.set_defaults(func=_cmd_models_list)

    alerts = sub.add_parser(
        "alerts", help="list, acknowledge and resolve alerts (talks to driftline serve)"
    )
    alerts_sub = alerts.add_subparsers(dest="alerts_command", metavar="SUBCOMMAND")
    alerts_sub.required = True
    al = alerts_sub.add_parser("list", help="list alerts, most recently updated first")
    al.add_argument("--state", choices=("open", "acknowledged", "resolved"))
    al.add_argument("--model")
    al.add_argument("--limit", type=int, default=100)
    al.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _client_options(al)
    al.set_defaults(func=_cmd_alerts_list)
    for name, verb in (("ack", "acknowledge"), ("resolve", "resolve")):
        p = alerts_sub.add_parser(name, help=f"{verb} an alert")
        p.add_argument("alert_id")
        p.add_argument("--note", help="note recorded with the action")
        _client_options(p)
        p.set_defaults(func=_cmd_alerts_act)

    from driftline.report import add_report_parser

    add_report_parser(sub)

    from driftline.kafka_commands import add_kafka_parsers

    add_kafka_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"driftline: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:
        from streams.store import StoreError

        if not isinstance(exc, StoreError):
            raise
        # ClickHouse unreachable, or the data dir held by another process: say so, no traceback.
        print(f"driftline: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("driftline: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
