"""``finance_disclosure_sensor``: keeps the open report periods complete, calling Tushare
only for what changed.

Each tick, for every period still inside its filing window (deadline plus grace days):
1. one ``disclosure_date(end_date=period)`` call (plus pages) lists the stocks whose report
   is out; those without a row in a statement table are synced, one call each per API;
2. after the deadline, listed stocks still without a row are tried too, once a day;
3. stocks recorded as failed (failures.py) are retried until ``max_stock_attempts``; the
   limit holds for the period where it was reached, not for the stock's other periods.
An incremental run covers the period and ``restatement_lookback_quarters`` before it, so a
stock's call also lands restatements of its recent reports (in ``vip`` mode: every stock's).
Nothing is requested while another finance run is queued or running: one writer at a time.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date

import dagster as dg
import pandas as pd

from zquant_orchestration.defs.shared.lazy import lazy_attributes
from zquant_orchestration.defs.shared.stock_codes import stock_code_enum
from zquant_orchestration.defs.tushare.resources import TushareResource
from zquant_orchestration.defs.warehouse.resources import WarehouseResource
from zquant_orchestration.lib.report_periods import deadline, open_periods, parse_period, period_key, shift_periods
from zquant_orchestration.lib.run_tags import IN_PROGRESS, RANGE_END, RANGE_START
from zquant_orchestration.lib.warehouse import Warehouse
from zquant_orchestration.lib.warehouse.tables import FINANCE_TABLES
from zquant_orchestration.settings import get_settings

from . import failures
from .jobs import finance_job
from .partitions import report_period_partitions
from .resources import FinanceSettings

FINANCE_KEYS = {dg.AssetKey(api) for api in FINANCE_TABLES}


def build_finance_disclosure_sensor() -> dg.SensorDefinition:
    # On by default where a Tushare token is set (production: the warehouse stays complete with
    # nobody watching); off on the embedded server, where a first tick would queue per-stock
    # syncs of every open period for a demo that did not ask for them.
    default = dg.DefaultSensorStatus.RUNNING if get_settings().has_token else dg.DefaultSensorStatus.STOPPED
    return dg.sensor(name="finance_disclosure_sensor", job=finance_job, minimum_interval_seconds=1800,
                     default_status=default, description="Syncs newly disclosed and overdue reports of open "
                                                         "periods and retries failed stocks.")(finance_disclosure)


# The sensor as an attribute, for tests and tools that import it.
__getattr__ = lazy_attributes(__name__, {"finance_disclosure_sensor": build_finance_disclosure_sensor})


def finance_disclosure(context: dg.SensorEvaluationContext, tushare: TushareResource,
                       warehouse: WarehouseResource, finance: FinanceSettings):
    busy = [r.run_id for r in context.instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS))
            if r.job_name == finance_job.name or FINANCE_KEYS & set(r.asset_selection or ())]
    if busy:
        return dg.SkipReason(f"finance run {busy[0]} is queued or running; waiting for it to finish")
    today = finance.current_day()
    cursor = json.loads(context.cursor or "{}")
    records = {api: failures.latest_records(context.instance, dg.AssetKey(api)) for api in FINANCE_TABLES}
    requests = _open_period_requests(context.log, tushare, warehouse.get(), finance, today, cursor, records)
    requests += _retry_requests(finance, today, records)
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor, sort_keys=True))


def _open_period_requests(log, tushare: TushareResource, wh: Warehouse, finance: FinanceSettings, today: date,
                          cursor: dict, records: dict[str, dict[str, failures.FailureRecord]]) -> list[dg.RunRequest]:
    """One run per open period for its disclosed (and, after the deadline, overdue) stocks
    that have no row yet; stocks already failing in that period are left to the retries (or,
    at the attempt limit, left failed there), while a failure of another period holds
    nothing back: each period's attempts are its own. Run config names
    stocks by ``StockCode``, fixed when the code location loaded: a stock listed since waits
    (with a warning each tick) for the next reload, or Dagster would refuse the whole run."""
    known_keys = set(report_period_partitions().get_partition_keys())
    nameable = set(stock_code_enum().__members__)
    stocks = wh.read("stock_basic")
    if finance.universe:
        stocks = stocks[stocks.ts_code.isin(finance.universe)]
    requests = []
    for period in open_periods(today, finance.grace_days):
        key = period_key(period)
        if key not in known_keys:
            continue
        disclosure = tushare.query("disclosure_date", {"end_date": key}, fields="ts_code,end_date,actual_date")
        actual = disclosure.actual_date.astype(str)
        out = disclosure[disclosure.actual_date.notna() & (actual <= period_key(today))]
        wanted = set(out.ts_code) & set(stocks.ts_code)
        if today > deadline(period) and cursor.get("overdue", {}).get(key) != today.isoformat():
            wanted |= _listed_by(stocks, period)
            cursor.setdefault("overdue", {})[key] = today.isoformat()
        work = {}
        for api in FINANCE_TABLES:
            todo = wanted - wh.stocks_with_rows(api, "end_date", period) - set(records[api].get(key, {}))
            if todo:
                work[api] = sorted(todo)
        unnamed = sorted({code for todo in work.values() for code in todo} - nameable)
        if unnamed:
            log.warning(f"{key}: {len(unnamed)} stocks listed since the code location loaded wait for its reload "
                        f"(UI: Deployment, Reload): {', '.join(unnamed[:10])}")
            work = {api: [c for c in todo if c in nameable] for api, todo in work.items()}
            work = {api: todo for api, todo in work.items() if todo}
        if work:
            first = max(shift_periods(period, -finance.restatement_lookback_quarters), parse_period(min(known_keys)))
            requests.append(_request(f"new:{key}:{today}", work, period_key(first), key, "incremental"))
    return requests


def _retry_requests(finance: FinanceSettings, today: date,
                    records: dict[str, dict[str, failures.FailureRecord]]) -> list[dg.RunRequest]:
    """Per statement, one run over the periods where stocks below the attempt limit failed."""
    requests = []
    for api, recs in records.items():
        retry: dict[str, list[str]] = {}
        for key, record in recs.items():
            for code, failed in record.items():
                if failed.attempts < finance.max_stock_attempts:
                    retry.setdefault(code, []).append(key)
        if retry:
            keys = sorted(k for ks in retry.values() for k in ks)
            attempts = {c: max(recs[k][c].attempts for k in ks) for c, ks in retry.items()}
            requests.append(_request(f"retry:{api}:{today}:{_digest(attempts)}", {api: sorted(retry)},
                                     keys[0], keys[-1], "retry"))
    return requests


def _listed_by(stocks: pd.DataFrame, period: date) -> set[str]:
    listed = stocks.list_date.map(lambda d: pd.notna(d) and d <= period)
    return set(stocks[(stocks.list_status == "L") & listed].ts_code)


def _request(prefix: str, work: dict[str, list[str]], first: str, last: str, reason: str) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=f"{prefix}:{_digest(work)}",
        asset_selection=[dg.AssetKey(api) for api in work],
        run_config={"ops": {api: {"config": {"stocks": codes}} for api, codes in work.items()}},
        tags={RANGE_START: first, RANGE_END: last, "zquant/finance": reason,
              "zquant/stocks": str(sum(len(c) for c in work.values()))},
    )


def _digest(value) -> str:
    return hashlib.sha1(json.dumps(value, sort_keys=True).encode()).hexdigest()[:12]


