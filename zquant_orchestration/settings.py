"""Every setting the code location takes from its environment, read and checked in one place.

``get_settings()`` reads the environment each time it is called, so a sensor tick, a run
and a test that sets a variable all see the environment as it is then; nothing is read at
import. A bad value is one line naming the variable and what it accepts (``SettingsError``).
The README's "Configuration" table lists the same variables (a test keeps them equal).

Modules that start other programs take the environment they hand on from
``process_environment()``, and ``export()`` sets a variable for the programs started after
it, so this module stays the only reader of ``os.environ``.
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from zquant_orchestration.lib.datasets import DEFAULT_ENABLED, DEFAULT_INDEX_CODES, OPTIONAL
from zquant_orchestration.lib.dates import to_date

DEFAULT_DATA_DIR = ".zquant"
DEFAULT_FINANCE_START = "2010-01-01"

WHOLE_ABOVE_0 = "a whole number above 0"
# What each checked variable accepts, as its error says it.
ACCEPTS = {
    "TUSHARE_CALLS_PER_MINUTE": WHOLE_ABOVE_0,
    "TUSHARE_RATE_WINDOW_SECONDS": "a number of seconds above 0",
    "ZQUANT_FINANCE_MODE": "one of per_stock, vip",
    "ZQUANT_FINANCE_START": "a date like 2010-01-01",
    "ZQUANT_FINANCE_MAX_ATTEMPTS": WHOLE_ABOVE_0,
    "ZQUANT_AUTOMATION_INTERVAL_SECONDS": "a whole number of seconds above 0",
    "ZQUANT_GAP_LOOKBACK_DAYS": WHOLE_ABOVE_0,
    "ZQUANT_GAP_MAX_ATTEMPTS": WHOLE_ABOVE_0,
    "ZQUANT_TODAY": "a date like 2024-01-31 (YYYY-MM-DD)",
    "ZQUANT_WEBHOOK_MAX_MESSAGES": WHOLE_ABOVE_0,
    "DAGSTER_PG_PORT": "a port number (1 to 65535)",
    "ZQUANT_DATASETS": "'all', 'none' or dataset names separated by commas, of: " + ", ".join(OPTIONAL),
    "ZQUANT_INDEX_CODES": "index ts_codes separated by commas, e.g. 000300.SH,399006.SZ",
    "ZQUANT_QUOTA_URL": "a PostgreSQL URL like postgresql://user:password@host:5432/dbname",
    "ZQUANT_EXECUTOR": "one of multiprocess, celery",
    "ZQUANT_CELERY_BROKER_URL": "a Celery broker URL like pyamqp://user:password@host:5672//",
    "ZQUANT_CELERY_QUEUE": "a queue name of letters, digits, '-' and '_'",
}
# Values never repeated in an error: they may be secrets.
SECRET = frozenset({"TUSHARE_TOKEN", "ZQUANT_WEBHOOK_URL", "ZQUANT_WAREHOUSE_URL", "ZQUANT_QUOTA_URL",
                    "DAGSTER_PG_PASSWORD", "ZQUANT_CELERY_BROKER_URL"})
# The drivers the shared quota's store (lib/tushare/quota_database.py) is written for.
QUOTA_URL_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg2://")
# RabbitMQ's own account on this host: enough to try the Celery recipe on one machine.
DEFAULT_CELERY_BROKER_URL = "pyamqp://guest:guest@127.0.0.1:5672//"
CELERY_BROKER_SCHEMES = ("amqp://", "amqps://", "pyamqp://")


class SettingsError(ValueError):
    """A variable's value is not one it accepts (one line)."""


def _unset_if_blank(value):
    return None if isinstance(value, str) and not value.strip() else value


def _blank_is(default: str, lower: bool = False):
    """A validator for a text setting: surrounding spaces dropped (and lower-cased if asked),
    and blank meaning ``default``, as unset does."""
    def stripped(value):
        if not isinstance(value, str):
            return value
        value = value.strip().lower() if lower else value.strip()
        return value or default
    return stripped


class Settings(BaseSettings):
    """The variables, named as they are set (``validation_alias``); field descriptions are the
    README's "meaning" column."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", populate_by_name=False)

    tushare_token: SecretStr | None = Field(None, validation_alias="TUSHARE_TOKEN")
    tushare_http_url: str | None = Field(None, validation_alias="TUSHARE_HTTP_URL")
    tushare_calls_per_minute: int = Field(200, ge=1, validation_alias="TUSHARE_CALLS_PER_MINUTE")
    tushare_rate_window_seconds: float = Field(60.0, gt=0, validation_alias="TUSHARE_RATE_WINDOW_SECONDS")
    tasks_file: Path | None = Field(None, validation_alias="ZQUANT_TASKS_FILE")
    quota_dir: Path | None = Field(None, validation_alias="ZQUANT_QUOTA_DIR")
    quota_url: SecretStr | None = Field(None, validation_alias="ZQUANT_QUOTA_URL")
    warehouse_url: SecretStr | None = Field(None, validation_alias="ZQUANT_WAREHOUSE_URL")
    data_dir: str = Field(DEFAULT_DATA_DIR, validation_alias="ZQUANT_DATA_DIR")
    export_dir: Path | None = Field(None, validation_alias="ZQUANT_EXPORT_DIR")
    finance_mode: Literal["per_stock", "vip"] = Field("per_stock", validation_alias="ZQUANT_FINANCE_MODE")
    finance_start: date = Field(to_date(DEFAULT_FINANCE_START), validation_alias="ZQUANT_FINANCE_START")
    finance_universe: str = Field("", validation_alias="ZQUANT_FINANCE_UNIVERSE")
    finance_max_attempts: int = Field(3, ge=1, validation_alias="ZQUANT_FINANCE_MAX_ATTEMPTS")
    datasets: Annotated[tuple[str, ...], NoDecode] = Field(DEFAULT_ENABLED, validation_alias="ZQUANT_DATASETS")
    index_codes: Annotated[tuple[str, ...], NoDecode] = Field(DEFAULT_INDEX_CODES,
                                                              validation_alias="ZQUANT_INDEX_CODES")
    market_cron: str = Field("30 18 * * 1-5", validation_alias="ZQUANT_MARKET_CRON")
    reference_cron: str = Field("0 8 * * *", validation_alias="ZQUANT_REFERENCE_CRON")
    automation_interval_seconds: int = Field(30, ge=1, validation_alias="ZQUANT_AUTOMATION_INTERVAL_SECONDS")
    gap_lookback_days: int = Field(30, ge=1, validation_alias="ZQUANT_GAP_LOOKBACK_DAYS")
    gap_max_attempts: int = Field(3, ge=1, validation_alias="ZQUANT_GAP_MAX_ATTEMPTS")
    today: date | None = Field(None, validation_alias="ZQUANT_TODAY")
    webhook_url: SecretStr | None = Field(None, validation_alias="ZQUANT_WEBHOOK_URL")
    webhook_on_success: str = Field("", validation_alias="ZQUANT_WEBHOOK_ON_SUCCESS")
    webhook_max_messages: int = Field(5, ge=1, validation_alias="ZQUANT_WEBHOOK_MAX_MESSAGES")
    ui_url: str = Field("http://127.0.0.1:3000", validation_alias="ZQUANT_UI_URL")
    executor: Literal["multiprocess", "celery"] = Field("multiprocess", validation_alias="ZQUANT_EXECUTOR")
    celery_broker_url: SecretStr | None = Field(None, validation_alias="ZQUANT_CELERY_BROKER_URL")
    celery_queue: str = Field("dagster", pattern=r"^[A-Za-z0-9_-]+$", validation_alias="ZQUANT_CELERY_QUEUE")
    arrow_default_memory_pool: str | None = Field(None, validation_alias="ARROW_DEFAULT_MEMORY_POOL")
    dagster_home: str | None = Field(None, validation_alias="DAGSTER_HOME")
    dagster_pg_host: str | None = Field(None, validation_alias="DAGSTER_PG_HOST")
    dagster_pg_port: int | None = Field(None, ge=1, le=65535, validation_alias="DAGSTER_PG_PORT")
    dagster_pg_user: str | None = Field(None, validation_alias="DAGSTER_PG_USER")
    dagster_pg_password: SecretStr | None = Field(None, validation_alias="DAGSTER_PG_PASSWORD")
    dagster_pg_db: str | None = Field(None, validation_alias="DAGSTER_PG_DB")

    # Unset and empty mean the same for these, as they always have.
    _blank_is_unset = field_validator(
        "tushare_token", "tushare_http_url", "tasks_file", "quota_dir", "warehouse_url", "export_dir",
        "webhook_url", "celery_broker_url", "arrow_default_memory_pool", "dagster_home", "dagster_pg_port",
        mode="before")(_unset_if_blank)

    @field_validator("quota_url", mode="before")
    @classmethod
    def _quota_url(cls, value):
        value = _unset_if_blank(value)
        if isinstance(value, str) and not value.strip().startswith(QUOTA_URL_SCHEMES):
            raise ValueError("not a PostgreSQL URL")
        return value.strip() if isinstance(value, str) else value

    _mode = field_validator("finance_mode", mode="before")(_blank_is("per_stock"))
    _executor = field_validator("executor", mode="before")(_blank_is("multiprocess", lower=True))
    _queue = field_validator("celery_queue", mode="before")(_blank_is("dagster"))

    @field_validator("celery_broker_url", mode="after")
    @classmethod
    def _broker(cls, value):
        # RabbitMQ only: the recipe counts on a killed worker's unfinished step going back to
        # the queue the moment its connection drops (README "Scaling out").
        if value is not None and not value.get_secret_value().startswith(CELERY_BROKER_SCHEMES):
            raise ValueError("not an AMQP URL")
        return value

    @field_validator("datasets", mode="before")
    @classmethod
    def _datasets(cls, value):
        if not isinstance(value, str):
            return value
        names = [n.strip() for n in value.split(",") if n.strip()]
        if not names:
            return DEFAULT_ENABLED
        if names == ["all"]:
            return OPTIONAL
        if names == ["none"]:
            return ()
        if any(n not in OPTIONAL for n in names):
            raise ValueError("unknown dataset")
        return tuple(n for n in OPTIONAL if n in names)

    @field_validator("index_codes", mode="before")
    @classmethod
    def _index_codes(cls, value):
        if not isinstance(value, str):
            return value
        codes = tuple(c.strip().upper() for c in value.split(",") if c.strip())
        if any(not re.fullmatch(r"\d{6}\.(SH|SZ|CSI|BJ|SI|MI|CIC|OTH)", c) for c in codes):
            raise ValueError("not an index code")
        return codes or DEFAULT_INDEX_CODES

    @field_validator("finance_start", mode="before")
    @classmethod
    def _start(cls, value):
        if value is None or (isinstance(value, str) and not value.strip()):
            return to_date(DEFAULT_FINANCE_START)
        return to_date(value) if isinstance(value, str) else value

    @field_validator("today", mode="before")
    @classmethod
    def _iso_day(cls, value):
        if isinstance(value, str) and value.strip():
            return to_date(value)
        return None if isinstance(value, str) else value

    @field_validator("tushare_calls_per_minute", "finance_max_attempts", "automation_interval_seconds",
                     "gap_lookback_days", "gap_max_attempts", "webhook_max_messages", mode="before")
    @classmethod
    def _whole(cls, value):
        # Digits only: "3.0" or "+3" is not a count of anything.
        if isinstance(value, str) and not value.strip().isdigit():
            raise ValueError("not a whole number")
        return value

    # --- what the rest of the code location asks -------------------------------------------

    @property
    def finance_stocks(self) -> list[str]:
        return [c.strip().upper() for c in self.finance_universe.split(",") if c.strip()]

    @property
    def notify_on_success(self) -> bool:
        return self.webhook_on_success.lower() in ("1", "true", "yes")

    @property
    def ui_base_url(self) -> str:
        return self.ui_url.rstrip("/")

    @property
    def has_token(self) -> bool:
        return self.tushare_token is not None

    def exports_root(self) -> Path:
        """``ZQUANT_EXPORT_DIR``, else ``$ZQUANT_DATA_DIR/exports``: where the Parquet and qlib exports go."""
        return (self.export_dir or Path(self.data_dir) / "exports").resolve()

    def celery_broker(self) -> str:
        """``ZQUANT_CELERY_BROKER_URL``, else RabbitMQ's guest account on this host."""
        if self.celery_broker_url is not None:
            return self.celery_broker_url.get_secret_value()
        return DEFAULT_CELERY_BROKER_URL

    def default_warehouse_url(self) -> str:
        """``ZQUANT_WAREHOUSE_URL``, else a SQLite file at ``$ZQUANT_DATA_DIR/warehouse.sqlite``."""
        if self.warehouse_url is not None:
            return self.warehouse_url.get_secret_value()
        return f"sqlite:///{Path(self.data_dir).resolve() / 'warehouse.sqlite'}"


def variables() -> list[str]:
    """Every variable this module reads, in the README table's order."""
    return [field.validation_alias for field in Settings.model_fields.values()]


def get_settings() -> Settings:
    """The settings as the environment holds them now, or ``SettingsError`` naming the first bad one."""
    try:
        return Settings()
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0])
        accepts = ACCEPTS.get(name, "a valid value")
        shown = "" if name in SECRET else f", got {os.environ.get(name, '')!r}"
        raise SettingsError(f"{name} must be {accepts}{shown}") from None


def process_environment() -> dict[str, str]:
    """A copy of this process's environment, for a program it starts."""
    return dict(os.environ)


def is_set(name: str) -> bool:
    """Whether ``name`` is in this process's environment (a task's ``env:`` names)."""
    return name in os.environ


def export(name: str, value: str) -> None:
    """Sets ``name`` for this process and the programs it starts afterwards."""
    os.environ[name] = value
