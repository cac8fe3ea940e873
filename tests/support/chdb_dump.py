"""Rows of a driftline store, in a canonical form two processes can compare.

chDB allows one engine path per process, so a test reads the store of a worker that ran
as a subprocess through this module run as another subprocess::

    python -m tests.support.chdb_dump /abs/chdb/path DATABASE TABLE [TABLE ...]

prints ``{table: [repr(row), ...]}`` as JSON (rows under ``FINAL``, sorted). The test's
own store goes through :func:`table_rows` in-process, so both sides use the same code.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from schemas.rows import COLUMNS


def table_rows(client: Any, database: str, tables: list[str]) -> dict[str, list[str]]:
    """Every row of ``tables`` as a query sees it (``FINAL``), as sorted reprs.

    The pseudo-table ``models`` lists the model names found in ``predictions``.
    """
    out: dict[str, list[str]] = {}
    for table in tables:
        if table == "models":  # pseudo-table: the models whose predictions the store holds
            rows = client.query(
                f"SELECT DISTINCT model_name FROM {database}.predictions"
            ).result_rows
            out[table] = sorted(str(r[0]) for r in rows)
            continue
        cols = ", ".join(f"`{c}`" for c in COLUMNS[table])
        rows = client.query(f"SELECT {cols} FROM {database}.{table} FINAL").result_rows
        out[table] = sorted(map(repr, rows))
    return out


def main(argv: list[str]) -> int:
    import clickhouse_connect

    path, database, *tables = argv
    client = clickhouse_connect.get_client(dsn=f"chdb://{path}")
    try:
        json.dump(table_rows(client, database, tables), sys.stdout)
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
