"""ClickHouse DDL of every driftline table, written once and run on chDB and on a server.

The statements live in ``schemas/clickhouse/<table>.sql`` (ClickHouse dialect, one
``CREATE TABLE IF NOT EXISTS`` each, with ``${database}`` and ``${raw_ttl_days}``
placeholders); this module fills them in. Every table is a ``ReplacingMergeTree`` whose
sorting key is the row's deterministic identity, so writing the same record twice
changes nothing once merged or read with ``FINAL``. Raw events (predictions, labels,
dead letters) expire after ``raw_ttl_days``.

Examples
--------
>>> statements = table_ddl("driftline", raw_ttl_days=7)
>>> statements[0]
'CREATE DATABASE IF NOT EXISTS driftline'
>>> len(statements) == len(TABLES) + 1
True
>>> "INTERVAL 7 DAY" in statements[1 + TABLES.index("predictions")]
True
"""

from __future__ import annotations

import re
from pathlib import Path
from string import Template
from typing import Final

__all__ = ["RAW_TABLES", "SQL_DIR", "TABLES", "table_ddl"]

SQL_DIR: Final = Path(__file__).parent / "clickhouse"

TABLES: Final[tuple[str, ...]] = (
    "predictions",
    "labels",
    "drift_metrics",
    "performance_metrics",
    "drift_detections",
    "alerts",
    "alert_acks",
    "model_versions",
    "reference_profiles",
    "dead_letters",
)
"""Every table, by name; ``schemas/clickhouse/<name>.sql`` creates it."""

RAW_TABLES: Final[tuple[str, ...]] = ("predictions", "labels", "dead_letters")
"""Tables of raw events, which carry a TTL of ``raw_ttl_days``."""

_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _statement(table: str) -> str:
    text = (SQL_DIR / f"{table}.sql").read_text(encoding="utf-8")
    # Comments document the file; the server gets the bare statement.
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    return "\n".join(lines).strip().rstrip(";")


def table_ddl(database: str = "driftline", raw_ttl_days: int = 30) -> list[str]:
    """Statements that create the database and every table, idempotently.

    Parameters
    ----------
    database
        Database to create the tables in (a plain identifier).
    raw_ttl_days
        Days raw events (predictions, labels, dead letters) are kept, counted from
        their event time (rejection time for dead letters).

    Returns
    -------
    list[str]
        ``CREATE DATABASE IF NOT EXISTS`` followed by one ``CREATE TABLE IF NOT EXISTS``
        per table of :data:`TABLES`, in that order; run each with ``client.command``.

    Raises
    ------
    ValueError
        ``database`` is not a plain identifier, or ``raw_ttl_days`` is not a positive int.
    """
    if not _IDENTIFIER.fullmatch(database):
        raise ValueError(f"database name {database!r} is not a plain identifier")
    if isinstance(raw_ttl_days, bool) or not isinstance(raw_ttl_days, int) or raw_ttl_days < 1:
        raise ValueError(f"raw_ttl_days must be a positive int, got {raw_ttl_days!r}")
    values = {"database": database, "raw_ttl_days": str(raw_ttl_days)}
    return [f"CREATE DATABASE IF NOT EXISTS {database}"] + [
        Template(_statement(table)).substitute(values) for table in TABLES
    ]
