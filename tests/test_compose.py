"""docker-compose.yml is for users (there is no Docker engine here): Debian's docker-compose
validates it, and the driftline settings it passes must be settings driftline accepts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from driftline.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]


def test_compose_file_is_valid_and_complete(monkeypatch) -> None:
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose is missing: run `make test`, which installs Debian's package"
    proc = subprocess.run(
        [exe, "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    config = yaml.safe_load(proc.stdout)
    services = config["services"]
    assert {"kafka", "clickhouse", "grafana", "mlflow", "topics", "worker"} <= set(services)
    assert (
        services["grafana"]["environment"]["GF_PLUGINS_PREINSTALL"]
        == "grafana-clickhouse-datasource"
    )
    assert "broker,controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    worker = services["worker"]
    assert worker["command"][0] == "worker"
    env = {k: str(v) for k, v in worker["environment"].items()}
    from driftline.settings import Settings

    for key, value in env.items():
        assert key.startswith("DRIFTLINE_") and key[10:].lower() in Settings.model_fields, key
        monkeypatch.setenv(key, value)
    settings = load_settings()  # every DRIFTLINE_* variable of the compose file is a real setting
    assert settings.kafka_bootstrap_servers == "kafka:9092"
    assert settings.clickhouse_dsn.startswith("http://driftline:")
    provisioning = ROOT / "dashboards" / "provisioning" / "datasources" / "clickhouse.yaml"
    ds = yaml.safe_load(provisioning.read_text())["datasources"][0]
    assert (
        ds["type"] == "grafana-clickhouse-datasource"
        and ds["jsonData"]["defaultDatabase"] == "driftline"
    )
