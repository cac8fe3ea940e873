"""`driftline drift compare`: verdicts, output formats, exit codes and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp

from driftline.cli import main


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    rng = np.random.default_rng(0)
    n = 3_000
    ref = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "y": rng.normal(size=n),
            "c": rng.choice(["a", "b", "c"], n),
            "empty": [None] * n,
        }
    )
    same = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "y": rng.normal(size=n),
            "c": rng.choice(["a", "b", "c"], n),
            "empty": [None] * n,
        }
    )
    shifted = same.assign(
        x=same["x"] + 1.0, y=same["y"] * 3, c=rng.choice(["a", "b", "c"], n, p=[0.8, 0.1, 0.1])
    )
    paths = tmp_path / "ref.csv", tmp_path / "same.parquet", tmp_path / "shifted.csv"
    ref.to_csv(paths[0], index=False)
    same.to_parquet(paths[1])
    shifted.to_csv(paths[2], index=False)
    return paths


def run_json(capsys, *args: str) -> tuple[int, dict]:
    code = main(["drift", "compare", "--format", "json", *args])
    return code, json.loads(capsys.readouterr().out)


def test_no_drift_exits_0_and_drift_exits_1(files, capsys) -> None:
    ref, same, shifted = files
    code, doc = run_json(capsys, "-r", str(ref), "-c", str(same))
    assert code == 0 and doc["dataset"]["drift"] is False
    code, doc = run_json(capsys, "-r", str(ref), "-c", str(shifted))
    assert code == 1 and doc["dataset"]["drift"] is True
    cols = {c["column"]: c for c in doc["columns"]}
    assert cols["x"]["drift"] and cols["y"]["drift"] and cols["c"]["drift"]
    assert doc["dataset"]["share_drifted"] == pytest.approx(1.0)
    for c in doc["columns"]:
        assert set(c) >= {"column", "test", "statistic", "pvalue", "threshold", "drift"}


def test_all_missing_column_is_reported_not_a_crash(files, capsys) -> None:
    ref, same, _ = files
    _, doc = run_json(capsys, "-r", str(ref), "-c", str(same))
    empty = next(c for c in doc["columns"] if c["column"] == "empty")
    assert empty["missing_rate"] == 1.0 and empty["drift"] is False
    assert empty["statistic"] is None  # NaN becomes null in JSON
    assert doc["dataset"]["n_features"] == 3  # the all-missing column is not evaluable


def test_ks_matches_scipy_on_the_files(files, capsys) -> None:
    ref, _, shifted = files
    _, doc = run_json(capsys, "-r", str(ref), "-c", str(shifted), "--test", "ks", "--columns", "x")
    x = doc["columns"][0]
    expected = ks_2samp(pd.read_csv(ref)["x"], pd.read_csv(shifted)["x"])
    assert x["test"] == "ks"
    assert abs(x["statistic"] - expected.statistic) < 1e-9
    assert abs(x["pvalue"] - expected.pvalue) < 1e-9


def test_table_and_html_formats(files, capsys, tmp_path) -> None:
    ref, _, shifted = files
    assert main(["drift", "compare", "-r", str(ref), "-c", str(shifted)]) == 1
    out = capsys.readouterr().out
    assert "DRIFT" in out and "Dataset" in out and "x" in out
    html_path = tmp_path / "r.html"
    assert (
        main(
            [
                "drift",
                "compare",
                "-r",
                str(ref),
                "-c",
                str(shifted),
                "-f",
                "html",
                "-o",
                str(html_path),
            ]
        )
        == 1
    )
    page = html_path.read_text()
    assert "<table" in page and "Drift detected" in page and "http" not in page


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d, ref: (d / "nope.csv", None), "current file '{cur}' does not exist"),
        (lambda d, ref: (d / "empty.csv", ""), "current file '{cur}' is empty"),
        (
            lambda d, ref: (d / "nocol.csv", "x,y\n1,2\n"),
            "column 'c' is in the reference but not in the current file",
        ),
        (lambda d, ref: (d / "hdr.csv", "x,y,c,empty\n"), "has no rows"),
        (lambda d, ref: (d / "data.txt", "x\n1\n"), "unsupported format '.txt'"),
    ],
)
def test_bad_input_exits_2_with_one_line(files, capsys, tmp_path, make, message) -> None:
    ref = files[0]
    cur, content = make(tmp_path, ref)
    if content is not None:
        cur.write_text(content)
    code = main(["drift", "compare", "-r", str(ref), "-c", str(cur)])
    err = capsys.readouterr().err
    assert code == 2
    assert message.format(cur=cur) in err
    assert len(err.strip().splitlines()) == 1


def test_unsupported_column_type_names_the_column(tmp_path, capsys) -> None:
    frame = pd.DataFrame({"when": pd.date_range("2024-01-01", periods=10), "x": range(10)})
    path = tmp_path / "t.parquet"
    frame.to_parquet(path)
    code = main(["drift", "compare", "-r", str(path), "-c", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and "column 'when'" in err and "unsupported type" in err


def test_console_script_help_and_exit_code(files) -> None:
    ref, _, shifted = files
    exe = Path(sys.executable).with_name("driftline")
    help_out = subprocess.run(
        [exe, "drift", "compare", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--binning" in help_out and "evidently" in help_out
    proc = subprocess.run(
        [exe, "drift", "compare", "-r", ref, "-c", shifted, "-f", "json"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and json.loads(proc.stdout)["dataset"]["drift"] is True
    bad = subprocess.run([exe, "drift", "compare", "-r", ref], capture_output=True, text=True)
    assert bad.returncode == 2 and "--current" in bad.stderr


def test_demo_finds_the_injected_drift(tmp_path, capsys) -> None:
    assert main(["demo", "--files", "--rows", "5000", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Injected drift found in 3 of 3 columns; false alarms: 0" in out
