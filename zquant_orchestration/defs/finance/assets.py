"""Financial statements (``income``, ``balancesheet``, ``cashflow``, ``fina_indicator``) on
report-period partitions, every version kept.

A run covers a range of periods (``BackfillPolicy.single_run()``):
- ``per_stock`` mode makes ONE call per stock for the whole range (``start_date`` = the first
  period's end bounds ann_date; a single period uses ``period``), so a 17-year history costs
  one call per stock, not one per stock and period;
- ``vip`` mode makes one ``*_vip(period=...)`` call (plus pages) per period.
Rows are staged, then each period moves into its table in one transaction. A stock whose
call still fails after the client's retries, or whose reply cannot be kept (garbage, a value
its column cannot hold), is recorded (see failures.py) and the run goes on with the others;
only an account-level refusal (token, permission, daily cap) stops it at once. At the end
the run fails while any stock of its periods is missing, so a partition is only marked
materialized when complete.
"""

import functools
from collections.abc import Iterator
from datetime import date

import dagster as dg
import pandas as pd
from pydantic import Field

from zquant_orchestration.defs.shared.lazy import lazy_attributes
from zquant_orchestration.defs.shared.stock_codes import codes, stock_code_enum
from zquant_orchestration.defs.tushare.policy import STEP_RETRY, failing_fast_on_permanent_errors, tushare_pool
from zquant_orchestration.defs.tushare.resources import TushareResource
from zquant_orchestration.defs.warehouse.resources import WarehouseResource
from zquant_orchestration.lib.report_periods import deadline, parse_period
from zquant_orchestration.lib.run_tags import IN_PROGRESS
from zquant_orchestration.lib.tushare import (
    TushareAuthError,
    TushareError,
    TusharePermissionError,
    TushareUnavailableError,
)
from zquant_orchestration.lib.tushare.catalog import api_fields
from zquant_orchestration.lib.warehouse import Warehouse
from zquant_orchestration.lib.warehouse.errors import DATABASE_ERRORS
from zquant_orchestration.lib.warehouse.tables import FINANCE_TABLES, version_keys

from . import failures
from .partitions import report_period_partitions
from .resources import FinanceSettings

# Companies publish up to three years of pre-listing statements in their prospectus.
PRE_LISTING_YEARS = 3
DESCRIPTIONS = {
    "income": "Income statements, every version (Tushare `income` / `income_vip`).",
    "balancesheet": "Balance sheets, every version (Tushare `balancesheet` / `balancesheet_vip`).",
    "cashflow": "Cash flow statements, every version (Tushare `cashflow` / `cashflow_vip`).",
    "fina_indicator": "Financial indicators, every version (Tushare `fina_indicator` / `fina_indicator_vip`).",
}


@functools.cache
def finance_run_config(stock_code: type) -> type[dg.Config]:
    """The run config class of the statements over the ``StockCode`` enum: Dagster refuses an
    unknown code at launch, naming the field."""

    class FinanceRunConfig(dg.Config):
        stocks: list[stock_code] = Field(
            default_factory=list,
            description="Sync only these ts_codes (e.g. ['600519.SH']); empty: the configured universe.")

    return FinanceRunConfig


# A bad token, a missing permission or a used-up daily cap fails every stock alike: the run
# stops at once with the cause instead of spending a call on each stock.
ACCOUNT_ERRORS = (TushareAuthError, TusharePermissionError)


class BadReplyError(TushareUnavailableError):
    """A reply that cannot be right (another stock's rows, a period outside the request)."""


def build_finance_asset(api: str, report_periods: dg.PartitionsDefinition | None = None,
                        stock_code: type | None = None) -> dg.AssetsDefinition:
    """The statement asset of ``api``, over ``report_periods`` (default: from the settings) and
    the ``stock_code`` enum (default: this process's stock list)."""
    report_periods = report_periods or report_period_partitions()
    run_config = finance_run_config(stock_code or stock_code_enum())

    @dg.asset(
        name=api,
        description=DESCRIPTIONS[api],
        group_name="finance",
        kinds={"tushare", "sql"},
        partitions_def=report_periods,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=["stock_basic"],
        retry_policy=STEP_RETRY,
        pool=tushare_pool(api),  # per_stock calls `api`, vip calls `api`_vip: one slot covers both
        check_specs=[dg.AssetCheckSpec("no_failed_stocks", asset=api, description=(
                         "Every stock of the run's periods landed; failed ones are listed with their error.")),
                     dg.AssetCheckSpec("no_duplicate_versions", asset=api)],
    )
    def finance_asset(context: dg.AssetExecutionContext, config: run_config, tushare: TushareResource,
                      warehouse: WarehouseResource, finance: FinanceSettings) -> Iterator:
        wh = warehouse.get()
        keys = context.partition_keys
        periods = [parse_period(k) for k in keys]
        run_id = context.run.run_id
        subset = codes(config.stocks) or finance.universe
        known = wh.read("stock_basic")
        stocks = select_stocks(known, subset, periods[0], periods[-1], explicit=bool(config.stocks))
        mark = tushare.stats_mark()
        wh.discard_staged(api, _runs_in_progress(context.instance))
        landed, failed = set(), {}
        try:
            if finance.mode == "vip":
                landed = _sync_by_period(context, tushare, wh, api, keys, set(subset), finance.current_day())
            else:
                must_report = stocks_that_must_report(known, stocks, periods, finance.current_day())
                landed, failed = _sync_by_stock(context, tushare, wh, api, keys, stocks, must_report)
        finally:
            # Whatever was staged is correct: land it even when a permanent error stops the run.
            counts = {key: wh.merge_staged(api, run_id, period) for key, period in zip(keys, periods, strict=True)}
        rows = sum(n for n, _ in counts.values())
        new_versions = sum(n for _, n in counts.values())

        previous = failures.latest_records(context.instance, context.asset_key, keys)
        still_failing = {}
        for key in keys:
            record = failures.next_record(previous.get(key, {}), landed, failed,
                                          wanted=None if config.stocks else set(stocks))
            if record or previous.get(key):
                yield failures.observation(context.asset_key, key, record)
            if record:
                still_failing[key] = record
        duplicates = _duplicate_versions(wh, api, periods)
        worst = {code: f for record in still_failing.values() for code, f in record.items()}
        checks = [
            dg.AssetCheckResult(check_name="no_failed_stocks", passed=not worst, metadata={
                "failed_stocks": len(worst), "periods_with_failures": sorted(still_failing),
                "failures": dg.MetadataValue.table(
                    [dg.TableRecord({"ts_code": c, "attempts": f.attempts, "error": f.error})
                     for c, f in sorted(worst.items())], schema=failures.FAILED_SCHEMA)}),
            dg.AssetCheckResult(check_name="no_duplicate_versions", passed=duplicates == 0,
                                metadata={"duplicate_version_keys": duplicates}),
        ]
        context.log.info(f"{api}: {rows} rows ({new_versions} new versions) for {len(stocks)} stocks over "
                         f"{len(keys)} periods ({keys[0]}..{keys[-1]}), {len(failed)} stocks failed in this run")
        if worst:
            yield from checks
            sample = "; ".join(f"{c}: {f.error} (attempt {f.attempts} of {finance.max_stock_attempts})"
                               for c, f in sorted(worst.items())[:5])
            raise dg.Failure(
                description=(f"{api}: {len(worst)} stocks are missing from periods {', '.join(sorted(still_failing))}"
                             f" ({sample}); the other stocks' rows landed. The finance sensor retries stocks below "
                             f"{finance.max_stock_attempts} attempts; after that, re-run them with config stocks."),
                metadata={"failed_stocks": len(worst), "rows": rows},
                allow_retries=False,
            )
        yield dg.MaterializeResult(
            metadata={"rows": rows, "new_versions": new_versions, "stocks": len(stocks), "periods": len(keys),
                      "first_period": keys[0], "last_period": keys[-1], "mode": finance.mode,
                      **tushare.metadata_since(mark)},
            check_results=checks,
        )

    return finance_asset


def select_stocks(known: pd.DataFrame, wanted: list[str], first: date, last: date, explicit: bool) -> list[str]:
    """The stocks to call: ``wanted`` (checked against ``known``, the stock_basic table) or every
    stock that could have reports for [first, last]: not delisted before ``first`` ends, listed
    by three years after ``last``."""
    if known.empty:
        raise dg.Failure(description="stock_basic is empty: materialize stock_basic first "
                                     "(dagster asset materialize --select stock_basic)", allow_retries=False)
    if wanted:
        unknown = sorted(set(wanted) - set(known.ts_code))
        if unknown:
            source = "config stocks" if explicit else "ZQUANT_FINANCE_UNIVERSE"
            raise dg.Failure(description=f"{source} names stocks stock_basic does not know: {', '.join(unknown[:10])};"
                                         " fix the codes (e.g. 600519.SH) and run again", allow_retries=False)
        known = known[known.ts_code.isin(wanted)]
    if explicit:
        return sorted(known.ts_code)
    horizon = date(last.year + PRE_LISTING_YEARS, last.month, last.day)
    listed = known.list_date.map(lambda d: pd.isna(d) or d <= horizon)
    alive = known.delist_date.map(lambda d: pd.isna(d) or d > first)
    return sorted(known[listed & alive].ts_code)


def stocks_that_must_report(known: pd.DataFrame, stocks: list[str], periods: list[date], today: date) -> set[str]:
    """The stocks whose reply cannot rightly be empty: listed by the end of one of ``periods``
    whose filing deadline has passed, and still listed at that deadline. Every listed company
    files each report, so an empty reply for one of them is a faulty source, not "no reports";
    taken at its word, it would leave the stock's history silently missing. ``known`` is the
    stock_basic table."""
    known = known[known.ts_code.isin(stocks)]
    listed_on = pd.to_datetime(known.list_date)  # NaT where unknown: never "listed by"
    delisted_on = pd.to_datetime(known.delist_date)
    must = pd.Series(False, index=known.index)
    for period in periods:
        due = deadline(period)
        if today > due:
            must |= (listed_on <= pd.Timestamp(period)) & (delisted_on.isna() | (delisted_on > pd.Timestamp(due)))
    return set(known[must].ts_code)


def _sync_by_stock(context, tushare: TushareResource, wh: Warehouse, api: str, keys: list[str],
                   stocks: list[str], must_report: set[str]) -> tuple[set[str], dict[str, str]]:
    landed, failed = set(), {}
    wanted_periods = set(keys)
    for i, code in enumerate(stocks, 1):
        params = {"ts_code": code, "period": keys[0]} if len(keys) == 1 else {"ts_code": code, "start_date": keys[0]}
        try:
            reply = tushare.query(api, params, fields=api_fields(api), require_rows=code in must_report)
            frame = _validated(api, reply, params, code=code)
            if not frame.empty:  # a stock without reports may come back without columns too
                wh.stage_rows(api, context.run.run_id, frame[frame.end_date.isin(wanted_periods)])
        except ACCOUNT_ERRORS as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None
        except DATABASE_ERRORS:
            raise  # no stock's fault: the step fails, and its retries take over
        except Exception as exc:
            # Whatever else goes wrong with one stock's reply (a transient fault past the
            # client's retries, garbage, a value its column cannot hold) is that stock's.
            failed[code] = _one_line(exc)
            context.log.warning(f"{api} {code}: {failed[code]}")
            continue
        landed.add(code)
        if i % 500 == 0:
            context.log.info(f"{api}: {i} of {len(stocks)} stocks")
    return landed, failed


def _one_line(exc: Exception) -> str:
    """The error as a stock's failure record keeps it: one line, its kind named unless ours."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    if not isinstance(exc, TushareError):
        text = f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__
    return text[:300]


def _sync_by_period(context, tushare: TushareResource, wh: Warehouse, api: str, keys: list[str],
                    subset: set[str], today: date) -> set[str]:
    """Whole market per period (kept to ``subset`` if one is set); a failed period fails the
    step, and step retries take over: there is no per-stock failure in this mode."""
    landed: set[str] = set()
    for key in keys:
        params = {"period": key}
        with failing_fast_on_permanent_errors():
            # Past its filing deadline a period has the whole market's reports: none is a fault.
            reply = tushare.query(f"{api}_vip", params, fields=api_fields(api),
                                  require_rows=today > deadline(parse_period(key)))
            frame = _validated(api, reply, params)
        if subset:
            frame = frame[frame.ts_code.isin(subset)]
        wh.stage_rows(api, context.run.run_id, frame)
        landed.update(frame.ts_code)
    return landed | subset


def _validated(api: str, frame: pd.DataFrame, params: dict, code: str | None = None) -> pd.DataFrame:
    """Types as the warehouse keeps them; a reply about another stock or period is garbage."""
    if frame.empty:
        return frame
    frame = frame.copy()
    frame["end_date"] = frame.end_date.astype(str)
    if "update_flag" in frame:
        flags = pd.to_numeric(frame.update_flag, errors="coerce")
        if flags.isna().any():
            raise BadReplyError(f"{api}({params}) returned update_flag values that are not 0/1; nothing kept, retry")
        frame["update_flag"] = flags.astype(int)
    wrong = (frame.ts_code != code) if code else pd.Series(False, index=frame.index)
    if "period" in params:
        wrong |= frame.end_date != params["period"]
    if wrong.any():
        raise BadReplyError(f"{api}({params}) returned {int(wrong.sum())} rows of other stocks or periods; "
                            "nothing kept, retry")
    frame = frame.drop_duplicates()
    keys = [k for k in version_keys(api) if k in frame]
    if frame.duplicated(keys).any():
        raise BadReplyError(f"{api}({params}) returned two different rows for one version "
                            f"({', '.join(keys)}); nothing kept, retry")
    return frame


def _duplicate_versions(wh: Warehouse, api: str, periods: list[date]) -> int:
    keys = version_keys(api)
    frame = wh.read(api, {"end_date": periods})[keys]
    return int(frame.astype(str).duplicated().sum())


def _runs_in_progress(instance: dg.DagsterInstance) -> list[str]:
    return [run.run_id for run in instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS))]


def build_finance_assets(report_periods: dg.PartitionsDefinition, stock_code: type) -> tuple[dg.AssetsDefinition, ...]:
    """income, balancesheet, cashflow, fina_indicator (the definitions build them)."""
    return tuple(build_finance_asset(api, report_periods, stock_code) for api in FINANCE_TABLES)


@functools.cache
def _process_finance_assets() -> tuple[dg.AssetsDefinition, ...]:
    return build_finance_assets(report_period_partitions(), stock_code_enum())


# The statement assets as attributes, for tests and tools that import them: built at the
# first ask over this process's report periods and stock list.
__getattr__ = lazy_attributes(__name__, {"FINANCE_ASSETS": _process_finance_assets, **{
    name: functools.partial(lambda i: _process_finance_assets()[i], i) for i, name in enumerate(FINANCE_TABLES)}})
