"""Shared helpers of the catalog's tests: build the enabled datasets' assets, land them from a
local server, and compare the warehouse with the server's truth column by column."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from zquant_orchestration.defs.market.assets import build_market_assets
from zquant_orchestration.defs.market.config import market_run_config
from zquant_orchestration.defs.market.reference_assets import build_reference_asset, stock_basic, trade_cal
from zquant_orchestration.defs.shared.partitions import trading_day_partitions
from zquant_orchestration.defs.shared.stock_codes import stock_code_enum
from zquant_orchestration.lib import dates
from zquant_orchestration.lib.datasets import DATASETS
from zquant_orchestration.lib.warehouse import Warehouse, day_columns


def day_assets(*names: str) -> dict[str, dg.AssetsDefinition]:
    """The trading-day assets of ``names`` (the core ones come along), by name."""
    built = build_market_assets(trading_day_partitions(), market_run_config(stock_code_enum()), names)
    return {a.key.to_user_string(): a for a in built}


def land(assets: list, first: str, last: str, resources: dict, instance, raise_on_error: bool = True,
         run_config: dict | None = None):
    tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    return dg.materialize([*assets, trade_cal, stock_basic], selection=assets, resources=resources,
                          instance=instance, tags=tags, raise_on_error=raise_on_error, run_config=run_config)


def land_reference(names: tuple[str, ...], resources: dict, instance):
    assets = [build_reference_asset(DATASETS[n]) for n in names]
    return dg.materialize([trade_cal, stock_basic, *assets], selection=assets, resources=resources, instance=instance)


def table_rows(url: str, table: str) -> pd.DataFrame:
    wh = Warehouse(url)
    frame = wh.read(table)
    wh.engine.dispose()
    return comparable(frame, table)


def truth_of(server, table: str, first: str, last: str, codes: tuple[str, ...] | None = None) -> pd.DataFrame:
    spec = DATASETS[table]
    frame = server.dataset.truth(spec.api, dates.compact(first), dates.compact(last))
    if codes is not None:
        frame = frame[frame[spec.code_param].isin(codes)]
    return comparable(frame, table)


def comparable(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """Rows as plain values: days as YYYYMMDD, numbers as floats, missing as None/NaN, the
    table's columns in order, sorted by the declaration's keys."""
    spec = DATASETS[table]
    columns = [name for name, _ in spec.columns]
    frame = frame.reindex(columns=columns).copy()
    days = day_columns(table)
    for column, kind in spec.columns:
        if column in days:
            frame[column] = frame[column].map(lambda v: None if v is None or v != v else dates.compact(v))
        elif kind in ("float", "int", "number"):
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
        else:
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame.sort_values(list(spec.keys)).reset_index(drop=True)


def assert_equal_rows(got: pd.DataFrame, truth: pd.DataFrame, table: str) -> None:
    assert len(got) == len(truth), f"{table}: {len(got)} rows in the warehouse, {len(truth)} at the source"
    pd.testing.assert_frame_equal(got, truth, check_dtype=False, obj=table)
