"""The store: every driftline table in ClickHouse, written and read through clickhouse-connect.

This module owns the one store both runtimes use (:class:`ClickHouseStore`): opening
it from a DSN, the versioned schema migrations, batch inserts of topic records and
the read queries of the HTTP API, the CLI and the HTML report. The SQL is written
once, in ClickHouse's dialect, and runs unchanged on

- the embedded engine, ``chdb:///abs/path`` (clickhouse-connect's chDB backend, in
  this process), and
- a ClickHouse server, ``http://user:password@host:8123`` (or ``https://``).

chDB allows one engine path per process and one process per path (see
``DESIGN.md``), so a store is built either from a DSN (:meth:`ClickHouseStore.connect`)
or around a client that already exists (the test session's, or one shared by several
stores of a process).

Writes are idempotent: every table is a ``ReplacingMergeTree`` keyed by the row's
deterministic identity, and every read of a revisable table uses ``FINAL``, so writing
the same records again changes no query result. Timestamps are ``int`` epoch
milliseconds on the way in and on the way out. User input reaches ClickHouse only as
query parameters (``parameters=``), never formatted into SQL; the database name, the
only identifier formatted into statements, is checked to be a plain identifier.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

import clickhouse_connect
from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError

from schemas.columns import PredictionColumns, PredictionRows, join_groups
from schemas.ddl import RAW_TABLES, TABLES, table_ddl
from schemas.native import native_block, rowbinary
from schemas.rows import COLUMNS, topic_rows
from schemas.topics import DATASET_FEATURE, Topic

__all__ = [
    "ALERT_STATES",
    "MIGRATIONS",
    "ClickHouseStore",
    "Migration",
    "StoreError",
    "mask_dsn",
]

AlertState = Literal["open", "acknowledged", "resolved"]

ALERT_STATES: Final[tuple[str, ...]] = ("open", "acknowledged", "resolved")
"""States of an alert, in lifecycle order."""

_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# DateTime64 columns, returned as int epoch ms (toUnixTimestamp64Milli). The tests check
# this set against system.columns, so a new timestamp column cannot slip through as datetime.
_TIME_COLUMNS: Final[frozenset[str]] = frozenset(
    {
        "timestamp",
        "window_start",
        "window_end",
        "detected_at",
        "opened_at",
        "updated_at",
        "received_at",
        "created_at",
        "stored_at",
    }
)

_MIGRATIONS_TABLE: Final = "schema_migrations"


class StoreError(Exception):
    """ClickHouse cannot be reached or opened, the DSN is malformed, or a statement failed.

    The message says which and, where there is one, what to do about it. Passwords in
    DSNs are masked. The ClickHouse exception, if any, is chained as ``__cause__``.
    """


@dataclass(frozen=True)
class Migration:
    """One step of the schema's history.

    Parameters
    ----------
    version
        Position in the history, from 1, without gaps; applied in increasing order.
    name
        What the step does, recorded in ``schema_migrations``.
    statements
        ``(database, raw_ttl_days) -> list[str]``: the statements to run, in order.
        Each must be idempotent (``IF NOT EXISTS``, ...), so that a step interrupted
        half-way, or run by two processes at once, can simply run again.
    """

    version: int
    name: str
    statements: Callable[[str, int], list[str]]


MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(1, "create tables", table_ddl),
    # Append new steps here, e.g.
    # Migration(2, "add drift_metrics.bins", lambda db, ttl: [
    #     f"ALTER TABLE {db}.drift_metrics ADD COLUMN IF NOT EXISTS bins Array(Float64)"]),
    # and change schemas/clickhouse/*.sql so a fresh database gets the same end state.
)
"""The schema's history, oldest first; :meth:`ClickHouseStore.migrate` applies what is missing."""


def mask_dsn(dsn: str) -> str:
    """The DSN with its password, if any, replaced by ``***`` (for messages and logs).

    Parameters
    ----------
    dsn
        Any URL-shaped string.

    Returns
    -------
    str
        ``dsn`` unchanged when it carries no password.

    Examples
    --------
    >>> mask_dsn("http://alice:s3cret@ch.internal:8123/monitoring")
    'http://alice:***@ch.internal:8123/monitoring'
    >>> mask_dsn("chdb:///var/lib/driftline/clickhouse")
    'chdb:///var/lib/driftline/clickhouse'
    """
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", dsn)
    if parts.password is None:
        return dsn
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def _check_database(database: str) -> str:
    if not isinstance(database, str) or not _IDENTIFIER.fullmatch(database):
        raise ValueError(f"database name {database!r} is not a plain identifier")
    return database


def _check_ttl(raw_ttl_days: int) -> int:
    if isinstance(raw_ttl_days, bool) or not isinstance(raw_ttl_days, int) or raw_ttl_days < 1:
        raise ValueError(f"raw_ttl_days must be a positive int, got {raw_ttl_days!r}")
    return raw_ttl_days


def _check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive int, got {limit!r}")
    return limit


def _version_key(version: str) -> tuple[int, int, str]:
    # "10" after "9": registries number versions, and people read them as numbers.
    return (0, int(version), "") if version.isdigit() else (1, 0, version)


class _Where:
    """Conditions of a WHERE clause and their parameters, built from constant SQL fragments."""

    def __init__(self) -> None:
        self.conditions: list[str] = []
        self.parameters: dict[str, Any] = {}

    def add(self, condition: str, **parameters: Any) -> None:
        self.conditions.append(condition)
        self.parameters.update(parameters)

    def equal(self, column: str, value: str | None) -> None:
        if value is not None:
            self.add(f"t.`{column}` = {{{column}:String}}", **{column: value})

    def time_range(self, column: str, since_ms: int | None, until_ms: int | None) -> None:
        if since_ms is not None:
            self.add(
                f"t.`{column}` >= fromUnixTimestamp64Milli({{since_ms:Int64}}, 'UTC')",
                since_ms=int(since_ms),
            )
        if until_ms is not None:
            self.add(
                f"t.`{column}` < fromUnixTimestamp64Milli({{until_ms:Int64}}, 'UTC')",
                until_ms=int(until_ms),
            )

    def sql(self) -> str:
        return f"WHERE {' AND '.join(self.conditions)}" if self.conditions else ""


def _select_list(table: str) -> str:
    """Every insert column of ``table``, timestamps as epoch ms, read from alias ``t``."""
    columns = []
    for column in COLUMNS[table]:
        if column in _TIME_COLUMNS:
            columns.append(f"toUnixTimestamp64Milli(t.`{column}`) AS `{column}`")
        else:
            columns.append(f"t.`{column}` AS `{column}`")
    return ", ".join(columns)


_RAW_EVENT_TABLES: Final[dict[Topic, str]] = {
    Topic.PREDICTIONS: "predictions",
    Topic.LABELS: "labels",
}


class ClickHouseStore:
    """Every driftline table in one ClickHouse database: migrations, batch writes, queries.

    Parameters
    ----------
    client
        A clickhouse-connect client (chDB backend or HTTP). The store never changes the
        client's default database: every statement names ``database`` explicitly, so
        one client can serve several stores.
    database
        Database holding the tables (a plain identifier); created by :meth:`migrate`.
    raw_ttl_days
        Days raw events (predictions, labels, dead letters) are kept.

    Notes
    -----
    A store built around a client leaves the client open on :meth:`close`; a store
    from :meth:`connect` owns its client and closes it. The constructor does no I/O;
    call :meth:`migrate` before the first write (``connect`` does).

    Examples
    --------
    In a service (a test uses the session's client instead, see ``tests/conftest.py``)::

        with ClickHouseStore.connect("chdb:///var/lib/driftline/clickhouse") as store:
            store.write(Topic.PREDICTIONS, records)      # -> rows inserted
            store.alerts(state="open", model="churn")    # -> [{"alert_id": ..., ...}]
    """

    def __init__(self, client: Any, database: str = "driftline", raw_ttl_days: int = 30) -> None:
        self._client = client
        self.database = _check_database(database)
        self.raw_ttl_days = _check_ttl(raw_ttl_days)
        self._owns_client = False
        self._closed = False
        # table -> its columns' ClickHouse types (COLUMNS[table] order), read once: without
        # them every insert asks the server first (a DESCRIBE-like query per insert)
        self._column_types: dict[str, Sequence[Any]] = {}

    # ------------------------------------------------------------------ opening, closing

    @classmethod
    def connect(
        cls,
        dsn: str,
        database: str | None = None,
        raw_ttl_days: int = 30,
        *,
        migrate: bool = True,
        connect_timeout: float = 10.0,
    ) -> ClickHouseStore:
        """Open the store a DSN names, and bring its schema up to date.

        Parameters
        ----------
        dsn
            ``chdb:///absolute/path`` (embedded engine; the directory is created if
            missing) or ``http[s]://[user[:password]@]host[:port][/database]``.
        database
            Database holding the tables; ``None`` takes it from the DSN's path, else
            ``"driftline"``. It need not exist yet.
        raw_ttl_days
            Days raw events are kept.
        migrate
            Apply missing migrations (:meth:`migrate`) before returning.
        connect_timeout
            Seconds to wait for a ClickHouse server to accept the connection.

        Returns
        -------
        ClickHouseStore
            A store owning its client (closed by :meth:`close`).

        Raises
        ------
        StoreError
            The DSN is malformed, the server cannot be reached or refuses the login,
            the embedded engine cannot be opened (another process holds the path, or
            this process already runs an engine on another path), or a migration fails.
        """
        try:
            parts = urlsplit(dsn)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"malformed ClickHouse DSN {mask_dsn(str(dsn))!r}: {exc}") from exc
        scheme = parts.scheme.lower()
        if scheme == "chdb":
            client, dsn_database = _open_chdb(dsn, parts), None
        elif scheme in ("http", "https"):
            client, dsn_database = _open_http(dsn, parts, connect_timeout)
        else:
            raise StoreError(
                f"unsupported ClickHouse DSN {mask_dsn(dsn)!r}: use chdb:///absolute/path "
                "(embedded) or http[s]://user:password@host:port (server)"
            )
        try:
            store = cls(client, database or dsn_database or "driftline", raw_ttl_days)
        except ValueError:
            client.close()
            raise
        store._owns_client = True
        if migrate:
            try:
                store.migrate()
            except BaseException:
                store.close()
                raise
        return store

    def close(self) -> None:
        """Release the store; closes the client only if :meth:`connect` opened it."""
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> ClickHouseStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ low level

    @contextmanager
    def _failures(self, action: str) -> Iterator[None]:
        if self._closed:
            raise StoreError(f"{action}: the store is closed")
        try:
            yield
        except ClickHouseError as exc:
            raise StoreError(f"{action} in database {self.database!r} failed: {exc}") from exc

    def _command(self, sql: str, action: str, parameters: Mapping[str, Any] | None = None) -> None:
        with self._failures(action):
            self._client.command(sql, parameters=dict(parameters or {}))

    def _rows(
        self,
        sql: str,
        action: str,
        parameters: Mapping[str, Any] | None = None,
        column_formats: Mapping[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        with self._failures(action):
            result = self._client.query(
                sql,
                parameters=dict(parameters or {}),
                column_formats=dict(column_formats) if column_formats else None,
            )
            return list(result.named_results())

    def _table(self, table: str) -> str:
        return f"{self.database}.{table}"

    # ------------------------------------------------------------------ migrations

    def current_version(self) -> int:
        """Highest migration version applied to the database; 0 if none (or no database).

        Raises
        ------
        StoreError
            ClickHouse failed.
        """
        exists = self._rows(
            "SELECT count() AS n FROM system.tables WHERE database = {db:String} AND name = {t:String}",
            "reading the schema version",
            {"db": self.database, "t": _MIGRATIONS_TABLE},
        )
        if not exists[0]["n"]:
            return 0
        rows = self._rows(
            f"SELECT max(version) AS v FROM {self._table(_MIGRATIONS_TABLE)} FINAL",
            "reading the schema version",
        )
        return int(rows[0]["v"])

    def migrate(self) -> list[int]:
        """Create the database and apply the migrations it lacks; idempotent.

        Also brings the raw tables' TTL to :attr:`raw_ttl_days` when the tables were
        created with another value (``ALTER TABLE ... MODIFY TTL``).

        Returns
        -------
        list[int]
            Versions applied by this call (empty when the schema was up to date).

        Raises
        ------
        StoreError
            A statement failed, or the database was migrated by a newer driftline
            (its version is above every known migration).
        """
        self._command(f"CREATE DATABASE IF NOT EXISTS {self.database}", "creating the database")
        self._command(
            f"""CREATE TABLE IF NOT EXISTS {self._table(_MIGRATIONS_TABLE)}
            (
                version UInt32,
                name String,
                applied_at DateTime64(3, 'UTC')
            )
            ENGINE = ReplacingMergeTree
            ORDER BY version""",
            "creating schema_migrations",
        )
        current = self.current_version()
        latest = MIGRATIONS[-1].version
        if current > latest:
            raise StoreError(
                f"database {self.database!r} is at schema version {current}, newer than this "
                f"driftline knows ({latest}); upgrade driftline"
            )
        applied = []
        self._column_types.clear()  # (a migration may change them)
        for migration in MIGRATIONS:
            if migration.version <= current:
                continue
            action = f"migration {migration.version} ({migration.name})"
            for statement in migration.statements(self.database, self.raw_ttl_days):
                self._command(statement, action)
            with self._failures(action):
                self._client.insert(
                    _MIGRATIONS_TABLE,
                    [(migration.version, migration.name, datetime.now(UTC))],
                    column_names=("version", "name", "applied_at"),
                    database=self.database,
                )
            applied.append(migration.version)
        self._sync_ttl()
        return applied

    def _sync_ttl(self) -> None:
        rows = self._rows(
            "SELECT name, engine_full FROM system.tables "
            "WHERE database = {db:String} AND name IN {names:Array(String)}",
            "reading table TTLs",
            {"db": self.database, "names": list(RAW_TABLES)},
        )
        engines = {row["name"]: row["engine_full"] for row in rows}
        wanted = dict(zip(TABLES, table_ddl(self.database, self.raw_ttl_days)[1:], strict=True))
        for table in RAW_TABLES:
            days = re.search(r"toIntervalDay\((\d+)\)", engines.get(table, ""))
            ttl = re.search(r"^TTL (.+)$", wanted[table], re.MULTILINE)
            if days is None or ttl is None or int(days.group(1)) == self.raw_ttl_days:
                continue
            self._command(
                f"ALTER TABLE {self._table(table)} MODIFY TTL {ttl.group(1)}",
                f"changing the TTL of {table} to {self.raw_ttl_days} days",
            )

    # ------------------------------------------------------------------ writes

    def write(self, topic: Topic, records: Sequence[Mapping[str, Any]] | PredictionColumns) -> int:
        """Insert one batch of a topic's records: one insert per table, not per row.

        Parameters
        ----------
        topic
            A stored topic (``schemas.rows.TOPIC_TABLES``): every topic but retrain
            requests. Model events fill ``model_versions`` and, when they carry a
            ``reference_profile``, ``reference_profiles``.
        records
            Records shaped like the topic's Avro schema (timestamps in epoch ms), or
            predictions decoded into columns (:class:`schemas.columns.PredictionColumns`,
            inserted as the RowBinary rows they carry). The raw events' RowBinary rows go
            to ClickHouse as a Native block when the extension converts them
            (:func:`schemas.native.native_block`), else as they are.

        Returns
        -------
        int
            Rows inserted, over all tables (a model event with a profile counts twice).

        Raises
        ------
        ValueError
            The topic is not stored, or a record does not fit its table (the message
            names the record's position); nothing is inserted.
        StoreError
            ClickHouse refused the insert. With model events, ``model_versions`` may
            already hold the batch; writing it again is harmless (writes are idempotent).
        """
        table = _RAW_EVENT_TABLES.get(topic)
        block: bytes | None = None
        if isinstance(records, PredictionColumns | PredictionRows):
            if topic == Topic.PREDICTIONS:  # decoded with their rows (what rowbinary writes)
                block = records.rows
            else:
                records = records.records()
        elif table is not None and records:
            # The raw events, by far the most rows: written as RowBinary by the native
            # extension when every record has the common shape (the same rows as below).
            block = rowbinary(table, records)
        if block is not None and table is not None:
            if not len(records):
                return 0
            # The same rows as one Native block: ClickHouse parses it column by column,
            # several times faster than RowBinary (converted without holding the GIL).
            native = native_block(table, block)
            with self._failures(f"writing {len(records)} rows of {topic} to {table}"):
                self._client.raw_insert(
                    f"{self.database}.{table}",
                    COLUMNS[table],
                    insert_block=block if native is None else native,
                    fmt="RowBinary" if native is None else "Native",
                )
            return len(records)
        batches = topic_rows(topic, records)
        inserted = 0
        for table, rows in batches.items():
            with self._failures(f"writing {len(rows)} rows of {topic} to {table}"):
                types = self._column_types.get(table)
                if types is None:
                    context = self._client.create_insert_context(
                        table, COLUMNS[table], database=self.database
                    )
                    types = self._column_types[table] = list(context.column_types)
                try:
                    self._client.insert(
                        table,
                        rows,
                        column_names=COLUMNS[table],
                        database=self.database,
                        column_types=types,
                    )
                except Exception:
                    self._column_types.pop(table, None)  # (read again next time)
                    raise
            inserted += len(rows)
        return inserted

    # ------------------------------------------------------------------ queries

    def counts(self) -> dict[str, int]:
        """Logical rows (after de-duplication, ``FINAL``) of every table of ``schemas.ddl.TABLES``.

        Returns
        -------
        dict[str, int]
            Table name → rows; alerts count once per alert, not per revision.
        """
        union = " UNION ALL ".join(
            f"SELECT '{table}' AS name, count() AS n FROM {self._table(table)} FINAL"
            for table in TABLES
        )
        rows = self._rows(union, "counting rows")
        found = {row["name"]: int(row["n"]) for row in rows}
        return {table: found[table] for table in TABLES}

    def models(self) -> list[dict[str, Any]]:
        """Every model version seen in predictions, alerts or model events.

        Returns
        -------
        list[dict]
            One dict per (model_name, model_version), sorted by name then version
            (numeric versions numerically): ``predictions`` (raw events still kept),
            ``first_seen`` / ``last_seen`` (epoch ms of the first / last prediction, or
            None), ``open_alerts``, ``acknowledged_alerts``, ``last_event`` (latest
            model event type, e.g. ``"registered"``, or None) and ``last_event_at``.
        """
        action = "listing models"
        models: dict[tuple[str, str], dict[str, Any]] = {}

        def entry(row: Mapping[str, Any]) -> dict[str, Any]:
            key = (row["model_name"], row["model_version"])
            if key not in models:
                models[key] = {
                    "model_name": key[0],
                    "model_version": key[1],
                    "predictions": 0,
                    "first_seen": None,
                    "last_seen": None,
                    "open_alerts": 0,
                    "acknowledged_alerts": 0,
                    "last_event": None,
                    "last_event_at": None,
                }
            return models[key]

        for row in self._rows(
            f"""SELECT model_name, model_version, count() AS predictions,
                toUnixTimestamp64Milli(min(timestamp)) AS first_seen,
                toUnixTimestamp64Milli(max(timestamp)) AS last_seen
            FROM {self._table("predictions")} FINAL
            GROUP BY model_name, model_version""",
            action,
        ):
            entry(row).update(
                predictions=int(row["predictions"]),
                first_seen=int(row["first_seen"]),
                last_seen=int(row["last_seen"]),
            )
        for row in self._rows(
            f"""SELECT model_name, model_version,
                countIf(state = 'open') AS open_alerts,
                countIf(state = 'acknowledged') AS acknowledged_alerts
            FROM {self._table("alerts")} FINAL
            GROUP BY model_name, model_version""",
            action,
        ):
            entry(row).update(
                open_alerts=int(row["open_alerts"]),
                acknowledged_alerts=int(row["acknowledged_alerts"]),
            )
        for row in self._rows(
            f"""SELECT model_name, model_version,
                argMax(event_type, timestamp) AS last_event,
                toUnixTimestamp64Milli(max(timestamp)) AS last_event_at
            FROM {self._table("model_versions")} FINAL
            GROUP BY model_name, model_version""",
            action,
        ):
            entry(row).update(last_event=row["last_event"], last_event_at=int(row["last_event_at"]))
        return [
            models[key] for key in sorted(models, key=lambda key: (key[0], _version_key(key[1])))
        ]

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
    ) -> list[dict[str, Any]]:
        """Drift metrics of a model over time (rows of ``drift_metrics``).

        Parameters
        ----------
        model, version
            Model name; version, or None for every version.
        feature
            One feature, a pseudo-feature (``"__prediction__"``, ``"__dataset__"``),
            or None for all.
        metric
            One statistic (``"psi"``, ``"ks"``, ...) or None for all.
        segment
            One segment, ``""`` for unsegmented windows, or None for all.
        primary_only
            Only the statistic that decides each feature's verdict.
        since_ms, until_ms
            Windows starting in ``[since_ms, until_ms)`` (epoch ms); None = open end.

        Returns
        -------
        list[dict]
            Rows with every column of ``drift_metrics`` (timestamps in epoch ms), by
            window start, segment, feature, metric.
        """
        where = _Where()
        where.equal("model_name", model)
        where.equal("model_version", version)
        where.equal("feature", feature)
        where.equal("metric", metric)
        where.equal("segment", segment)
        if primary_only:
            where.add("t.`primary`")
        where.time_range("window_start", since_ms, until_ms)
        return self._rows(
            f"""SELECT {_select_list("drift_metrics")}
            FROM {self._table("drift_metrics")} AS t FINAL
            {where.sql()}
            ORDER BY t.window_start, t.model_version, t.segment, t.feature, t.metric""",
            "reading drift metrics",
            where.parameters,
        )

    def dataset_drift_series(
        self,
        model: str,
        version: str | None = None,
        *,
        segment: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
    ) -> list[dict[str, Any]]:
        """Dataset-level drift per window (feature ``"__dataset__"``); see :meth:`drift_series`."""
        return self.drift_series(
            model,
            version,
            feature=DATASET_FEATURE,
            segment=segment,
            since_ms=since_ms,
            until_ms=until_ms,
        )

    def performance_series(
        self,
        model: str,
        version: str | None = None,
        *,
        metric: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
    ) -> list[dict[str, Any]]:
        """Windowed model quality (rows of ``performance_metrics``), by window start, metric.

        Parameters
        ----------
        model, version
            Model name; version, or None for every version.
        metric
            ``"accuracy"``, ``"f1"``, ``"rmse"``, ... or None for all.
        since_ms, until_ms
            Windows starting in ``[since_ms, until_ms)`` (epoch ms); None = open end.
        """
        where = _Where()
        where.equal("model_name", model)
        where.equal("model_version", version)
        where.equal("metric", metric)
        where.time_range("window_start", since_ms, until_ms)
        return self._rows(
            f"""SELECT {_select_list("performance_metrics")}
            FROM {self._table("performance_metrics")} AS t FINAL
            {where.sql()}
            ORDER BY t.window_start, t.model_version, t.metric""",
            "reading performance metrics",
            where.parameters,
        )

    def detections(
        self,
        model: str | None = None,
        version: str | None = None,
        *,
        kind: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """Detector firings (rows of ``drift_detections``), newest first.

        Parameters
        ----------
        model, version
            Filters; None = all.
        kind
            ``"data_drift"``, ``"concept_drift"``, ... or None for all.
        since_ms, until_ms
            Detections in ``[since_ms, until_ms)`` (epoch ms); None = open end.
        limit
            At most this many rows.
        """
        where = _Where()
        where.equal("model_name", model)
        where.equal("model_version", version)
        where.equal("kind", kind)
        where.time_range("detected_at", since_ms, until_ms)
        return self._rows(
            f"""SELECT {_select_list("drift_detections")}
            FROM {self._table("drift_detections")} AS t FINAL
            {where.sql()}
            ORDER BY t.detected_at DESC, t.detection_id
            LIMIT {{limit:UInt64}}""",
            "reading detections",
            {**where.parameters, "limit": _check_limit(limit)},
        )

    def alerts(
        self,
        state: AlertState | None = None,
        model: str | None = None,
        version: str | None = None,
        *,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Alerts in their latest revision, most recently updated first.

        Parameters
        ----------
        state
            ``"open"``, ``"acknowledged"``, ``"resolved"``, or None for all.
        model, version
            Filters; None = all.
        limit
            At most this many alerts.

        Raises
        ------
        ValueError
            Unknown ``state``.
        """
        if state is not None and state not in ALERT_STATES:
            raise ValueError(f"unknown alert state {state!r} (known: {', '.join(ALERT_STATES)})")
        where = _Where()
        where.equal("model_name", model)
        where.equal("model_version", version)
        # The state filter goes outside FINAL: a state is only meaningful for the
        # latest revision, and an older revision must not match on its own.
        outer = "WHERE state = {state:String}" if state is not None else ""
        parameters: dict[str, Any] = {**where.parameters, "limit": _check_limit(limit)}
        if state is not None:
            parameters["state"] = state
        return self._rows(
            f"""SELECT * FROM (
                SELECT {_select_list("alerts")}
                FROM {self._table("alerts")} AS t FINAL
                {where.sql()}
            )
            {outer}
            ORDER BY updated_at DESC, alert_id
            LIMIT {{limit:UInt64}}""",
            "reading alerts",
            parameters,
        )

    def alert(self, alert_id: str) -> dict[str, Any] | None:
        """The latest revision of one alert, or None if there is no such alert."""
        rows = self._rows(
            f"""SELECT {_select_list("alerts")}
            FROM {self._table("alerts")} AS t FINAL
            WHERE t.alert_id = {{alert_id:String}}
            ORDER BY t.revision DESC
            LIMIT 1""",
            "reading an alert",
            {"alert_id": alert_id},
        )
        return rows[0] if rows else None

    def dead_letters(
        self, limit: int = 100, source_topic: str | None = None
    ) -> list[dict[str, Any]]:
        """Rejected inputs, newest first; ``raw`` is ``bytes``.

        Parameters
        ----------
        limit
            At most this many rows.
        source_topic
            Only those rejected from this topic; None = all.
        """
        where = _Where()
        where.equal("source_topic", source_topic)
        return self._rows(
            f"""SELECT {_select_list("dead_letters")}
            FROM {self._table("dead_letters")} AS t FINAL
            {where.sql()}
            ORDER BY t.received_at DESC, t.dead_letter_id
            LIMIT {{limit:UInt64}}""",
            "reading dead letters",
            {**where.parameters, "limit": _check_limit(limit)},
            column_formats={"raw": "bytes"},
        )

    def dead_letter_count(self, source_topic: str | None = None) -> int:
        """Number of dead letters still kept, from one source topic or all."""
        where = _Where()
        where.equal("source_topic", source_topic)
        rows = self._rows(
            f"SELECT count() AS n FROM {self._table('dead_letters')} AS t FINAL {where.sql()}",
            "counting dead letters",
            where.parameters,
        )
        return int(rows[0]["n"])

    def reference_profile(self, model: str, version: str) -> str | None:
        """The latest ``ReferenceProfile`` JSON stored for a model version, or None."""
        rows = self._rows(
            f"""SELECT t.profile AS profile
            FROM {self._table("reference_profiles")} AS t FINAL
            WHERE t.model_name = {{model:String}} AND t.model_version = {{version:String}}
            ORDER BY t.created_at DESC
            LIMIT 1""",
            "reading a reference profile",
            {"model": model, "version": version},
        )
        return str(rows[0]["profile"]) if rows else None

    def raw_predictions(
        self,
        model: str,
        version: str,
        since_ms: int | None = None,
        until_ms: int | None = None,
        limit: int = 10_000,
    ) -> list[dict[str, Any]]:
        """Stored prediction events of a model version, oldest first, shaped like the record.

        Parameters
        ----------
        model, version
            The model version.
        since_ms, until_ms
            Events in ``[since_ms, until_ms)`` (epoch ms); None = open end.
        limit
            At most this many events.

        Returns
        -------
        list[dict]
            ``prediction_id``, ``model_name``, ``model_version``, ``timestamp`` (ms),
            ``features`` (numbers as float, strings, booleans as ``"true"``/``"false"``,
            missing as None — the storage keeps no finer types), ``prediction``,
            ``scores`` and ``segment`` (dicts, empty when absent).
        """
        where = _Where()
        where.equal("model_name", model)
        where.equal("model_version", version)
        where.time_range("timestamp", since_ms, until_ms)
        rows = self._rows(
            f"""SELECT {_select_list("predictions")}
            FROM {self._table("predictions")} AS t FINAL
            {where.sql()}
            ORDER BY t.timestamp, t.prediction_id
            LIMIT {{limit:UInt64}}""",
            "reading predictions",
            {**where.parameters, "limit": _check_limit(limit)},
        )
        out = []
        for row in rows:
            features: dict[str, Any] = dict(row["features_num"])
            features.update(row["features_cat"])
            features.update(dict.fromkeys(row["features_missing"]))
            prediction = row["prediction_num"]
            out.append(
                {
                    "prediction_id": row["prediction_id"],
                    "model_name": row["model_name"],
                    "model_version": row["model_version"],
                    "timestamp": row["timestamp"],
                    "features": features,
                    "prediction": row["prediction_cat"] if prediction is None else prediction,
                    "scores": dict(row["scores"]),
                    "segment": dict(row["segment"]),
                }
            )
        return out


# ---------------------------------------------------------------------- opening clients


def _open_chdb(dsn: str, parts: SplitResult) -> Any:
    path = unquote(parts.path)
    if parts.netloc or not path.startswith("/") or parts.query or parts.fragment:
        raise StoreError(
            f"malformed embedded ClickHouse DSN {dsn!r}: use chdb:///absolute/path "
            "(three slashes, then the directory that holds the data)"
        )
    directory = Path(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the ClickHouse data directory {directory}: {exc}") from exc
    try:
        return clickhouse_connect.get_client(dsn=f"chdb://{directory}")
    except ClickHouseError as exc:
        text = str(exc)
        if "already initialized" in text:
            raise StoreError(
                f"cannot open the embedded ClickHouse at {directory}: this process already "
                "runs the embedded engine on another path, and chDB allows one per process "
                f"({text})"
            ) from exc
        if "initializing EmbeddedServer" in text:
            raise StoreError(
                f"cannot open the embedded ClickHouse at {directory}: another process "
                "probably holds it (is `driftline serve` running on this data dir?); "
                "stop it, or talk to it over its HTTP API"
            ) from exc
        raise StoreError(f"cannot open the embedded ClickHouse at {directory}: {text}") from exc


def _open_http(dsn: str, parts: SplitResult, connect_timeout: float) -> tuple[Any, str | None]:
    masked = mask_dsn(dsn)
    try:
        parts.port  # noqa: B018 - parsing the port validates it
    except ValueError as exc:
        raise StoreError(f"malformed ClickHouse DSN {masked!r}: {exc}") from exc
    if not parts.hostname:
        raise StoreError(f"malformed ClickHouse DSN {masked!r}: no host")
    segments = [segment for segment in parts.path.split("/") if segment]
    if len(segments) > 1:
        raise StoreError(f"malformed ClickHouse DSN {masked!r}: the path may name one database")
    database = unquote(segments[0]) if segments else None
    if database is not None and not _IDENTIFIER.fullmatch(database):
        raise StoreError(
            f"malformed ClickHouse DSN {masked!r}: database {database!r} is not a plain identifier"
        )
    # The database may not exist yet (migrate() creates it), and clickhouse-connect fails
    # on a missing default database: connect without one; every statement names it.
    server = urlunsplit(parts._replace(path="", fragment=""))
    try:
        # No session id: a session admits one query at a time, and the API serves many.
        client = clickhouse_connect.get_client(
            dsn=server, connect_timeout=connect_timeout, autogenerate_session_id=False
        )
    except OperationalError as exc:
        raise StoreError(
            f"cannot reach ClickHouse at {masked}: {_network_reason(str(exc))}; "
            "is the server running, and are host and port right?"
        ) from exc
    except ClickHouseError as exc:
        raise StoreError(f"ClickHouse at {masked} refused the connection: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise StoreError(f"malformed ClickHouse DSN {masked!r}: {exc}") from exc
    return client, database


def _network_reason(text: str) -> str:
    for needle, reason in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "unknown host"),
        ("nodename nor servname", "unknown host"),
        ("Temporary failure in name resolution", "unknown host"),
        ("timed out", "timed out"),
        ("SSL", "TLS handshake failed"),
    ):
        if needle in text:
            return reason
    return text.splitlines()[0] if text else "unknown network error"


class StoreWriter:
    """Writes batches to a store from a thread of its own, in the order they were queued.

    Both runtimes hand each processed batch's writes to one: ClickHouse's insert work runs
    without the GIL, so it overlaps the processing of the next batch. Every insert has a
    fixed cost (a query, a new part, later merges: 2–8 ms on chDB, measured) that small
    batches pay per row — a raw label costs 9.4 µs to insert in batches of 1,000 and 2.6 µs
    in batches of 20,000 — so the writer coalesces: it takes every batch queued behind the
    first and, while they hold fewer than ``min_rows`` records, lingers up to ``linger``
    seconds for more (like a Kafka producer's ``linger.ms``), then writes them as one insert
    per table (at most ``max_rows`` records). :meth:`hurry` (called by whoever waits for a
    position) and :meth:`join` cut the lingering short, so waiting readers pay no latency.
    The ``done`` callbacks run in queue order once their batch is stored.

    The first failure is kept in :attr:`failure` and every batch of the failed insert and
    queued behind it is dropped until the owner has dealt with it (a :class:`StoreError`:
    rewind to the last checkpoint and replay; anything else: a bug) and called
    :meth:`take_failure`.

    Parameters
    ----------
    store
        The store to write to.
    max_pending
        Batches queued at most; :meth:`put` blocks beyond (back-pressure).
    min_rows, linger
        Records worth one insert, and the longest wait (seconds) for them; ``linger=0``
        writes what is queued at once.
    max_rows
        Records written in one go at most when coalescing (a single batch larger than that
        is written as it is).
    """

    def __init__(
        self,
        store: ClickHouseStore,
        *,
        max_pending: int = 2,
        min_rows: int = 20_000,
        linger: float = 0.0,
        max_rows: int = 100_000,
    ) -> None:
        if max_pending < 1 or max_rows < 1 or min_rows < 0 or linger < 0:
            raise ValueError(
                "max_pending and max_rows must be at least 1, min_rows and linger at least 0"
            )
        self.store = store
        self.max_pending = max_pending
        self.min_rows = min_rows
        self.linger = linger
        self.max_rows = max_rows
        self.failure: BaseException | None = None
        self.inserts = 0  # store.write calls made (a coalesced table write counts once)
        self.batches = 0  # batches stored
        self._items: deque[_Batch | None] = deque()
        self._unfinished = 0  # queued or being written
        self._waiters = 0  # threads in hurried(): no lingering while there are any
        self._stopping = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(
            target=self._run, name="driftline-store-writer", daemon=True
        )
        self._thread.start()

    def put(
        self, writes: Sequence[tuple[Topic, Any]], done: Callable[[], None] | None = None
    ) -> None:
        """Queue ``(topic, records)`` writes; ``done`` runs in the writer once they are stored."""
        with self._cond:
            while len(self._items) >= self.max_pending:
                self._cond.wait()
            self._items.append((writes, done))
            self._unfinished += 1
            self._cond.notify_all()

    @contextmanager
    def hurried(self) -> Iterator[None]:
        """Inside the block the writer does not linger: what is queued is written at once
        (for whoever waits for a batch to be stored)."""
        with self._cond:
            self._waiters += 1
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                self._waiters -= 1

    def join(self) -> None:
        """Wait until every queued batch is stored (or dropped after a failure)."""
        with self.hurried(), self._cond:
            while self._unfinished:
                self._cond.wait()

    def take_failure(self) -> BaseException | None:
        """The failure, after waiting for the queue; the writer stores batches again."""
        self.join()
        failure, self.failure = self.failure, None
        return failure

    def stop(self, timeout: float = 60.0) -> None:
        """Store what is queued, then end the thread."""
        with self._cond:
            self._items.append(None)
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _take(self) -> tuple[list[_Batch], bool]:
        """The next batches to write together; True when the stop marker came with them."""
        with self._cond:
            while not self._items:
                self._cond.wait()
            taken: list[_Batch] = []
            rows = 0
            deadline: float | None = None
            while True:
                while self._items:
                    item = self._items[0]
                    if item is None:
                        self._items.popleft()
                        self._cond.notify_all()
                        return taken, True
                    size = sum(len(records) for _, records in item[0])
                    if taken and rows + size > self.max_rows:
                        break
                    self._items.popleft()
                    taken.append(item)
                    rows += size
                self._cond.notify_all()  # room in the queue
                if (
                    self._items  # what is left did not fit: max_rows reached
                    or rows >= min(self.min_rows, self.max_rows)
                    or self._waiters
                    or self._stopping
                    or not self.linger
                ):
                    break
                if deadline is None:
                    deadline = time.monotonic() + self.linger
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return taken, False

    def _run(self) -> None:
        while True:
            taken, stop = self._take()
            try:
                if self.failure is None and taken:
                    try:
                        for topic, records in _coalesce([writes for writes, _ in taken]):
                            self.store.write(topic, records)
                            self.inserts += 1
                    except BaseException as exc:  # StoreError: the owner rewinds; else a bug
                        self.failure = exc
                    else:
                        self.batches += len(taken)
                        for _, done in taken:
                            if done is not None:
                                done()
                # else: dropped — the owner rewinds and replays them
            finally:
                with self._cond:
                    self._unfinished -= len(taken)
                    self._cond.notify_all()
            if stop:
                return


_Batch = tuple[Sequence[tuple[Topic, Any]], Callable[[], None] | None]


def _coalesce(
    batches: Sequence[Sequence[tuple[Topic, Any]]],
) -> list[tuple[Topic, list[Any]]]:
    """The writes of consecutive batches as one list of records per topic (first-seen topic
    order, records in batch order; the rows of predictions decoded into columns are
    joined, see ``schemas.columns.join_groups``)."""
    if len(batches) == 1:
        return [(topic, records) for topic, records in batches[0]]
    merged: dict[Topic, list[Any]] = {}
    for writes in batches:
        for topic, records in writes:
            merged.setdefault(topic, []).append(records)
    return [(topic, join_groups(groups)) for topic, groups in merged.items()]
