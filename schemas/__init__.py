"""schemas: the event contract — one Avro schema per topic (``avro/*.avsc``), the codec
(``codec``), topic names (``topics``), the ClickHouse DDL (``ddl``, ``clickhouse/*.sql``) and the
record-to-row converters (``rows``). Imports only the standard library, fastavro and, when it
is installed, the native extension ``driftline_native`` (``native``: Rust, built by ``make venv``)."""
