"""Shared helpers: run the market assets against a local server and compare with its truth."""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg
import pandas as pd

from zquant_orchestration.defs.market.assets import adj_factor, daily_bars, daily_basic
from zquant_orchestration.defs.market.checks import adj_factor_covers_daily_bars, daily_bars_match_listed_universe
from zquant_orchestration.defs.market.reference_assets import stock_basic, trade_cal
from zquant_orchestration.defs.tushare.resources import TushareResource
from zquant_orchestration.defs.warehouse.resources import WarehouseResource
from zquant_orchestration.lib.tushare_server import LOCAL_TOKEN, LocalTushareServer
from zquant_orchestration.lib.warehouse import Warehouse

MARKET_ASSETS = [daily_bars, adj_factor, daily_basic]
API_OF_TABLE = {"daily_bars": "daily", "adj_factor": "adj_factor", "daily_basic": "daily_basic"}

# (api, params, the server's rows for the call) -> the rows to serve instead
ReplyChange = Callable[[str, dict, pd.DataFrame], pd.DataFrame]


class ChangedReplies(LocalTushareServer):
    """The local server with the rows of each call passed through ``change`` before they are
    paged and sent: a short or empty reply, as the live service can send one, for the calls
    ``change`` picks. Everything else (token, quota, paging, faults) is the server's own."""

    def __init__(self, change: ReplyChange, **options):
        super().__init__(**options)
        self.dataset = _ChangedDataset(self.dataset, change)


class _ChangedDataset:
    def __init__(self, dataset, change: ReplyChange):
        self._dataset, self._change = dataset, change

    def query(self, api_name: str, params: dict) -> pd.DataFrame:
        return self._change(api_name, params, self._dataset.query(api_name, params).copy())

    def __getattr__(self, name: str):
        return getattr(self._dataset, name)


def without_column(api: str, column: str) -> ReplyChange:
    """Every reply of ``api`` lacks ``column``."""
    return lambda api_name, params, rows: rows.drop(columns=[column]) if api_name == api else rows


def emptied(api: str, column: str) -> ReplyChange:
    """Every reply of ``api`` has ``column`` empty (null) in its first row."""
    def change(api_name, params, rows):
        if api_name == api and len(rows):
            rows.iloc[0, rows.columns.get_loc(column)] = None
        return rows
    return change


def rows_where(api: str, keep: Callable[[dict, pd.DataFrame], pd.Series]) -> ReplyChange:
    """Replies of ``api`` keep only the rows for which ``keep(params, rows)`` holds."""
    return lambda api_name, params, rows: rows[keep(params, rows)] if api_name == api else rows


def resources_for(server, warehouse_url: str) -> dict:
    return {
        "tushare": TushareResource(token=LOCAL_TOKEN, http_url=server.url, timeout_seconds=2.0, backoff_seconds=0.01,
                                   backoff_max_seconds=0.05, max_attempts=10),
        "warehouse": WarehouseResource(url=warehouse_url),
    }


def step_retries_at_once(monkeypatch, asset) -> None:
    """The asset's step retries as often as its policy says, without the wait between tries
    (30 s and more). A run in process ignores executor config, so the policy itself is swapped."""
    monkeypatch.setattr(asset.op, "_retry_policy", dg.RetryPolicy(max_retries=asset.op.retry_policy.max_retries))


def materialize_range(assets, first: str, last: str, resources: dict, instance, raise_on_error=True,
                      run_config: dict | None = None):
    tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    checks = [daily_bars_match_listed_universe] if daily_bars in assets else []
    checks += [adj_factor_covers_daily_bars] if adj_factor in assets and daily_bars in assets else []
    return dg.materialize(assets + checks + [trade_cal, stock_basic], selection=assets + checks, resources=resources,
                          instance=instance, tags=tags, raise_on_error=raise_on_error, run_config=run_config)


def materialize_reference(resources: dict, instance):
    return dg.materialize([trade_cal, stock_basic], resources=resources, instance=instance)


def warehouse_rows(url: str, table: str) -> pd.DataFrame:
    """A table as Tushare would return it: YYYYMMDD dates, NULL as NaN, sorted by key."""
    wh = Warehouse(url)
    frame = wh.read(table)
    wh.engine.dispose()
    return normalized(frame)


def truth_rows(server, table: str, first: str, last: str) -> pd.DataFrame:
    return normalized(server.truth(API_OF_TABLE[table], first.replace("-", ""), last.replace("-", "")))


def normalized(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    for column in frame.columns:
        if column in ("trade_date", "cal_date", "list_date", "delist_date", "pretrade_date"):
            frame[column] = frame[column].map(lambda v: None if v is None or v != v else str(v).replace("-", ""))
        elif column not in ("ts_code", "exchange", "symbol") and frame[column].dtype == object:
            converted = pd.to_numeric(frame[column], errors="coerce")
            if converted.notna().sum() == frame[column].notna().sum():
                frame[column] = converted
        if frame[column].dtype in (object, "str", "string"):
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    keys = [c for c in ("ts_code", "trade_date") if c in frame.columns]
    return frame.sort_values(keys).reset_index(drop=True)


def assert_same(got: pd.DataFrame, truth: pd.DataFrame) -> None:
    truth = truth[list(got.columns)].reset_index(drop=True)
    assert len(got) == len(truth), f"{len(got)} rows in the warehouse, {len(truth)} at the source"
    pd.testing.assert_frame_equal(got, truth, check_dtype=False)
