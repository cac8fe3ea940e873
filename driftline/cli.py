"""The ``driftline`` command line.

Exit codes follow the drift-check convention: 0 no drift, 1 drift, 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

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

    return demo.run(seed=args.seed, rows=args.rows, out_dir=args.out_dir)


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
        help="run driftline on bundled sample data",
        description="Generate sample reference/current data with a known drift and compare them.",
    )
    demo.add_argument("--seed", type=int, default=7, help="random seed (default: 7)")
    demo.add_argument("--rows", type=int, default=20_000, help="rows per data set (default: 20000)")
    demo.add_argument(
        "--out-dir", type=Path, default=Path(".driftline/demo"), help="where the sample files go"
    )
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"driftline: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("driftline: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
