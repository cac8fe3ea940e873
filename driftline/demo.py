"""``driftline demo``: the main job on sample data.

Generates a reference data set and a current one with a known, injected drift
(two numeric features shift, one category's share grows), writes both as CSV and
runs ``driftline drift compare`` on them. The streaming demo replaces this once
the embedded runtime lands.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DRIFTED = ("income", "tenure_months", "channel")


def sample_frames(seed: int, rows: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Reference and current columns; the columns in ``DRIFTED`` drift, the rest do not."""
    rng = np.random.default_rng(seed)

    def draw(n: int, shift: bool) -> dict[str, np.ndarray]:
        age = rng.normal(41, 12, n).clip(18, 90).round()
        income = rng.lognormal(10.6 + (0.35 if shift else 0.0), 0.5, n)
        tenure = rng.gamma(2.0, 18.0 if not shift else 30.0, n).round()
        balance = rng.normal(2_500, 900, n)
        balance[rng.random(n) < 0.03] = np.nan  # some missing values in both sets
        channel_p = [0.55, 0.30, 0.15] if not shift else [0.30, 0.30, 0.40]
        channel = rng.choice(np.array(["web", "branch", "phone"], dtype=object), n, p=channel_p)
        region = rng.choice(np.array(["north", "south", "east", "west"], dtype=object), n)
        return {
            "age": age,
            "income": income,
            "tenure_months": tenure,
            "balance": balance,
            "channel": channel,
            "region": region,
        }

    return draw(rows, shift=False), draw(rows, shift=True)


def write_csv(columns: dict[str, np.ndarray], path: Path) -> None:
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(columns).to_csv(path, index=False)


def run(*, seed: int = 7, rows: int = 20_000, out_dir: Path = Path(".driftline/demo")) -> int:
    from driftline import compare
    from driftline.console import make_console

    console = make_console()
    reference, current = sample_frames(seed, rows)
    ref_path, cur_path = out_dir / "reference.csv", out_dir / "current.csv"
    write_csv(reference, ref_path)
    write_csv(current, cur_path)
    console.print(
        f"[bold]driftline demo[/]: {rows:,} reference rows and {rows:,} current rows in {out_dir}/; "
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
