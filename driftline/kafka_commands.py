"""The distributed runtime's commands: ``driftline worker``, ``topics``, ``publish``.

Added to the parser by ``driftline.cli`` (``add_kafka_parsers``). Settings come from
``driftline.settings`` (``DRIFTLINE_*`` environment, YAML file); options override them.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from driftline.errors import UsageError, member_id, positive_int


class RuntimeFailure(UsageError):
    """The worker stopped on an error a person must look at (exit code 1)."""

    exit_code = 1


def _settings(args: argparse.Namespace) -> Any:
    from driftline.settings import load_settings

    overrides: dict[str, Any] = {"kafka_bootstrap_servers": getattr(args, "bootstrap", None)}
    if getattr(args, "data_dir", None) is not None:
        overrides["data_dir"] = args.data_dir
    if getattr(args, "partitions", None) is not None:
        overrides["kafka_partitions"] = args.partitions
    if getattr(args, "replication", None) is not None:
        overrides["kafka_replication_factor"] = args.replication
    if getattr(args, "checkpoint_interval", None) is not None:
        overrides["checkpoint_interval_seconds"] = args.checkpoint_interval
    return load_settings(config_file=getattr(args, "config", None), **overrides)


def _bootstrap(settings: Any) -> str:
    if not settings.kafka_bootstrap_servers:
        raise UsageError(
            "no Kafka bootstrap servers: pass --bootstrap host:port or set "
            "DRIFTLINE_KAFKA_BOOTSTRAP_SERVERS"
        )
    return str(settings.kafka_bootstrap_servers)


def _names(args: argparse.Namespace) -> Any:
    from streams.kafka_topics import TopicNames

    return TopicNames(prefix=args.topic_prefix or "", group=args.group)


def _cmd_worker(args: argparse.Namespace) -> int:
    from streams.embedded import processor_config
    from streams.kafka_runtime import KafkaWorker, WorkerConfig, WorkerError
    from streams.kafka_topics import TopicsError
    from streams.schema_registry import SchemaRegistryError, registry_ids
    from streams.store import ClickHouseStore, StoreError, mask_dsn

    settings = _settings(args)
    bootstrap = _bootstrap(settings)
    if args.engine == "faust":
        return _run_faust(args, settings, bootstrap)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = WorkerConfig.from_settings(
        settings,
        topic_prefix=args.topic_prefix,
        group=args.group,
        worker_id=args.worker_id,
        metrics_host=args.metrics_host,
        batch_size=args.batch_size,
        order_slack_ms=args.order_slack_ms,
        merge_bucket_ms=args.merge_bucket_ms,
        create_topics=not args.no_create_topics,
    )
    config.metrics_port = None if args.no_metrics else args.metrics_port
    try:
        if settings.schema_registry_url:
            config.registry_ids = registry_ids(settings.schema_registry_url, config.names)
        store = ClickHouseStore.connect(
            settings.clickhouse_dsn,
            database=settings.clickhouse_database,
            raw_ttl_days=settings.raw_ttl_days,
        )
    except (StoreError, SchemaRegistryError) as exc:
        raise RuntimeFailure(str(exc)) from None
    worker = KafkaWorker(config, processor_config(settings), store)

    def stop(signum: int, _frame: Any) -> None:
        logging.getLogger("driftline.kafka").info("signal %d: finishing the step", signum)
        worker.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def ready() -> None:
        metrics = (
            f", metrics on http://{config.metrics_host}:{worker.metrics_port}/metrics"
            if worker.metrics_port is not None
            else ""
        )
        print(
            f"driftline worker: group {config.names.group_id} on {config.bootstrap_servers}, "
            f"store {mask_dsn(settings.clickhouse_dsn)}{metrics}",
            file=sys.stderr,
            flush=True,
        )

    try:
        worker.run(on_ready=ready)
    except (WorkerError, TopicsError, StoreError) as exc:
        raise RuntimeFailure(str(exc)) from None
    finally:
        store.close()
    return 0


def _cmd_topics(args: argparse.Namespace) -> int:
    from streams.kafka_topics import TopicsError, describe_topics, ensure_topics

    settings = _settings(args)
    bootstrap = _bootstrap(settings)
    names = _names(args)
    try:
        if args.topics_command == "create":
            created = ensure_topics(
                bootstrap, names, settings.kafka_partitions, settings.kafka_replication_factor
            )
            for name in created:
                print(f"created {name}")
            print(f"{len(created)} topics created; the others existed already")
            return 0
        infos = describe_topics(bootstrap, names)
    except TopicsError as exc:
        raise RuntimeFailure(str(exc)) from None
    if args.json:
        import json

        print(
            json.dumps(
                [
                    {**info.__dict__, "config": dict(info.config), "problems": list(info.problems)}
                    for info in infos
                ],
                indent=2,
            )
        )
    else:
        from rich.table import Table

        from driftline.console import make_console

        table = Table(title=f"Kafka topics on {bootstrap}")
        for col in (
            "topic",
            "role",
            "partitions",
            "replication",
            "messages",
            "settings",
            "problems",
        ):
            table.add_column(col, overflow="fold")
        for info in infos:
            if not info.exists:
                table.add_row(info.name, info.role, "—", "—", "—", "missing", "")
                continue
            table.add_row(
                info.name,
                info.role,
                str(info.partitions),
                str(info.replication),
                str(info.messages),
                ", ".join(f"{k}={v}" for k, v in sorted(info.config.items())),
                "; ".join(info.problems),
            )
        make_console().print(table)
    return 1 if any(i.problems or not i.exists for i in infos) else 0


def _cmd_publish(args: argparse.Namespace) -> int:
    from driftline.file_events import events_from_file
    from driftline.publisher import KafkaPublisher, PublishError, send_record
    from schemas.topics import Topic

    settings = _settings(args)
    bootstrap = _bootstrap(settings)
    events = events_from_file(
        args.file,
        args.topic,
        args.model,
        args.version,
        id_column=args.id_column,
        timestamp_column=args.timestamp_column,
        prediction_column=args.prediction_column,
        label_column=args.label_column,
        exclude=args.exclude or (),
    )
    pub = KafkaPublisher(bootstrap, topic_prefix=args.topic_prefix or "")
    try:
        for event in events:
            send_record(pub, args.topic, event)
        report = pub.flush()
    except PublishError as exc:
        raise RuntimeFailure(str(exc)) from None
    topic = Topic.PREDICTIONS if args.topic == "predictions" else Topic.LABELS
    print(
        f"published {report.accepted} {args.topic} of {args.model} to "
        f"{args.topic_prefix or ''}{topic.value}; {len(report.rejected)} rejected"
    )
    for item in report.rejected[:10]:
        print(f"  rejected {item.get('prediction_id', '')}: {item['reason']}", file=sys.stderr)
    return 0 if not report.rejected else 2


def _kafka_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="YAML settings file (else DRIFTLINE_CONFIG)")
    parser.add_argument(
        "--bootstrap", help="Kafka bootstrap servers (else DRIFTLINE_KAFKA_BOOTSTRAP_SERVERS)"
    )
    parser.add_argument(
        "--topic-prefix", default="", help="prefix of every topic name (default: none)"
    )


def _run_faust(args: argparse.Namespace, settings: Any, bootstrap: str) -> int:
    """``--engine faust``: the experimental faust-streaming worker (``streams.faust_app``)."""
    from streams import faust_app

    unsupported = [
        flag
        for flag, given in (
            ("--no-create-topics", args.no_create_topics),
            (
                "a schema registry (DRIFTLINE_SCHEMA_REGISTRY_URL)",
                bool(settings.schema_registry_url),
            ),
        )
        if given
    ]
    if unsupported:
        raise UsageError(f"--engine faust does not support {', '.join(unsupported)}")
    argv = [
        "--bootstrap",
        bootstrap,
        "--topic-prefix",
        args.topic_prefix or "",
        "--group",
        args.group,
        "--data-dir",
        str(settings.data_dir),
        "--partitions",
        str(settings.kafka_partitions),
        "--checkpoint-interval",
        str(settings.checkpoint_interval_seconds),
        "--order-slack-ms",
        str(args.order_slack_ms),
        "--merge-bucket-ms",
        str(args.merge_bucket_ms),
        "--log-level",
        args.log_level,
    ]
    if args.batch_size is not None:
        argv += ["--batch-size", str(args.batch_size)]
    if args.worker_id is not None:
        argv += ["--worker-id", args.worker_id]
    if not args.no_metrics:
        argv += ["--metrics-host", args.metrics_host, "--metrics-port", str(args.metrics_port)]
    return faust_app.main(argv)


def add_kafka_parsers(sub: Any) -> None:
    """Add ``worker``, ``topics`` and ``publish`` to the ``driftline`` sub-commands."""
    from streams.kafka_topics import DEFAULT_GROUP

    worker = sub.add_parser(
        "worker",
        help="run a distributed-runtime worker (Kafka consumer group)",
        description=(
            "Consume predictions, labels, alert acks and model events from Kafka, run the "
            "processors, publish metrics, detections, alerts, retrain requests and dead "
            "letters, and write everything to ClickHouse. Start more workers with the same "
            "--group to share the partitions. SIGTERM/Ctrl-C: checkpoint and leave."
        ),
    )
    _kafka_options(worker)
    worker.add_argument(
        "--data-dir", type=Path, help="data folder (else DRIFTLINE_DATA_DIR; chDB store default)"
    )
    worker.add_argument(
        "--group", default=DEFAULT_GROUP, help=f"consumer group (default: {DEFAULT_GROUP})"
    )
    worker.add_argument(
        "--worker-id",
        type=member_id,
        help="stable id of this worker (static group membership: a restart gets its "
        "partitions back at once); default: none",
    )
    worker.add_argument("--metrics-host", default="0.0.0.0", help="Prometheus endpoint address")
    worker.add_argument(
        "--metrics-port",
        type=int,
        default=9464,
        help="Prometheus endpoint port (default 9464; 0: any)",
    )
    worker.add_argument("--no-metrics", action="store_true", help="no Prometheus endpoint")
    worker.add_argument(
        "--batch-size", type=positive_int, default=50_000, help="records per step (default 50000)"
    )
    worker.add_argument(
        "--checkpoint-interval",
        type=float,
        help="seconds between snapshots (else DRIFTLINE_CHECKPOINT_INTERVAL_SECONDS, default 5)",
    )
    worker.add_argument(
        "--order-slack-ms",
        type=int,
        default=500,
        help="tolerated broker clock lag when merging a partition's topics (default 500)",
    )
    worker.add_argument(
        "--merge-bucket-ms",
        type=positive_int,
        default=100,
        help="granularity of the merge's time: within a bucket a partition's predictions "
        "are processed before its labels, as one batch each; larger buckets mean bigger "
        "batches and up to that much more latency for labels (default 100; 1: by the ms)",
    )
    worker.add_argument(
        "--no-create-topics", action="store_true", help="do not create missing topics at start"
    )
    worker.add_argument(
        "--engine",
        choices=("confluent", "faust"),
        default="confluent",
        help="confluent (default): the confluent-kafka worker; faust: EXPERIMENTAL "
        "faust-streaming agents with exactly-once transactions, about 20x slower "
        "(docs/distributed.md)",
    )
    worker.add_argument(
        "--log-level", default="info", choices=("debug", "info", "warning", "error")
    )
    worker.set_defaults(func=_cmd_worker)

    topics = sub.add_parser("topics", help="create or describe driftline's Kafka topics")
    topics_sub = topics.add_subparsers(dest="topics_command", metavar="SUBCOMMAND")
    topics_sub.required = True
    create = topics_sub.add_parser(
        "create",
        help="create the missing topics (partitions, replication from the settings)",
        description="Create driftline's topics that are missing; existing ones are checked.",
    )
    describe = topics_sub.add_parser(
        "describe",
        help="partitions, replication, messages and settings of each topic",
        description="Describe driftline's topics. Exit 1 when one is missing or misconfigured.",
    )
    for p in (create, describe):
        _kafka_options(p)
        p.add_argument(
            "--group", default=DEFAULT_GROUP, help="worker group (names the state topic)"
        )
        p.set_defaults(func=_cmd_topics)
    create.add_argument(
        "--partitions", type=int, help="else DRIFTLINE_KAFKA_PARTITIONS (default 4)"
    )
    create.add_argument(
        "--replication", type=int, help="else DRIFTLINE_KAFKA_REPLICATION_FACTOR (default 1)"
    )
    describe.add_argument("--json", action="store_true", help="print JSON instead of a table")

    publish = sub.add_parser(
        "publish",
        help="send the rows of a CSV/Parquet/JSONL file to Kafka as prediction or label events",
        description=(
            "Send each row of FILE as an Avro prediction or label event to Kafka "
            "(idempotent producer, acks=all), keyed by model name. Predictions: every column "
            "but id, timestamp, prediction and --exclude is a feature."
        ),
    )
    publish.add_argument("file", type=Path, help="CSV, Parquet or JSON-lines file")
    publish.add_argument("--topic", required=True, choices=("predictions", "labels"))
    publish.add_argument("--model", required=True, help="model name")
    publish.add_argument("--version", help="model version (required for predictions)")
    _kafka_options(publish)
    publish.add_argument("--id-column", default="prediction_id", help="default: prediction_id")
    publish.add_argument(
        "--timestamp-column",
        default="timestamp",
        help="epoch ms or ISO 8601 (default: timestamp; absent: now)",
    )
    publish.add_argument("--prediction-column", default="prediction", help="default: prediction")
    publish.add_argument("--label-column", default="label", help="default: label")
    publish.add_argument("--exclude", action="append", help="a column that is not a feature")
    publish.set_defaults(func=_cmd_publish)
