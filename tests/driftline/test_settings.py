"""Tests of driftline/settings.py: sources, precedence, computed defaults, errors, masking."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from driftline.errors import UsageError
from driftline.settings import CONFIG_ENV, ApiToken, Settings, SettingsError, load_settings

TOKEN = "tok-0123456789abcdef"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No DRIFTLINE_* variable from the outside; the working directory is the test's."""
    for name in list(os.environ):
        if name.upper().startswith("DRIFTLINE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_yaml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings()
    data_dir = (tmp_path / ".driftline").resolve()
    assert settings.data_dir == data_dir
    assert settings.clickhouse_dsn == f"chdb://{data_dir}/clickhouse"
    assert settings.mlflow_tracking_uri == f"sqlite:///{data_dir}/mlflow.db"
    assert settings.clickhouse_database == "driftline"
    assert settings.raw_ttl_days == 30
    assert (settings.window_seconds, settings.allowed_lateness_seconds) == (3600, 300)
    assert (settings.drift_test, settings.drift_share) == ("auto", 0.5)
    assert settings.label_ttl_seconds == 7 * 24 * 3600
    assert settings.concept_detector == "adwin"
    assert (settings.alert_cooldown_seconds, settings.auto_resolve_windows) == (3600, 3)
    assert settings.performance_floors == {}
    assert (settings.api_host, settings.api_port, settings.api_tokens) == ("127.0.0.1", 8000, [])
    assert (settings.max_body_bytes, settings.max_batch_size) == (10 * 1024 * 1024, 10_000)
    assert settings.kafka_bootstrap_servers is None and settings.schema_registry_url is None
    assert (settings.kafka_partitions, settings.kafka_replication_factor) == (4, 1)
    assert settings.checkpoint_interval_seconds == 5.0
    assert not data_dir.exists()  # reading settings creates nothing


def test_every_field_is_described() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, name
    for name, field in ApiToken.model_fields.items():
        assert field.description, name


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_API_PORT", "9001")
    monkeypatch.setenv("DRIFTLINE_DRIFT_TEST", "psi")
    monkeypatch.setenv("DRIFTLINE_DRIFT_SHARE", "1")
    monkeypatch.setenv("DRIFTLINE_KAFKA_BOOTSTRAP_SERVERS", "k1:9092, k2:9092")
    monkeypatch.setenv("DRIFTLINE_PERFORMANCE_FLOORS__ACCURACY", "0.8")
    monkeypatch.setenv("DRIFTLINE_PERFORMANCE_FLOORS__F1", "0.7")
    monkeypatch.setenv(
        "DRIFTLINE_API_TOKENS", json.dumps([{"token": TOKEN, "role": "admin", "name": "ops"}])
    )
    monkeypatch.setenv("DRIFTLINE_SCHEMA_REGISTRY_URL", "")  # empty = unset
    settings = load_settings()
    assert settings.api_port == 9001
    assert settings.drift_test == "psi" and settings.drift_share == 1.0
    assert settings.kafka_bootstrap_servers == "k1:9092,k2:9092"
    assert settings.performance_floors == {"accuracy": 0.8, "f1": 0.7}
    assert settings.schema_registry_url is None
    [token] = settings.api_tokens
    assert (token.token.get_secret_value(), token.role, token.name) == (TOKEN, "admin", "ops")


def test_floors_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_PERFORMANCE_FLOORS", '{"rmse": 12.5}')
    assert load_settings().performance_floors == {"rmse": 12.5}


def test_yaml_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_yaml(
        tmp_path / "driftline.yaml",
        f"""
data_dir: /srv/driftline
window_seconds: 600
concept_detector: kswin
performance_floors: {{accuracy: 0.9}}
api_tokens:
  - {{token: {TOKEN}, role: responder, name: on-call}}
""",
    )
    settings = load_settings(config_file=config)
    assert settings.data_dir == Path("/srv/driftline")
    assert settings.clickhouse_dsn == "chdb:///srv/driftline/clickhouse"
    assert (settings.window_seconds, settings.concept_detector) == (600, "kswin")
    assert settings.performance_floors == {"accuracy": 0.9}
    assert settings.api_tokens[0].role == "responder"
    # The same file named by DRIFTLINE_CONFIG.
    monkeypatch.setenv(CONFIG_ENV, str(config))
    assert load_settings().window_seconds == 600
    assert Settings().window_seconds == 600
    # An explicit file wins over DRIFTLINE_CONFIG.
    other = write_yaml(tmp_path / "other.yaml", "window_seconds: 60\n")
    assert load_settings(config_file=other).window_seconds == 60


def test_empty_yaml_file_changes_nothing(tmp_path: Path) -> None:
    assert load_settings(config_file=write_yaml(tmp_path / "e.yaml", "")).window_seconds == 3600


def test_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_yaml(
        tmp_path / "c.yaml", "api_port: 1001\nwindow_seconds: 11\nraw_ttl_days: 3\n"
    )
    assert load_settings(config).api_port == 1001  # YAML > defaults
    monkeypatch.setenv("DRIFTLINE_API_PORT", "1002")
    monkeypatch.setenv("DRIFTLINE_WINDOW_SECONDS", "12")
    settings = load_settings(config)  # env > YAML
    assert (settings.api_port, settings.window_seconds, settings.raw_ttl_days) == (1002, 12, 3)
    settings = load_settings(config, api_port=1003, window_seconds=None)  # overrides > env
    assert (settings.api_port, settings.window_seconds) == (1003, 12)  # None: not overridden
    assert load_settings(config, raw_ttl_days=9).raw_ttl_days == 9


def test_computed_locations_follow_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(data_dir="state")
    assert settings.data_dir == tmp_path.resolve() / "state"
    assert settings.clickhouse_dsn == f"chdb://{tmp_path.resolve()}/state/clickhouse"
    assert settings.mlflow_tracking_uri == f"sqlite:///{tmp_path.resolve()}/state/mlflow.db"
    monkeypatch.setenv("DRIFTLINE_DATA_DIR", "/var/lib/driftline")
    assert load_settings().clickhouse_dsn == "chdb:///var/lib/driftline/clickhouse"
    # An explicit DSN (any source) is kept as it is.
    monkeypatch.setenv("DRIFTLINE_CLICKHOUSE_DSN", "http://default:pw@ch:8123")
    settings = load_settings(data_dir="elsewhere", mlflow_tracking_uri="http://mlflow:5000")
    assert settings.clickhouse_dsn == "http://default:pw@ch:8123"
    assert settings.mlflow_tracking_uri == "http://mlflow:5000"
    assert load_settings(clickhouse_dsn="https://ch.example:8443").clickhouse_dsn.startswith(
        "https"
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DRIFTLINE_API_PORT", "abc", "DRIFTLINE_API_PORT: Input should be a valid integer"),
        ("DRIFTLINE_API_PORT", "70000", "DRIFTLINE_API_PORT: Input should be less than or equal"),
        ("DRIFTLINE_DRIFT_SHARE", "0", "DRIFTLINE_DRIFT_SHARE: Input should be greater than 0"),
        ("DRIFTLINE_DRIFT_SHARE", "1.5", "DRIFTLINE_DRIFT_SHARE: Input should be less than or"),
        ("DRIFTLINE_DRIFT_TEST", "t-test", "DRIFTLINE_DRIFT_TEST: Input should be 'auto', 'psi'"),
        ("DRIFTLINE_RAW_TTL_DAYS", "0", "DRIFTLINE_RAW_TTL_DAYS: Input should be greater than"),
        ("DRIFTLINE_CONCEPT_DETECTOR", "ddm", "DRIFTLINE_CONCEPT_DETECTOR: Input should be"),
        ("DRIFTLINE_CLICKHOUSE_DSN", "mysql://h", "DRIFTLINE_CLICKHOUSE_DSN: must start with"),
        ("DRIFTLINE_CLICKHOUSE_DSN", "chdb://rel/path", "chdb:///absolute/path"),
        ("DRIFTLINE_CLICKHOUSE_DSN", "http://h:port", "DRIFTLINE_CLICKHOUSE_DSN: malformed DSN"),
        (
            "DRIFTLINE_CLICKHOUSE_DSN",
            "http://",
            "DRIFTLINE_CLICKHOUSE_DSN: a http DSN needs a host",
        ),
        ("DRIFTLINE_CLICKHOUSE_DATABASE", "drift-line", "DRIFTLINE_CLICKHOUSE_DATABASE: must be a"),
        ("DRIFTLINE_SCHEMA_REGISTRY_URL", "registry:8081", "must be an http:// or https:// URL"),
        ("DRIFTLINE_KAFKA_BOOTSTRAP_SERVERS", "k1:9092,,", "without empty entries"),
        ("DRIFTLINE_CHECKPOINT_INTERVAL_SECONDS", "0", "DRIFTLINE_CHECKPOINT_INTERVAL_SECONDS:"),
        ("DRIFTLINE_STORE_LINGER_SECONDS", "-1", "DRIFTLINE_STORE_LINGER_SECONDS: Input should"),
        ("DRIFTLINE_STORE_LINGER_SECONDS", "soon", "DRIFTLINE_STORE_LINGER_SECONDS: Input should"),
        ("DRIFTLINE_STORE_BATCH_ROWS", "0", "DRIFTLINE_STORE_BATCH_ROWS: Input should be greater"),
        ("DRIFTLINE_GC_YOUNG_THRESHOLD", "-5", "DRIFTLINE_GC_YOUNG_THRESHOLD: Input should be"),
        ("DRIFTLINE_GIL_SWITCH_INTERVAL_SECONDS", "-1", "DRIFTLINE_GIL_SWITCH_INTERVAL_SECONDS:"),
        ("DRIFTLINE_GIL_SWITCH_INTERVAL_SECONDS", "1", "Input should be less than or equal to 0.1"),
        ("DRIFTLINE_GIL_SWITCH_INTERVAL_SECONDS", "fast", "Input should be a valid number"),
        ("DRIFTLINE_PERFORMANCE_FLOORS__ACCURACY", "high", "DRIFTLINE_PERFORMANCE_FLOORS.accuracy"),
        ("DRIFTLINE_PERFORMANCE_FLOORS", '{"f1": "nan"}', "DRIFTLINE_PERFORMANCE_FLOORS.f1"),
        ("DRIFTLINE_PERFORMANCE_FLOORS", '{" ": 0.5}', "metric names must not be empty"),
        ("DRIFTLINE_API_TOKENS", "not json", "DRIFTLINE_API_TOKENS: must be JSON"),
        (
            "DRIFTLINE_API_TOKENS",
            json.dumps([{"token": TOKEN, "role": "root", "name": "x"}]),
            "DRIFTLINE_API_TOKENS[0].role: Input should be 'publisher', 'responder' or 'admin'",
        ),
        (
            "DRIFTLINE_API_TOKENS",
            json.dumps([{"token": "short", "role": "admin", "name": "x"}]),
            "DRIFTLINE_API_TOKENS[0].token: token must be at least 16 characters",
        ),
        (
            "DRIFTLINE_API_TOKENS",
            json.dumps([{"token": TOKEN, "role": "admin", "name": n} for n in "ab"]),
            "DRIFTLINE_API_TOKENS: the same token is listed twice",
        ),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    text = str(err.value)
    assert message in text
    assert "pydantic" not in text and "Traceback" not in text
    assert isinstance(err.value, UsageError) and err.value.exit_code == 2
    assert "short" not in text and TOKEN not in text  # secrets are never echoed


def test_every_problem_on_its_own_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_API_PORT", "abc")
    monkeypatch.setenv("DRIFTLINE_WINDOW_SECONDS", "-1")
    monkeypatch.setenv("DRIFTLINE_CLICKHOUSE_DSN", "mysql://root:hunter2@db")
    with pytest.raises(SettingsError) as err:
        load_settings()
    lines = str(err.value).splitlines()
    assert lines[0] == "invalid driftline settings:"
    assert [line.split(":")[0].strip() for line in lines[1:]] == [
        "DRIFTLINE_CLICKHOUSE_DSN",
        "DRIFTLINE_WINDOW_SECONDS",
        "DRIFTLINE_API_PORT",
    ]
    assert err.value.problems == [line.strip() for line in lines[1:]]
    assert "hunter2" not in str(err.value)
    assert "(got 'mysql://root:***@db')" in str(err.value)


def test_config_file_problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError, match=r"DRIFTLINE_CONFIG: config file .*missing\.yaml does"):
        load_settings(config_file=tmp_path / "missing.yaml")
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "gone.yaml"))
    with pytest.raises(SettingsError, match=r"gone\.yaml does not exist"):
        load_settings()
    monkeypatch.delenv(CONFIG_ENV)
    broken = write_yaml(tmp_path / "broken.yaml", "api_port: 1\n  window_seconds: [\n")
    with pytest.raises(SettingsError, match=r"is not valid YAML at line \d+, column \d+"):
        load_settings(config_file=broken)
    listing = write_yaml(tmp_path / "list.yaml", "- api_port\n")
    with pytest.raises(SettingsError, match="must hold a mapping"):
        load_settings(config_file=listing)
    typo = write_yaml(tmp_path / "typo.yaml", "api_prot: 1\nwindow_seconds: x\n")
    with pytest.raises(SettingsError) as err:
        load_settings(config_file=typo)
    assert err.value.problems == [
        "DRIFTLINE_WINDOW_SECONDS: Input should be a valid integer, unable to parse string as an "
        "integer (got 'x')",
        "api_prot: unknown setting (in the config file or an override)",
    ]
    with pytest.raises(SettingsError, match="api_prot: unknown setting"):
        load_settings(api_prot=1)


def test_masked_dict_hides_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "DRIFTLINE_API_TOKENS", json.dumps([{"token": TOKEN, "role": "publisher", "name": "svc"}])
    )
    settings = load_settings(
        clickhouse_dsn="http://default:hunter2@ch.internal:8123",
        schema_registry_url="https://reg:s3cret@registry:8081",
        mlflow_tracking_uri="https://ml:pw%40x@mlflow:5000",
    )
    masked = settings.masked_dict()
    text = json.dumps(masked)  # JSON-able as it is
    for secret in (TOKEN, "hunter2", "s3cret", "pw%40x"):
        assert secret not in text
        assert secret not in repr(settings)
    assert masked["api_tokens"] == [{"token": "***", "role": "publisher", "name": "svc"}]
    assert masked["clickhouse_dsn"] == "http://default:***@ch.internal:8123"
    assert masked["schema_registry_url"] == "https://reg:***@registry:8081"
    assert masked["mlflow_tracking_uri"] == "https://ml:***@mlflow:5000"
    assert masked["data_dir"] == str(settings.data_dir)
    assert set(masked) == set(Settings.model_fields)
    # The real values are still there for the code that needs them.
    assert settings.api_tokens[0].token.get_secret_value() == TOKEN
    assert "hunter2" in settings.clickhouse_dsn


def test_ks_method_reaches_the_processors(monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.embedded import processor_config

    assert processor_config(load_settings()).drift.ks_method == "asymp"
    monkeypatch.setenv("DRIFTLINE_DRIFT_KS_METHOD", "auto")
    assert processor_config(load_settings()).drift.ks_method == "auto"
    monkeypatch.setenv("DRIFTLINE_DRIFT_KS_METHOD", "exact")
    with pytest.raises(SettingsError, match="DRIFTLINE_DRIFT_KS_METHOD"):
        load_settings()
