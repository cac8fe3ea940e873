"""A real `driftline serve` stack in the test process: EmbeddedRuntime on the session's chDB
engine + the HTTP API on uvicorn over loopback."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from driftline.settings import load_settings
from streams.api import create_app
from streams.embedded import EmbeddedRuntime
from streams.store import ClickHouseStore


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_api(
    tmp: Path, client: Any, database: str, **settings: Any
) -> Iterator[tuple[str, EmbeddedRuntime]]:
    store = ClickHouseStore(client, database=database)
    store.migrate()
    cfg = load_settings(data_dir=tmp, api_host="127.0.0.1", api_port=free_port(), **settings)
    runtime = EmbeddedRuntime(cfg, store=store).start()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(runtime, cfg), host="127.0.0.1", port=cfg.api_port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "API did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{cfg.api_port}", runtime
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        runtime.stop()
