"""A real, single-node Apache Kafka 4.x broker (KRaft) for tests and local development.

No Docker and no Kafka download: the broker's jars come from Maven Central through
``tools/kafka/pom.xml`` into ``.cache/kafka/lib`` (git-ignored, resolved once, then reused
thanks to a stamp file that carries the pom's hash), and the broker runs as
``java -cp '.cache/kafka/lib/*' kafka.Kafka server.properties`` on free loopback ports.

Needs ``java`` (17+) and ``mvn`` on PATH (or ``JAVA_HOME``); the first resolution downloads
about 45 MB into ``.cache/m2``.

Used by the pytest fixtures in ``tests/conftest.py`` (``kafka_broker``, ``kafka_bootstrap``,
``kafka_restartable_broker``). For humans::

    .venv/bin/python -m tests.support.kafka_broker            # foreground broker, Ctrl-C stops it
    .venv/bin/python -m tests.support.kafka_broker --port 9092 --data-dir /tmp/kafka
    .venv/bin/python -m tests.support.kafka_broker --resolve-only

Environment:

``DRIFTLINE_KAFKA_LIB``
    use the jars in this folder (e.g. an unpacked Kafka distribution's ``libs/``) instead of
    resolving them with Maven.
``DRIFTLINE_KAFKA_CACHE``
    cache folder (default ``<repo>/.cache``); jars go to ``kafka/lib``, Maven's repo to ``m2``.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import ctypes
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "ExternalKafkaCluster",
    "KafkaBroker",
    "KafkaBrokerError",
    "create_topic",
    "ensure_kafka_jars",
    "free_port",
    "kafka_version",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
POM = REPO_ROOT / "tools" / "kafka" / "pom.xml"

_LOG4J2_XML = """\
<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN" shutdownHook="disable">
  <Appenders>
    <File name="server" fileName="${sys:kafka.logs.dir}/server.log" append="true">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </File>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="server"/></Root>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="state.change.logger" level="WARN"/>
    <Logger name="org.apache.kafka.clients" level="WARN"/>
  </Loggers>
</Configuration>
"""


class KafkaBrokerError(RuntimeError):
    """The broker could not be resolved, formatted, started or stopped."""


# --------------------------------------------------------------------------- jars


def _cache_root() -> Path:
    return Path(os.environ.get("DRIFTLINE_KAFKA_CACHE") or REPO_ROOT / ".cache").resolve()


def _pom_digest() -> str:
    return hashlib.sha1(POM.read_bytes()).hexdigest()[:12]


def kafka_version(lib_dir: Path | None = None) -> str:
    """The Kafka version of the jars in ``lib_dir`` (from ``kafka_2.13-<version>.jar``)."""
    lib = lib_dir or ensure_kafka_jars()
    for jar in sorted(lib.glob("kafka_2.13-*.jar")):
        return jar.name.removeprefix("kafka_2.13-").removesuffix(".jar")
    raise KafkaBrokerError(f"no kafka_2.13-*.jar in {lib}")


def ensure_kafka_jars(*, quiet: bool = True) -> Path:
    """Return a folder holding the broker's jars, resolving them with Maven on first use.

    Idempotent and cheap once resolved: a stamp file named after the pom's hash marks a
    complete resolution, so editing ``tools/kafka/pom.xml`` re-resolves. Safe to call from
    several processes at once (file lock).
    """
    override = os.environ.get("DRIFTLINE_KAFKA_LIB")
    if override:
        lib = Path(override).resolve()
        if not any(lib.glob("kafka_2.13-*.jar")):
            raise KafkaBrokerError(f"DRIFTLINE_KAFKA_LIB={override}: no kafka_2.13-*.jar there")
        return lib

    cache = _cache_root()
    kafka_dir = cache / "kafka"
    lib = kafka_dir / "lib"
    stamp = lib / f".resolved-{_pom_digest()}"
    if stamp.exists():
        return lib

    kafka_dir.mkdir(parents=True, exist_ok=True)
    with open(kafka_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be resolving right now
        if stamp.exists():
            return lib
        mvn = shutil.which("mvn")
        if mvn is None:
            raise KafkaBrokerError(
                "Apache Maven (`mvn`) is needed to fetch the Kafka broker jars: "
                "`apt-get install maven`, or set DRIFTLINE_KAFKA_LIB to a folder of Kafka jars"
            )
        staging = kafka_dir / "lib.partial"
        shutil.rmtree(staging, ignore_errors=True)
        cmd = [
            mvn,
            "-B",
            "-q",
            "-Dstyle.color=never",
            "-f",
            str(POM),
            f"-Dmaven.repo.local={cache / 'm2'}",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ]
        if not quiet:
            print("resolving Kafka broker jars:", " ".join(cmd), file=sys.stderr, flush=True)
        started = time.monotonic()
        proc = subprocess.run(
            cmd, cwd=POM.parent, capture_output=True, text=True, timeout=900, check=False
        )
        if proc.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
            raise KafkaBrokerError(
                f"resolving the Kafka jars with Maven failed (exit {proc.returncode}):\n"
                f"$ {' '.join(cmd)}\n{_tail(proc.stdout + proc.stderr, 60)}"
            )
        shutil.rmtree(lib, ignore_errors=True)
        staging.rename(lib)
        stamp.write_text(f"resolved in {time.monotonic() - started:.1f}s\n")
        if not quiet:
            print(f"Kafka jars in {lib} ({stamp.read_text().strip()})", file=sys.stderr)
        return lib


# --------------------------------------------------------------------------- helpers


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the usual bind-to-0 trick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _kafka_uuid() -> str:
    """A cluster id as ``kafka-storage random-uuid`` makes it (url-safe base64, 22 chars)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise KafkaBrokerError("a Java 17+ runtime (`java`) is needed to run the Kafka broker")
    return java


def _die_with_parent() -> None:  # pragma: no cover - runs in the child, between fork and exec
    # Linux: the broker gets SIGTERM if the process (thread) that started it dies, so a
    # killed pytest run does not leave a JVM behind.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


_LIVE: weakref.WeakSet[KafkaBroker] = weakref.WeakSet()


@atexit.register
def _stop_live_brokers() -> None:
    for broker in list(_LIVE):
        with contextlib.suppress(Exception):
            broker.stop()


# --------------------------------------------------------------------------- broker


class KafkaBroker:
    """One KRaft node that is both broker and controller, on loopback ports.

    ``start()`` resolves the jars if needed, writes ``server.properties``, formats the
    storage on first start and waits until an AdminClient gets metadata. ``stop()`` sends
    SIGTERM (controlled shutdown) and SIGKILL after ``stop_timeout``. ``restart()`` keeps the
    port, the cluster id and the data: topics and committed messages survive it, which is
    what "broker restart mid-stream" tests need. Also a context manager.

    ``data_dir`` defaults to a fresh temp folder that ``stop(cleanup=True)`` removes; a given
    ``data_dir`` is never removed, and an already formatted one is reused as it is. Logs are
    in ``<data_dir>/logs`` (``server.log``, ``broker.out``). ``overrides`` are extra
    ``server.properties`` entries. On Linux the JVM gets SIGTERM when the thread that
    started it exits (so a killed test run leaves no broker behind): call ``start()`` from
    a thread that lives as long as the broker should, e.g. the main thread.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        port: int | None = None,
        controller_port: int | None = None,
        host: str = "127.0.0.1",
        heap: str = "512m",
        overrides: Mapping[str, object] | None = None,
        startup_timeout: float = 60.0,
        stop_timeout: float = 30.0,
    ) -> None:
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="driftline-kafka-")).resolve()
        self.host = host
        self._fixed_ports = port is not None
        self.port = port or free_port(host)
        self.controller_port = controller_port or free_port(host)
        self.heap = heap
        self.overrides = dict(overrides or {})
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.cluster_id: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.last_start_seconds: float | None = None
        self._out: Any = None

    # -- paths and properties ------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` of the PLAINTEXT listener, for ``bootstrap.servers``."""
        return f"{self.host}:{self.port}"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def log_dirs(self) -> Path:
        return self.data_dir / "kraft-logs"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def server_properties(self) -> dict[str, str]:
        """The broker configuration (a plain dict, written to ``server.properties``)."""
        props: dict[str, object] = {
            "process.roles": "broker,controller",
            "node.id": 1,
            "controller.quorum.bootstrap.servers": f"{self.host}:{self.controller_port}",
            "listeners": (
                f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.log_dirs),
            "num.partitions": 1,
            "default.replication.factor": 1,
            "min.insync.replicas": 1,
            "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": 1,
            "offsets.topic.num.partitions": 1,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "transaction.state.log.num.partitions": 1,
            "share.coordinator.state.topic.replication.factor": 1,
            "share.coordinator.state.topic.min.isr": 1,
            "group.initial.rebalance.delay.ms": 0,
            # The cleaner's default 128 MiB dedupe buffer does not fit a 512 MiB heap nicely.
            "log.cleaner.dedupe.buffer.size": 16 * 1024 * 1024,
            "num.network.threads": 2,
            "num.io.threads": 4,
        }
        props.update(self.overrides)
        return {k: str(v) for k, v in props.items()}

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> KafkaBroker:
        """Start the broker (formatting the storage the first time) and wait until it serves."""
        if self.is_running:
            return self
        lib = ensure_kafka_jars()
        started = time.monotonic()
        attempts = 1 if self._fixed_ports or self._formatted() else 3
        for attempt in range(attempts):
            self._write_config()
            if not self._formatted():
                self._format(lib)
            self._spawn(lib)
            try:
                self._wait_ready()
                break
            except KafkaBrokerError:
                bind_clash = "Address already in use" in self._log_text()
                self._kill()
                if not (bind_clash and attempt + 1 < attempts):
                    raise
                # Someone took a port between free_port() and the bind: pick new ones and
                # format again (--standalone records the controller's endpoint).
                shutil.rmtree(self.log_dirs, ignore_errors=True)
                self.port, self.controller_port = free_port(self.host), free_port(self.host)
        self.last_start_seconds = time.monotonic() - started
        self.cluster_id = self._meta().get("cluster.id", self.cluster_id)
        _LIVE.add(self)
        return self

    def stop(self, *, cleanup: bool = False) -> None:
        """SIGTERM (controlled shutdown), then SIGKILL after ``stop_timeout`` seconds.

        ``cleanup=True`` also deletes the data folder if this object created it.
        """
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self._close_out()
        self.proc = None
        _LIVE.discard(self)
        if cleanup and self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def restart(self) -> KafkaBroker:
        """Stop and start again on the same ports, with the same data and cluster id."""
        self.stop()
        return self.start()

    def kill(self) -> None:
        """SIGKILL, no controlled shutdown (a crash). ``start()`` recovers the logs."""
        self._kill()
        _LIVE.discard(self)

    def __enter__(self) -> KafkaBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop(cleanup=True)

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return f"KafkaBroker({self.bootstrap_servers}, {state}, data_dir={str(self.data_dir)!r})"

    # -- diagnostics ---------------------------------------------------------------

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of the broker's stdout/stderr and of its ``server.log``."""
        parts = []
        for name in ("broker.out", "server.log"):
            path = self.logs_dir / name
            text = path.read_text(errors="replace") if path.exists() else ""
            if not text.strip():
                continue
            # The cause usually sits above a long shutdown sequence: show the errors first.
            errors = [ln for ln in text.splitlines() if " ERROR " in ln or " FATAL " in ln]
            if errors:
                parts.append(f"--- {path} (last {min(15, len(errors))} ERROR lines)")
                parts.extend(ln[:2000] for ln in errors[-15:])
            parts.append(f"--- {path} (last {lines} lines)\n{_tail(text, lines)}")
        return "\n".join(parts) or f"(no logs in {self.logs_dir})"

    # -- internals -----------------------------------------------------------------

    def _log_text(self) -> str:
        return "".join(
            (self.logs_dir / n).read_text(errors="replace")
            for n in ("broker.out", "server.log")
            if (self.logs_dir / n).exists()
        )

    def _meta(self) -> dict[str, str]:
        path = self.log_dirs / "meta.properties"
        lines = path.read_text().splitlines() if path.exists() else []
        return dict(ln.split("=", 1) for ln in lines if "=" in ln and not ln.startswith("#"))

    def _formatted(self) -> bool:
        return (self.log_dirs / "meta.properties").exists()

    def _write_config(self) -> None:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "log4j2.xml").write_text(_LOG4J2_XML)
        text = "".join(f"{k}={v}\n" for k, v in self.server_properties().items())
        self.config_path.write_text(text)

    def _jvm(self, lib: Path) -> list[str]:
        return [
            _java(),
            f"-Xmx{self.heap}",
            "-Xms256m",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.xml'}",
            f"-Dkafka.logs.dir={self.logs_dir}",
            "-cp",
            str(lib / "*"),
        ]

    def _format(self, lib: Path) -> None:
        self.cluster_id = self.cluster_id or _kafka_uuid()
        cmd = [
            *self._jvm(lib),
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            self.cluster_id,
            "--config",
            str(self.config_path),
            "--standalone",
            "--ignore-formatted",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            raise KafkaBrokerError(
                f"kafka-storage format failed (exit {proc.returncode}):\n"
                f"{_tail(proc.stdout + proc.stderr, 40)}\n{self.log_tail(20)}"
            )

    def _spawn(self, lib: Path) -> None:
        self._close_out()
        self._out = open(self.logs_dir / "broker.out", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*self._jvm(lib), "kafka.Kafka", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the terminal reaches us, we stop the broker
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )

    def _wait_ready(self) -> None:
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + self.startup_timeout
        admin = None
        last_error: object = "port not open yet"
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise KafkaBrokerError(
                    f"Kafka broker exited during start-up (exit code {code})\n{self.log_tail()}"
                )
            # Wait for the socket first: librdkafka would log every refused connection.
            if admin is None:
                if not _port_open(self.host, self.port):
                    time.sleep(0.2)
                    continue
                admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 2})
            try:
                md = admin.list_topics(timeout=2)
                if md.brokers:
                    return
                last_error = "metadata lists no broker"
            except Exception as exc:  # KafkaException: not ready yet
                last_error = exc
            time.sleep(0.2)
        raise KafkaBrokerError(
            f"Kafka broker at {self.bootstrap_servers} not ready after {self.startup_timeout:.0f}s "
            f"(last error: {last_error})\n{self.log_tail()}"
        )

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None
        self._close_out()

    def _close_out(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None


class ExternalKafkaCluster:
    """A cluster that someone else runs (``KAFKA_BOOTSTRAP_SERVERS``): never started or stopped.

    Has ``bootstrap_servers`` like :class:`KafkaBroker`; ``start()`` is a no-op and
    ``stop()``/``restart()``/``kill()`` raise, since an external cluster cannot be restarted.
    """

    def __init__(self, bootstrap_servers: str) -> None:
        self.bootstrap_servers = bootstrap_servers

    is_running = True

    def start(self) -> ExternalKafkaCluster:
        return self

    def stop(self, *, cleanup: bool = False) -> None:
        self._refuse("stop")

    def restart(self) -> ExternalKafkaCluster:
        self._refuse("restart")
        return self

    def kill(self) -> None:
        self._refuse("kill")

    def _refuse(self, what: str) -> None:
        raise KafkaBrokerError(
            f"cannot {what} the external Kafka cluster {self.bootstrap_servers} "
            "(KAFKA_BOOTSTRAP_SERVERS is set); unset it to let the tests run their own broker"
        )

    def __repr__(self) -> str:
        return f"ExternalKafkaCluster({self.bootstrap_servers})"


# --------------------------------------------------------------------------- helpers for tests


def create_topic(
    bootstrap_servers: str,
    name: str,
    *,
    partitions: int = 1,
    config: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> None:
    """Create a topic (replication factor 1) and wait until its leaders are known."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    topic = NewTopic(
        name, num_partitions=partitions, replication_factor=1, config=dict(config or {})
    )
    admin.create_topics([topic], operation_timeout=timeout)[name].result(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        md = admin.list_topics(name, timeout=timeout).topics.get(name)
        if (
            md is not None
            and md.error is None
            and len(md.partitions) == partitions
            and all(p.leader >= 0 for p in md.partitions.values())
        ):
            return
        time.sleep(0.1)
    raise KafkaBrokerError(f"topic {name!r} has no leaders after {timeout:.0f}s")


# --------------------------------------------------------------------------- CLI


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.kafka_broker",
        description="Run a single-node Apache Kafka broker (KRaft) in the foreground.",
    )
    parser.add_argument("--port", type=int, help="PLAINTEXT port (default: a free one)")
    parser.add_argument("--controller-port", type=int, help="CONTROLLER port (default: free)")
    parser.add_argument("--data-dir", help="data folder, kept (default: a temp folder, removed)")
    parser.add_argument("--heap", default="512m", help="JVM -Xmx (default 512m)")
    parser.add_argument("--resolve-only", action="store_true", help="only fetch the jars")
    args = parser.parse_args(argv)

    started = time.monotonic()
    lib = ensure_kafka_jars(quiet=False)
    print(f"Kafka {kafka_version(lib)} jars ready in {time.monotonic() - started:.1f}s: {lib}")
    if args.resolve_only:
        return 0

    broker = KafkaBroker(
        args.data_dir, port=args.port, controller_port=args.controller_port, heap=args.heap
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        broker.start()
        print(f"Kafka broker ready in {broker.last_start_seconds:.1f}s", flush=True)
        print(f"bootstrap servers: {broker.bootstrap_servers}", flush=True)
        print(f"data: {broker.data_dir}   logs: {broker.logs_dir}", flush=True)
        print("Ctrl-C stops it.", flush=True)
        assert broker.proc is not None
        code = broker.proc.wait()
        print(f"broker exited with code {code}\n{broker.log_tail(20)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        broker.stop(cleanup=args.data_dir is None)
        print("Kafka broker stopped.", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(_main())
