"""Reference data (calendar, stock list) and the trading-day market tables.

Each market asset makes ONE ``trade_date`` call per day (plus pages), never one per
stock, and writes whole days, a batch of days per transaction. A range run materializes its
partitions only when every day of it has landed, so Dagster never shows a partition as
materialized without its rows. A re-run skips the days already landed (whole, by the
above) unless its config says ``force_refresh``; a run with ``stocks`` refetches only
those stocks over days already landed (config.py).
"""


import functools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta

import dagster as dg
import pandas as pd

from zquant_orchestration.defs.tushare.resources import TushareResource
from zquant_orchestration.defs.warehouse.resources import WarehouseResource
from zquant_orchestration.lib.prefetch import Prefetcher
from zquant_orchestration.lib.tushare import TushareError, TushareUnavailableError
from zquant_orchestration.lib.warehouse import Warehouse, quality

from .config import codes, market_run_config
from .partitions import trading_day_partitions
from .reference import STATUSES_WITH_ROWS, ReferenceRunConfig, guard_calendar, guard_stock_list
from .replies import validate_day, validate_stock, whole_reply

# The exchanges Tushare's trade_cal documents.
EXCHANGES = ("SSE", "SZSE", "CFFEX", "SHFE", "CZCE", "DCE", "INE")
LIST_STATUSES = {"L": "listed", "D": "delisted", "P": "paused"}


def tushare_pool(api_name: str) -> str:
    """The Dagster pool of the steps that call ``api_name``. Tushare's quota is per API and per
    account, so dagster.yaml gives each pool ONE slot: whatever runs at once (schedule, backfill,
    manual run), one step per API calls Tushare, held to the quota by its client; different
    APIs still run side by side, and no two runs write the same table at once."""
    return f"tushare_{api_name}"


# Each step retries transient failures after the client's own retries gave up.
STEP_RETRY = dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


@contextmanager
def failing_fast_on_permanent_errors() -> Iterator[None]:
    """Only a transient fault earns a step retry. A bad token, a missing permission, a bad
    request or a day with no data yet would fail the same way again: fail now, with the
    one-line cause (the gap sensor re-requests unfinished days later)."""
    try:
        yield
    except TushareUnavailableError:
        raise
    except TushareError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None


@dg.asset(group_name="reference", kinds={"tushare", "sql"}, retry_policy=STEP_RETRY, pool=tushare_pool("trade_cal"))
def trade_cal(context: dg.AssetExecutionContext, config: ReferenceRunConfig, tushare: TushareResource,
              warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Trading calendars of every exchange Tushare has; the SSE one drives the partitions.
    A refresh that would drop days the table holds is refused unless forced (reference.py)."""
    mark = tushare.stats_mark()
    with failing_fast_on_permanent_errors():
        frames = {ex: whole_reply(f"trade_cal(exchange={ex})", "trade_cal",
                                  tushare.query("trade_cal", {"exchange": ex}, expect_rows=True))
                  for ex in EXCHANGES}
    wh = warehouse.get()
    removed = guard_calendar(context, wh, frames, config.allow_removals)
    frame = pd.concat(frames.values(), ignore_index=True)
    rows = wh.replace_rows("trade_cal", frame)
    sse = frame[(frame.exchange == "SSE") & (frame.is_open == 1)]
    context.log.info(f"trade_cal: {rows} rows for {len(EXCHANGES)} exchanges, SSE known until {frame.cal_date.max()}")
    return dg.MaterializeResult(metadata={
        "rows": rows,
        "rows_by_exchange": {ex: int((frame.exchange == ex).sum()) for ex in EXCHANGES},
        "sse_open_days": len(sse),
        "last_calendar_day": str(frame.cal_date.max()),
        "calendar_days_removed": removed,
        **tushare.metadata_since(mark),
    })


@dg.asset(group_name="reference", kinds={"tushare", "sql"}, retry_policy=STEP_RETRY,
          pool=tushare_pool("stock_basic"))
def stock_basic(context: dg.AssetExecutionContext, config: ReferenceRunConfig, tushare: TushareResource,
                warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Every stock Tushare lists, in each list status (listed, delisted, paused). A refresh
    that would drop stocks the table holds is refused unless forced (reference.py)."""
    mark = tushare.stats_mark()
    with failing_fast_on_permanent_errors():
        frames = {status: whole_reply(f"stock_basic(list_status={status})", "stock_basic",
                                      tushare.query("stock_basic", {"list_status": status},
                                                    expect_rows=status in STATUSES_WITH_ROWS))
                  for status in LIST_STATUSES}
    frame = pd.concat(frames.values(), ignore_index=True)
    if frame.ts_code.duplicated().any():
        raise TushareUnavailableError(
            f"stock_basic returned {int(frame.ts_code.duplicated().sum())} stocks in two list statuses at once; "
            "nothing was written, re-run"
        )
    wh = warehouse.get()
    removed = guard_stock_list(context, wh, frames, config.allow_removals)
    rows = wh.replace_rows("stock_basic", frame)
    return dg.MaterializeResult(metadata={
        "rows": rows,
        "stocks_removed": removed,
        **{f"{name}_stocks": len(frames[status]) for status, name in LIST_STATUSES.items()},
        **tushare.metadata_since(mark),
    })


@dataclass(frozen=True)
class MarketTable:
    asset_name: str
    api_name: str
    description: str


MARKET_TABLES = (
    MarketTable("daily_bars", "daily", "Unadjusted daily OHLCV of every stock that traded (Tushare `daily`)."),
    MarketTable("adj_factor", "adj_factor", "Adjustment factors of every listed stock (Tushare `adj_factor`)."),
    MarketTable("daily_basic", "daily_basic", "Daily valuation and turnover (Tushare `daily_basic`)."),
)

# Late if the latest trading day has not landed by 19:30 Shanghai (the schedule starts at
# 18:30). The policy's deadline ticks on weekdays; on a weekday holiday it reports late
# although nothing was due (Dagster's cron policies know no exchange calendar).
DAILY_BARS_FRESHNESS = dg.FreshnessPolicy.cron(
    deadline_cron="30 19 * * 1-5", lower_bound_delta=timedelta(hours=1), timezone="Asia/Shanghai")

# Checks of the landed rows alone, run in the asset's step. The checks that read another
# table (the stock list, the other market table) are asset checks of their own below.
CHECK_NAMES = {"daily_bars": ["no_duplicate_keys", "ohlc_sane"],
               "adj_factor": ["no_duplicate_keys"], "daily_basic": ["no_duplicate_keys"]}


def _iso_to_date(key: str) -> date:
    return date.fromisoformat(key)


def build_market_asset(table: MarketTable, trading_days: dg.PartitionsDefinition,
                       run_config: type[dg.Config]) -> dg.AssetsDefinition:
    @dg.asset(
        name=table.asset_name,
        description=table.description,
        group_name="market",
        kinds={"tushare", "sql"},
        partitions_def=trading_days,
        # One run per requested range (CLI --partition-range needs single_run); each day
        # still commits on its own, so a failure costs one re-run of the range, idempotently.
        backfill_policy=dg.BackfillPolicy.single_run(),
        # Not stock_basic: a trade_date call returns every stock that traded whatever the
        # stock list says, so the evening run fetches the day while the list refreshes
        # beside it; only the check against the listed universe waits for the list.
        deps=[trade_cal],
        retry_policy=STEP_RETRY,
        pool=tushare_pool(table.api_name),
        freshness_policy=DAILY_BARS_FRESHNESS if table.asset_name == "daily_bars" else None,
        check_specs=[dg.AssetCheckSpec(name, asset=table.asset_name) for name in CHECK_NAMES[table.asset_name]],
    )
    def market_asset(context: dg.AssetExecutionContext, config: run_config, tushare: TushareResource,
                     warehouse: WarehouseResource) -> dg.MaterializeResult:
        started = time.perf_counter()
        wh = warehouse.get()
        mark = tushare.stats_mark()
        days = context.partition_keys
        start, end = _iso_to_date(days[0]), _iso_to_date(days[-1])
        if config.stocks:
            landed = _refresh_stocks(context, table, tushare, wh, days, codes(config.stocks))
        else:
            landed = _land_days(context, table, tushare, wh, days, config.force_refresh)
        land_seconds = time.perf_counter() - started
        context.log.info(f"{table.asset_name}: {landed['rows']} rows over {landed['days_fetched']} of "
                         f"{len(days)} trading days ({days[0]}..{days[-1]}) in {land_seconds:.1f}s")
        checks = _checks(table.asset_name, wh, start, end)
        # Where the step's time went: landing (fetch and write overlap, so land_ms is less
        # than fetch_ms + write_ms), checks, and what is left of the step is Dagster's.
        timing = {"land_ms": round(land_seconds * 1000, 1),
                  "check_ms": round((time.perf_counter() - started - land_seconds) * 1000, 1)}
        return dg.MaterializeResult(
            metadata={**landed, "trading_days": len(days), "first_day": days[0], "last_day": days[-1],
                      **tushare.metadata_since(mark), **timing},
            check_results=checks,
        )

    return market_asset


# While one batch of days is written the next days are fetched (lib/prefetch.py). A batch
# is every day fetched meanwhile, up to about this many rows (some 20 full-market days):
# under a quota days arrive one by one and each is written at once; when the warehouse is
# the slow side, days pile up and land together, in ONE transaction. Each day still lands
# whole or not at all, and the per-stock primary-key index is rewritten once per batch
# instead of once per day: in SQLite 150,000 instead of 30,000 rows/s (docs/benchmarks.md).
# Days fetched ahead are held as frames until written: with replies decoded by orjson the
# fetch is rarely the slow side, and 20 days ahead kept a step near 400 MB at its peak;
# 12 days measured the same speed at ~365 MB.
WRITE_BATCH_ROWS = 100_000
FETCH_AHEAD_DAYS = 18


def _land_days(context, table: MarketTable, tushare: TushareResource, wh: Warehouse, days: list[str],
               force_refresh: bool) -> dict:
    """The whole market, one call per day. A day's rows are all of its reply or none, so a
    day that holds rows has landed whole: unless forced, it is skipped, and a re-run of a
    range picks up where a failed or killed one stopped."""
    held = set() if force_refresh else wh.days_with_rows(table.asset_name, _iso_to_date(days[0]),
                                                         _iso_to_date(days[-1]))

    def fetch(day: str) -> pd.DataFrame:
        trade_date = day.replace("-", "")
        with failing_fast_on_permanent_errors():
            frame = tushare.query(table.api_name, {"trade_date": trade_date}, require_rows=True)
        validate_day(table.api_name, table.asset_name, frame, trade_date)
        return frame

    rows = fetched = 0
    stocks: set[str] = set()
    write_seconds = 0.0
    # A failed fetch surfaces here only after every day fetched before it was written, so
    # the retry starts after them.
    with Prefetcher(fetch, [d for d in days if d not in held], ahead=FETCH_AHEAD_DAYS, size=len,
                    name=f"fetch-{table.api_name}") as prefetcher:
        for batch in prefetcher.batches(max_size=WRITE_BATCH_ROWS):
            started = time.perf_counter()
            batch_days = [d for d, _ in batch]
            # As a numpy array: set.update over an Arrow-backed column (or its unique())
            # goes element by element through pandas, ~10x slower (py-spy, docs/benchmarks.md).
            stocks.update(*(f.ts_code.unique().to_numpy() for _, f in batch))
            # The batch is handed over as one frame that nothing here keeps: the warehouse
            # holds a single copy of it while converting (a step's peak memory, issue #8).
            written = wh.replace_rows(table.asset_name, _one_frame(batch), {"trade_date": batch_days})
            rows += written
            write_seconds += time.perf_counter() - started
            fetched += len(batch_days)
            context.log.debug(f"{table.asset_name}: {written} rows of {len(batch_days)} days written "
                              f"({batch_days[0]}..{batch_days[-1]})")
    if held & set(days):
        context.log.info(f"{table.asset_name}: skipped {len(held & set(days))} days already landed "
                         "(force_refresh: true refetches them)")
    return {"rows": rows, "stocks": len(stocks), "days_fetched": fetched,
            "days_already_landed": len(held & set(days)), "write_ms": round(write_seconds * 1000, 1)}


def _one_frame(batch: list[tuple[str, pd.DataFrame]]) -> pd.DataFrame:
    """The batch's day frames as one; the days' own frames are let go."""
    frame = pd.concat([f for _, f in batch], ignore_index=True)
    batch.clear()
    return frame


def _refresh_stocks(context, table: MarketTable, tushare: TushareResource, wh: Warehouse, days: list[str],
                    stocks: list[str]) -> dict:
    """Some stocks over landed days: one call per stock for the whole range, then each day's
    rows of those stocks replaced in one transaction; other stocks' rows are not touched.
    Every reply is fetched and checked before anything is written."""
    first, last = _iso_to_date(days[0]), _iso_to_date(days[-1])
    held = wh.days_with_rows(table.asset_name, first, last)
    missing = [d for d in days if d not in held]
    if missing:
        raise dg.Failure(description=(
            f"stocks: {table.asset_name} has not landed {len(missing)} of the run's days ({', '.join(missing[:5])}"
            f"{', ...' if len(missing) > 5 else ''}) and a stock subset only repairs landed days; "
            "materialize those days without `stocks` first"), allow_retries=False)
    frames = []
    for code in stocks:
        params = {"ts_code": code, "start_date": first.strftime("%Y%m%d"), "end_date": last.strftime("%Y%m%d")}
        with failing_fast_on_permanent_errors():
            frame = tushare.query(table.api_name, params)
        validate_stock(table.api_name, table.asset_name, frame, code, days)
        if frame.empty and wh.days_with_rows(table.asset_name, first, last, ts_code=code):
            # An empty answer would delete the stock's rows: believe it only when the
            # warehouse agrees there is nothing, or a glitch would lose a history.
            raise TushareUnavailableError(
                f"{table.api_name}({code}, {days[0]}..{days[-1]}) returned no rows where the warehouse holds "
                "some; nothing was written, re-run later")
        frames.append(frame)
    fetched = pd.concat(frames, ignore_index=True)
    day_of_row = fetched.trade_date.astype(str).map(lambda d: f"{d[:4]}-{d[4:6]}-{d[6:]}")
    rows = 0
    for day in days:
        rows += wh.replace_rows(table.asset_name, fetched[day_of_row == day],
                                {"trade_date": [day], "ts_code": stocks})
    return {"rows": rows, "stocks": len(stocks), "days_fetched": len(days), "days_already_landed": 0,
            "refreshed_stocks": ", ".join(stocks[:20]) + (" ..." if len(stocks) > 20 else "")}


def _checks(asset_name: str, wh, start: date, end: date) -> list[dg.AssetCheckResult]:
    results = []
    for name in CHECK_NAMES[asset_name]:
        if name == "no_duplicate_keys":
            dups = quality.duplicate_keys(wh, asset_name, start, end)
            results.append(dg.AssetCheckResult(check_name=name, passed=dups == 0,
                                               metadata={"duplicate_keys": dups}))
        elif name == "ohlc_sane":
            bad = quality.ohlc_violations(wh, start, end)
            results.append(dg.AssetCheckResult(check_name=name, passed=bad == 0,
                                               metadata={"rows_violating_low_open_close_high": bad}))
    return results


def build_market_assets(trading_days: dg.PartitionsDefinition,
                        run_config: type[dg.Config]) -> tuple[dg.AssetsDefinition, ...]:
    """daily_bars, adj_factor, daily_basic over the given trading days."""
    return tuple(build_market_asset(t, trading_days, run_config) for t in MARKET_TABLES)


@functools.cache
def _process_market_assets() -> dict[str, dg.AssetsDefinition]:
    assets = build_market_assets(trading_day_partitions(), market_run_config())
    return {t.asset_name: a for t, a in zip(MARKET_TABLES, assets, strict=True)}


def __getattr__(name: str):
    # daily_bars, adj_factor, daily_basic as attributes, for tests and tools that import them:
    # built at the first ask over this process's trading days.
    if name in {t.asset_name for t in MARKET_TABLES}:
        return _process_market_assets()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dg.asset_check(asset="adj_factor", additional_deps=["daily_bars"], description=(
    "Every daily bar of the run's days has an adjustment factor (adjusted prices need both)."))
def adj_factor_covers_daily_bars(context: dg.AssetCheckExecutionContext,
                                 warehouse: WarehouseResource) -> dg.AssetCheckResult:
    start, end = run_day_range(context.run.tags)
    missing, total = quality.missing_coverage(warehouse.get(), "adj_factor", "daily_bars", start, end)
    return dg.AssetCheckResult(passed=missing == 0, metadata={
        "from": str(start), "to": str(end), "daily_bars_rows": total, "bars_without_adj_factor": missing})


@dg.asset_check(asset="daily_bars", name="rows_match_listed_universe", additional_deps=[stock_basic], description=(
                    "No day holds more bars than stocks listed that day (stock_basic), nor fewer than 80% of them "
                    "(suspended stocks have no bar). A warning: the stock list may lag a new listing."))
def daily_bars_match_listed_universe(context: dg.AssetCheckExecutionContext,
                                     warehouse: WarehouseResource) -> dg.AssetCheckResult:
    start, end = run_day_range(context.run.tags)
    per_day = quality.rows_against_universe(warehouse.get(), "daily_bars", start, end)
    if not per_day:
        return dg.AssetCheckResult(passed=True, severity=dg.AssetCheckSeverity.WARN,
                                   metadata={"from": str(start), "to": str(end), "days": 0})
    worst = min(per_day, key=lambda r: r[1] / max(r[2], 1))
    over = [d for d, n, listed in per_day if n > listed]
    return dg.AssetCheckResult(
        passed=not over and worst[1] >= 0.8 * worst[2], severity=dg.AssetCheckSeverity.WARN,
        metadata={"from": str(start), "to": str(end), "days": len(per_day), "worst_day": str(worst[0]),
                  "worst_day_rows": worst[1], "worst_day_listed": worst[2],
                  "days_with_more_rows_than_listed": len(over)})


# The checks that are not part of a market asset's step; every job of the market assets takes them.
MARKET_CHECKS = [adj_factor_covers_daily_bars, daily_bars_match_listed_universe]


def run_day_range(tags: dict[str, str]) -> tuple[date, date]:
    """The trading days a run covers, from the tags Dagster puts on partitioned runs."""
    if "dagster/asset_partition_range_start" in tags:
        return (_iso_to_date(tags["dagster/asset_partition_range_start"]),
                _iso_to_date(tags["dagster/asset_partition_range_end"]))
    if "dagster/partition" in tags:
        day = _iso_to_date(tags["dagster/partition"])
        return day, day
    last = trading_day_partitions().get_last_partition_key()
    return _iso_to_date(last), _iso_to_date(last)
