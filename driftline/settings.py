"""driftline's settings: one object, validated at start-up, for every command and runtime.

This module owns :class:`Settings` and where its values come from. Each setting is
read from, highest precedence first:

1. explicit overrides (``load_settings(api_port=9000)``, e.g. from command-line options);
2. environment variables ``DRIFTLINE_<NAME>`` (``DRIFTLINE_API_PORT=9000``); dict
   settings also take one key per variable with ``__``
   (``DRIFTLINE_PERFORMANCE_FLOORS__ACCURACY=0.8``), and list or dict settings take
   JSON (``DRIFTLINE_API_TOKENS='[{"token": "...", "role": "admin", "name": "ops"}]'``);
3. a YAML file of ``name: value`` pairs, named by ``load_settings(config_file=...)`` or
   by the ``DRIFTLINE_CONFIG`` environment variable;
4. the defaults below.

Anything invalid becomes one :class:`SettingsError` listing every problem, one line
each, named by its environment variable. :meth:`Settings.masked_dict` shows the
effective settings with secrets (API tokens, passwords inside URLs) masked.

Examples
--------
>>> settings = load_settings(data_dir="/srv/driftline", api_port=9000)
>>> settings.clickhouse_dsn, settings.api_port
('chdb:///srv/driftline/clickhouse', 9000)
>>> load_settings(api_port="http")
Traceback (most recent call last):
...
driftline.settings.SettingsError: invalid driftline settings:
  DRIFTLINE_API_PORT: Input should be a valid integer, unable to parse string as an integer (got 'http')
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic import model_validator as _model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings import SettingsError as _SourceError

from driftline.errors import UsageError

__all__ = [
    "CONFIG_ENV",
    "ENV_PREFIX",
    "ApiToken",
    "Settings",
    "SettingsError",
    "load_settings",
]

ENV_PREFIX: Final = "DRIFTLINE_"
"""Prefix of every settings environment variable."""

CONFIG_ENV: Final = "DRIFTLINE_CONFIG"
"""Environment variable naming the YAML settings file."""

MASK: Final = "***"

_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MIN_TOKEN_LENGTH: Final = 16

# The YAML file of the load_settings call in progress (None: look at DRIFTLINE_CONFIG).
_CONFIG_FILE: ContextVar[Path | None] = ContextVar("driftline_config_file", default=None)


class SettingsError(UsageError):
    """The settings are invalid, or the settings file cannot be read.

    ``str(err)`` is a header line followed by one line per problem, each naming the
    environment variable of the setting (``DRIFTLINE_API_PORT: ...``); ``err.problems``
    holds those lines.
    """

    def __init__(self, problems: list[str], header: str = "invalid driftline settings:") -> None:
        self.problems = problems
        super().__init__("\n  ".join([header, *problems]) if header else "\n".join(problems))


def _mask_url(text: str) -> str:
    """``text`` with the password of a URL (``scheme://user:password@host``) masked."""
    try:
        parts = urlsplit(text)
        password = parts.password
    except ValueError:
        return re.sub(r"(://[^:/@]*:)[^@/]*@", rf"\1{MASK}@", text)
    if password is None:
        return text
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:{MASK}@{host}"))


class ApiToken(BaseModel):
    """A bearer token of the HTTP API and what it may do.

    Roles: ``publisher`` posts predictions and labels; ``responder`` also lists,
    acknowledges and resolves alerts; ``admin`` may do everything (register models,
    approve promotions, read settings).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    token: SecretStr = Field(
        description=f"The secret, at least {_MIN_TOKEN_LENGTH} characters "
        "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe())'`)."
    )
    role: Literal["publisher", "responder", "admin"] = Field(
        description="What the token may do: publisher, responder or admin."
    )
    name: str = Field(
        min_length=1, description="Who holds the token; recorded as the actor of its actions."
    )

    @field_validator("token")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value()
        if len(secret) < _MIN_TOKEN_LENGTH or secret != secret.strip():
            raise ValueError(
                f"token must be at least {_MIN_TOKEN_LENGTH} characters, "
                "without leading or trailing spaces"
            )
        return value


class Settings(BaseSettings):
    """Every driftline setting, validated.

    Build it with :func:`load_settings`, which also turns validation errors into a
    :class:`SettingsError`. ``Settings()`` reads the same sources but raises pydantic's
    ``ValidationError``.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_ignore_empty=True,
        case_sensitive=False,
        extra="forbid",
        validate_default=True,
        allow_inf_nan=False,
    )

    # --- storage
    data_dir: Path = Field(
        default=Path(".driftline"),
        description="Folder of the embedded runtime's data (ClickHouse, MLflow, checkpoints); "
        "made absolute against the working directory.",
    )
    clickhouse_dsn: str = Field(
        default="",
        description="ClickHouse to use: chdb:///absolute/path (embedded engine) or "
        "http[s]://user:password@host:8123 (server). Empty: chdb:///<data_dir>/clickhouse.",
    )
    clickhouse_database: str = Field(
        default="driftline", description="ClickHouse database holding driftline's tables."
    )
    raw_ttl_days: int = Field(
        default=30, ge=1, description="Days raw predictions, labels and dead letters are kept."
    )

    # --- windows and drift
    window_seconds: int = Field(
        default=3600, ge=1, description="Length of the event-time tumbling windows."
    )
    allowed_lateness_seconds: int = Field(
        default=300,
        ge=0,
        description="How far behind the newest event time a window stays open for late events.",
    )
    drift_test: Literal["auto", "psi", "ks", "chi2", "jensenshannon", "wasserstein"] = Field(
        default="auto",
        description="Statistic deciding each feature's drift; auto picks by feature type.",
    )
    drift_ks_method: Literal["auto", "asymp"] = Field(
        default="asymp",
        description=(
            "KS p-value of the streaming windows: asymp (Smirnov's asymptotic distribution, "
            "as scipy's ks_2samp(method='asymp'); several times cheaper per window, within "
            "about 1e-3 of the exact value at these sample sizes) or auto (scipy's default: "
            "exact up to 10,000 values per side)."
        ),
    )
    drift_share: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description="Share of drifted features at which the whole window counts as drifted.",
    )
    label_ttl_seconds: int = Field(
        default=7 * 24 * 3600,
        ge=1,
        description="How long a prediction waits for its label before the join forgets it.",
    )
    concept_detector: Literal["adwin", "kswin", "page_hinkley"] = Field(
        default="adwin", description="Online detector of concept drift on the per-event loss."
    )

    # --- alerts
    alert_cooldown_seconds: int = Field(
        default=3600,
        ge=0,
        description="After an alert resolves, how long the same alert is held back.",
    )
    auto_resolve_windows: int = Field(
        default=3,
        ge=1,
        description="Consecutive windows without drift after which an alert resolves itself.",
    )

    # --- retraining
    performance_floors: dict[str, float] = Field(
        default_factory=dict,
        description="Metric name -> lowest acceptable value (e.g. accuracy: 0.8); a window "
        "below its floor requests a retrain.",
    )

    # --- HTTP API
    api_host: str = Field(
        default="127.0.0.1", min_length=1, description="Address the HTTP API listens on."
    )
    api_port: int = Field(
        default=8000, ge=0, le=65535, description="Port of the HTTP API (0: any free port)."
    )
    api_tokens: list[ApiToken] = Field(
        default_factory=list, description="Bearer tokens accepted by the HTTP API, with roles."
    )
    max_body_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1, description="Largest request body the API accepts."
    )
    max_batch_size: int = Field(
        default=10_000, ge=1, description="Most events the API accepts in one request."
    )

    # --- Kafka (distributed runtime)
    kafka_bootstrap_servers: str | None = Field(
        default=None,
        description="Kafka bootstrap servers (host:port[,host:port...]); "
        "unset: the embedded runtime.",
    )
    schema_registry_url: str | None = Field(
        default=None,
        description="Confluent Schema Registry URL; set to accept its framing as well.",
    )
    kafka_partitions: int = Field(
        default=4, ge=1, description="Partitions of the topics driftline creates."
    )
    kafka_replication_factor: int = Field(
        default=1, ge=1, description="Replication factor of the topics driftline creates."
    )

    # --- MLflow
    mlflow_tracking_uri: str = Field(
        default="",
        description="MLflow tracking URI. Empty: sqlite:///<data_dir>/mlflow.db.",
    )

    # --- runtime
    checkpoint_interval_seconds: float = Field(
        default=5.0, gt=0.0, description="How often processor state is checkpointed."
    )
    store_linger_seconds: float = Field(
        default=0.2,
        ge=0.0,
        le=10.0,
        description=(
            "How long the store writer waits for more processed batches to write them as one "
            "ClickHouse insert (fewer, bigger parts); 0 writes each batch at once. Readers "
            "waiting for a position never wait for it."
        ),
    )
    gc_young_threshold: int = Field(
        default=100_000,
        ge=0,
        description=(
            "Generation-0 threshold of Python's cyclic garbage collector while a runtime runs "
            "(CPython's default 700 makes it walk every in-flight record); 0 leaves it as is."
        ),
    )
    gil_switch_interval_seconds: float = Field(
        default=0.001,
        ge=0.0,
        le=0.1,
        description=(
            "Python's thread switch interval while the embedded runtime runs, when shorter "
            "than the interpreter's (5 ms): how long a thread waiting for the GIL (the API's "
            "event loop after I/O) waits for the busy processing thread; 0 leaves it as is."
        ),
    )
    store_batch_rows: int = Field(
        default=20_000,
        ge=1,
        le=1_000_000,
        description="Records worth one insert: the store writer stops lingering once it holds them.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Overrides, then ``DRIFTLINE_*`` environment variables, then the YAML file."""
        path = _CONFIG_FILE.get()
        if path is None and os.environ.get(CONFIG_ENV):
            path = Path(os.environ[CONFIG_ENV])
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path is not None:
            sources.append(InitSettingsSource(settings_cls, init_kwargs=_read_yaml(path)))
        return tuple(sources)

    # --- validation

    @field_validator("data_dir")
    @classmethod
    def _absolute_dir(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("clickhouse_dsn", "mlflow_tracking_uri", mode="before")
    @classmethod
    def _none_is_computed(cls, value: Any) -> Any:
        return "" if value is None else value

    @field_validator("clickhouse_dsn")
    @classmethod
    def _dsn(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return value
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - parsing the port validates it
        except ValueError as exc:
            raise ValueError(f"malformed DSN: {exc}") from exc
        scheme = parts.scheme.lower()
        if scheme == "chdb":
            if parts.netloc or not parts.path.startswith("/") or parts.query:
                raise ValueError("an embedded DSN must be chdb:///absolute/path (three slashes)")
        elif scheme in ("http", "https"):
            if not parts.hostname:
                raise ValueError(f"a {scheme} DSN needs a host: {scheme}://user:password@host:8123")
        else:
            raise ValueError(
                "must start with chdb:// (embedded engine), http:// or https:// (server)"
            )
        return value

    @field_validator("clickhouse_database")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _IDENTIFIER.fullmatch(value):
            raise ValueError(
                "must be a plain identifier (letters, digits, _; not starting with a digit)"
            )
        return value

    @field_validator("performance_floors")
    @classmethod
    def _floors(cls, value: dict[str, float]) -> dict[str, float]:
        # Floors are finite already: the model refuses NaN and infinities everywhere.
        if any(not metric.strip() for metric in value):
            raise ValueError("metric names must not be empty")
        return value

    @field_validator("api_tokens")
    @classmethod
    def _unique_tokens(cls, value: list[ApiToken]) -> list[ApiToken]:
        secrets = [token.token.get_secret_value() for token in value]
        if len(set(secrets)) != len(secrets):
            raise ValueError("the same token is listed twice")
        return value

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _servers(cls, value: str | None) -> str | None:
        if value is None:
            return None
        servers = [server.strip() for server in value.split(",")]
        if not all(servers):
            raise ValueError("must be host:port[,host:port...] without empty entries")
        return ",".join(servers)

    @field_validator("schema_registry_url")
    @classmethod
    def _registry(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parts = urlsplit(value.strip())
        except ValueError as exc:
            raise ValueError(f"malformed URL: {exc}") from exc
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http:// or https:// URL")
        return value.strip()

    @_model_validator(mode="after")
    def _computed_defaults(self) -> Settings:
        # After every source: a data_dir from any source moves the default locations too.
        if not self.clickhouse_dsn:
            self.clickhouse_dsn = f"chdb://{self.data_dir / 'clickhouse'}"
        if not self.mlflow_tracking_uri:
            self.mlflow_tracking_uri = f"sqlite:///{self.data_dir / 'mlflow.db'}"
        return self

    # --- output

    def masked_dict(self) -> dict[str, Any]:
        """Effective settings as a JSON-able dict, secrets masked as ``"***"``.

        API tokens are masked; so is the password of every URL-shaped value
        (``http://user:***@host:8123``).

        Returns
        -------
        dict
            Setting name → value (paths as str).
        """
        data = self.model_dump(mode="json")
        data["api_tokens"] = [{**token, "token": MASK} for token in data["api_tokens"]]
        return {
            name: _mask_url(value) if isinstance(value, str) else value
            for name, value in data.items()
        }

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # A DSN's password must not reach logs through repr(settings).
        for name, value in super().__repr_args__():
            yield name, _mask_url(value) if isinstance(value, str) else value


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SettingsError([f"{CONFIG_ENV}: config file {path} does not exist"]) from None
    except OSError as exc:
        raise SettingsError([f"{CONFIG_ENV}: cannot read config file {path}: {exc}"]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SettingsError(
            [f"{CONFIG_ENV}: config file {path} is not valid YAML{where}: {problem}"]
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(
            [f"{CONFIG_ENV}: config file {path} must hold a mapping of setting: value"]
        )
    return {str(key): value for key, value in data.items()}


def _env_name(loc: tuple[int | str, ...]) -> str:
    if not loc:
        return "settings"
    name = f"{ENV_PREFIX}{str(loc[0]).upper()}"
    for part in loc[1:]:
        name += f"[{part}]" if isinstance(part, int) else f".{part}"
    return name


def _problem(error: Any) -> str:
    loc = tuple(error.get("loc", ()))
    if error.get("type") == "extra_forbidden":
        return f"{loc[0] if loc else '?'}: unknown setting (in the config file or an override)"
    message = str(error.get("msg", "invalid"))
    message = message.removeprefix("Value error, ")
    value = error.get("input")
    secret = bool(loc) and loc[0] == "api_tokens"
    if not secret and isinstance(value, str | int | float) and not isinstance(value, bool):
        shown = _mask_url(value) if isinstance(value, str) else value
        text = repr(shown)
        message += f" (got {text if len(text) <= 80 else text[:77] + '...'})"
    return f"{_env_name(loc)}: {message}"


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """The effective settings: overrides > ``DRIFTLINE_*`` env > YAML file > defaults.

    Parameters
    ----------
    config_file
        YAML file of ``setting: value`` pairs; None: the file named by
        ``DRIFTLINE_CONFIG``, if set. Relative paths inside it are taken against the
        working directory, like those in environment variables.
    **overrides
        Settings by field name (e.g. from command-line options). Overrides that are
        None are ignored, so options left unset fall through to the other sources.

    Returns
    -------
    Settings
        Validated; ``clickhouse_dsn`` and ``mlflow_tracking_uri`` are filled in from
        ``data_dir`` when no source sets them.

    Raises
    ------
    SettingsError
        A value is invalid or unknown (one line per problem, named by its environment
        variable), or the config file is missing or not a YAML mapping.
    """
    token = _CONFIG_FILE.set(Path(config_file) if config_file is not None else None)
    try:
        return Settings(**{name: value for name, value in overrides.items() if value is not None})
    except ValidationError as exc:
        raise SettingsError([_problem(error) for error in exc.errors()]) from None
    except _SourceError as exc:  # a list or dict variable that is not JSON
        field = re.search(r'field "(\w+)"', str(exc))
        name = f"{ENV_PREFIX}{field.group(1).upper()}" if field else "settings"
        reason = f": {exc.__cause__}" if exc.__cause__ else ""
        raise SettingsError([f"{name}: must be JSON{reason}"]) from None
    finally:
        _CONFIG_FILE.reset(token)
