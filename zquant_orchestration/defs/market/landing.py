"""How a trading-day dataset's days land: the whole market one call per day, fetched ahead
while earlier days are written, each day whole or not at all; a few stocks over days already
landed; or each configured code (an index) over the run's days."""

import time

import dagster as dg
import numpy as np
import pandas as pd

from zquant_orchestration.defs.tushare.policy import failing_fast_on_permanent_errors
from zquant_orchestration.defs.tushare.resources import TushareResource
from zquant_orchestration.lib import dates
from zquant_orchestration.lib.datasets import DatasetSpec
from zquant_orchestration.lib.prefetch import Prefetcher
from zquant_orchestration.lib.tushare import TushareUnavailableError
from zquant_orchestration.lib.warehouse import Warehouse

from .replies import validate_code, validate_day

# While one batch of days is written the next days are fetched (lib/prefetch.py). A batch
# is every day fetched meanwhile, up to about this many rows (some 20 full-market days):
# under a quota days arrive one by one and each is written at once; when the warehouse is
# the slow side, days pile up and land together, in ONE transaction. Each day still lands
# whole or not at all, and the per-stock primary-key index is rewritten once per batch
# instead of once per day, which is what makes SQLite writes fast (docs/benchmarks.md).
# Days fetched ahead are held as frames until written, so how far ahead a step fetches
# bounds its memory: far enough that the fetch is rarely the slow side, near enough to
# keep a step under its memory line.
WRITE_BATCH_ROWS = 100_000
FETCH_AHEAD_DAYS = 18


def land_days(context, spec: DatasetSpec, tushare: TushareResource, wh: Warehouse, days: list[str],
              force_refresh: bool) -> dict:
    """The whole market, one call per day. A day's rows are all of its reply or none, so a
    day that holds rows has landed whole: unless forced, it is skipped, and a re-run of a
    range picks up where a failed or killed one stopped. A day Tushare has no data for yet
    (before ``available_from``) lands empty without a call."""
    column = spec.date_column
    held = set() if force_refresh else wh.days_with_rows(spec.name, *dates.span(days), column=column)
    before = {d for d in days if spec.available_from and dates.to_date(d) < spec.available_from}
    param = "ex_date" if column == "ex_date" else "trade_date"

    def fetch(day: str) -> pd.DataFrame:
        wire_day = dates.compact(day)
        with failing_fast_on_permanent_errors(spec):
            frame = tushare.query(spec.api, {param: wire_day}, require_rows=not spec.may_be_empty,
                                  expect_rows=True)
        return validate_day(spec, frame, wire_day)

    rows = fetched = 0
    stocks: set[str] = set()
    write_seconds = 0.0
    # A failed fetch surfaces here only after every day fetched before it was written, so
    # the retry starts after them.
    with Prefetcher(fetch, [d for d in days if d not in held and d not in before], ahead=FETCH_AHEAD_DAYS,
                    size=len, name=f"fetch-{spec.api}") as prefetcher:
        for batch in prefetcher.batches(max_size=WRITE_BATCH_ROWS):
            started = time.perf_counter()
            batch_days = [d for d, _ in batch]
            if "ts_code" in spec.keys:
                # As a numpy array: set.update over an Arrow-backed column (or its unique())
                # goes element by element through pandas, many times slower (docs/benchmarks.md).
                stocks.update(*(np.asarray(f.ts_code.unique()) for _, f in batch))
            # The batch is handed over as one frame that nothing here keeps: the warehouse
            # holds a single copy of it while converting, which bounds a step's peak memory.
            written = wh.replace_rows(spec.name, _one_frame(batch), {column: batch_days})
            rows += written
            write_seconds += time.perf_counter() - started
            fetched += len(batch_days)
            context.log.debug(f"{spec.name}: {written} rows of {len(batch_days)} days written "
                              f"({batch_days[0]}..{batch_days[-1]})")
    if held & set(days):
        context.log.info(f"{spec.name}: skipped {len(held & set(days))} days already landed "
                         "(force_refresh: true refetches them)")
    landed = {"rows": rows, "stocks": len(stocks), "days_fetched": fetched,
              "days_already_landed": len(held & set(days)), "write_ms": round(write_seconds * 1000, 1)}
    if before:
        landed["days_before_available_from"] = len(before)
    return landed


def _one_frame(batch: list[tuple[str, pd.DataFrame]]) -> pd.DataFrame:
    """The batch's day frames as one; the days' own frames are let go."""
    frame = pd.concat([f for _, f in batch], ignore_index=True)
    batch.clear()
    return frame


def refresh_stocks(context, spec: DatasetSpec, tushare: TushareResource, wh: Warehouse, days: list[str],
                   stocks: list[str]) -> dict:
    """Some stocks over landed days: one call per stock for the whole range, then each day's
    rows of those stocks replaced in one transaction; other stocks' rows are not touched.
    Every reply is fetched and checked before anything is written."""
    first, last = dates.span(days)
    held = wh.days_with_rows(spec.name, first, last, column=spec.date_column)
    missing = [d for d in days if d not in held]
    if missing:
        raise dg.Failure(description=(
            f"stocks: {spec.name} has not landed {len(missing)} of the run's days ({', '.join(missing[:5])}"
            f"{', ...' if len(missing) > 5 else ''}) and a stock subset only repairs landed days; "
            "materialize those days without `stocks` first"), allow_retries=False)
    frames = []
    for code in stocks:
        params = {"ts_code": code, "start_date": dates.compact(first), "end_date": dates.compact(last)}
        with failing_fast_on_permanent_errors(spec):
            frame = tushare.query(spec.api, params)
        frame = validate_code(spec, frame, "ts_code", code, days)
        if frame.empty and wh.days_with_rows(spec.name, first, last, ts_code=code, column=spec.date_column):
            # An empty answer would delete the stock's rows: believe it only when the
            # warehouse agrees there is nothing, or a glitch would lose a history.
            raise TushareUnavailableError(
                f"{spec.api}({code}, {days[0]}..{days[-1]}) returned no rows where the warehouse holds "
                "some; nothing was written, re-run later")
        frames.append(frame)
    fetched = pd.concat(frames, ignore_index=True)
    day_of_row = dates.compact_to_iso(fetched[spec.date_column])
    rows = 0
    for day in days:
        rows += wh.replace_rows(spec.name, fetched[day_of_row == day],
                                {spec.date_column: [day], "ts_code": stocks})
    return {"rows": rows, "stocks": len(stocks), "days_fetched": len(days), "days_already_landed": 0,
            "refreshed_stocks": ", ".join(stocks[:20]) + (" ..." if len(stocks) > 20 else "")}


def land_codes(context, spec: DatasetSpec, tushare: TushareResource, wh: Warehouse, days: list[str],
               codes: tuple[str, ...]) -> dict:
    """Each configured code (an index) over the run's days, one call per code; every reply is
    fetched and checked, then the run's days are replaced for those codes, a year of days per
    transaction. Other codes' rows (a code since dropped from the setting) are kept."""
    code_column = spec.code_param
    days = [d for d in days if not (spec.available_from and dates.to_date(d) < spec.available_from)]
    if not days:
        return {"rows": 0, "codes": len(codes), "days_fetched": 0}
    first, last = dates.span(days)
    frames = []
    for code in codes:
        params = {spec.code_param: code, "start_date": dates.compact(first), "end_date": dates.compact(last)}
        with failing_fast_on_permanent_errors(spec):
            frame = tushare.query(spec.api, params, expect_rows=True)
        frame = validate_code(spec, frame, code_column, code, days)
        if frame.empty and wh.days_with_rows(spec.name, first, last, column=spec.date_column,
                                             **{code_column: code}):
            # An empty answer would delete the code's rows: believe it only when the warehouse
            # agrees there is nothing, or a glitch would lose a history.
            raise TushareUnavailableError(
                f"{spec.api}({code}, {days[0]}..{days[-1]}) returned no rows where the warehouse holds some; "
                "nothing was written, re-run later")
        context.log.debug(f"{spec.name}: {len(frame)} rows of {code}")
        frames.append(frame)
    fetched = pd.concat(frames, ignore_index=True)
    day_of_row = dates.compact_to_iso(fetched[spec.date_column]) if len(fetched) else pd.Series([], dtype=str)
    rows = 0
    for chunk_start in range(0, len(days), DAYS_PER_CODE_WRITE):
        chunk = days[chunk_start:chunk_start + DAYS_PER_CODE_WRITE]
        rows += wh.replace_rows(spec.name, fetched[day_of_row.isin(chunk).to_numpy()],
                                {spec.date_column: chunk, code_column: list(codes)})
    return {"rows": rows, "codes": len(codes), "days_fetched": len(days),
            "days_with_rows": int(day_of_row.nunique())}


# A year of trading days: each transaction stays small however long the range.
DAYS_PER_CODE_WRITE = 250
