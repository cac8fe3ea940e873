"""Every command's bad input is one clear line and exit code 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXE = Path(sys.executable).with_name("driftline")


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [EXE, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (["serve"], {"DRIFTLINE_API_PORT": "eighty"}, "DRIFTLINE_API_PORT"),
        (["serve", "--host", "0.0.0.0"], {}, "DRIFTLINE_API_TOKENS"),
        (["config", "show"], {"DRIFTLINE_WINDOW_SECONDS": "-5"}, "DRIFTLINE_WINDOW_SECONDS"),
        (["config", "show", "--config", "missing.yaml"], {}, "missing.yaml"),
        (
            ["serve", "--data-dir", "data"],
            {"DRIFTLINE_CLICKHOUSE_DSN": "mysql://x"},
            "DRIFTLINE_CLICKHOUSE_DSN",
        ),
    ],
)
def test_bad_settings_exit_2_with_one_line(tmp_path, args, env, needle) -> None:
    proc = run(*args, env=env, cwd=tmp_path)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert needle in proc.stderr and "Traceback" not in proc.stderr


def test_report_of_an_unknown_model_exits_2(tmp_path) -> None:
    proc = run(
        "report",
        "--model",
        "nope",
        "--out",
        str(tmp_path / "r.html"),
        env={"DRIFTLINE_DATA_DIR": str(tmp_path)},
    )
    assert proc.returncode == 2 and "no events for model 'nope'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_building_the_parser_imports_no_processor_library() -> None:
    """``driftline --help`` (and every command before it runs) builds the whole parser: it
    must not import the processors' libraries (scipy, river, scikit-learn: ~1.6 s of
    imports that `streams.kafka_topics` once pulled in through `streams.topology`)."""
    heavy = ("scipy", "river", "sklearn", "pandas", "streams.topology", "chdb", "fastapi")
    code = (
        "import sys\n"
        "from driftline.cli import build_parser\n"
        "build_parser()\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_every_command_has_help() -> None:
    for args in (
        ["--help"],
        ["drift", "compare", "--help"],
        ["serve", "--help"],
        ["demo", "--help"],
        ["report", "--help"],
        ["models", "register", "--help"],
        ["alerts", "list", "--help"],
        ["config", "show", "--help"],
    ):
        proc = run(*args)
        assert proc.returncode == 0 and "usage: driftline" in proc.stdout, args
