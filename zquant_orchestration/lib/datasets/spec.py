"""What a dataset declaration says: one Tushare API, how it is fetched, its keys, its limits,
the points it needs and when Tushare publishes it. Everything else (the table, the asset,
its partitions and checks, gap repair, scheduling, the data dictionary) follows from it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time
from enum import StrEnum


class Fetch(StrEnum):
    REFERENCE = "reference"            # the whole table, replaced per refresh
    TRADE_DATE = "trade_date"          # one call per trading day: the whole market that day
    EX_DATE = "ex_date"                # one call per trading day, asking for rows of that ex-date
    PER_CODE = "per_code"              # one call per configured code over a run's days
    REPORT_PERIOD = "report_period"    # statements by report period (the finance domain)


# The asset groups of the trading-day datasets: the foundation's bars, what a fill may do
# (limits, suspensions, dividends), trading flows, and indices.
DAY_GROUPS = ("market", "tradability", "flows", "indices")


@dataclass(frozen=True)
class Published:
    """When Tushare has a trading day's rows: ``at`` (Shanghai) on the day itself, or on the
    ``trading_days_later``-th trading day after it. ``note`` says where the time comes from."""

    at: time
    trading_days_later: int = 0
    note: str = ""

    def __str__(self) -> str:
        day = "the trading day" if not self.trading_days_later else f"{self.trading_days_later} trading day(s) later"
        return f"{self.at:%H:%M} Shanghai, {day}"


@dataclass(frozen=True)
class DatasetSpec:
    name: str                       # the table's and the asset's name
    api: str                        # the Tushare API
    fetch: Fetch
    keys: tuple[str, ...]           # one row per key in the table
    points: int                     # the Tushare points an account needs to call the API
    published: Published | None     # None: reference data, refreshed on its own schedule
    description: str
    doc_id: int                     # https://tushare.pro/document/2?doc_id=N
    date_column: str | None = None  # the column a trading-day partition selects
    may_be_empty: bool = False      # an open day may legitimately hold no rows
    required_values: tuple[str, ...] = ()  # Tushare fills these on every row; an empty one is a broken reply
    code_param: str = "ts_code"     # PER_CODE: the parameter that takes the code
    codes_setting: str | None = None  # PER_CODE: the setting holding the codes
    available_from: date | None = None  # Tushare has no rows before this day: earlier days land empty, uncalled
    covers_daily_bars: float | None = None  # share of a day's daily bars this dataset must cover (a check)
    split_by: tuple[tuple[str, str], ...] = ()  # REFERENCE: one call per (param, value), e.g. per market
    core: bool = False              # always on (the foundation); the others are chosen by ZQUANT_DATASETS
    declared_columns: tuple[tuple[str, str], ...] = ()  # (name, type) where schema_columns.json has no entry
    group: str = "market"           # the asset group in the UI; reference datasets are in "reference"

    # The wire's facts are looked up when asked: settings.py reads this catalog, and the
    # Tushare package reads the settings.
    @property
    def row_limit(self) -> int:
        from zquant_orchestration.lib.tushare.protocol import row_limit

        return row_limit(self.api)

    @property
    def columns(self) -> list[tuple[str, str]]:
        """(column, type) of the table: the API's documented output columns."""
        from zquant_orchestration.lib.tushare.catalog import api_columns

        return list(self.declared_columns) or api_columns(self.api)

    @property
    def doc_url(self) -> str:
        return f"https://tushare.pro/document/2?doc_id={self.doc_id}"

    @property
    def partitioned_by_day(self) -> bool:
        return self.fetch in (Fetch.TRADE_DATE, Fetch.EX_DATE, Fetch.PER_CODE)
