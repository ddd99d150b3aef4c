"""The Parquet export read back by DuckDB and pyarrow equals the warehouse, table by table, and
re-exporting a re-landed day rewrites only its month's files.

The market is a slice of the local server's (every 25th stock and the ten real ones): the
export's claims do not depend on how many stocks there are, and the landing stays short."""

from __future__ import annotations

from datetime import date

import dagster as dg
import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from zquant_orchestration.defs.derived.assets import daily_factors, daily_hfq
from zquant_orchestration.defs.exports.parquet import EXPORTED_TABLES, export_months, parquet_export
from zquant_orchestration.defs.shared.partitions import trading_days
from zquant_orchestration.lib import dates
from zquant_orchestration.lib.warehouse import Warehouse

from .dialects import warehouse_urls
from .market_helpers import MARKET_ASSETS, ChangedReplies, materialize_range, materialize_reference, resources_for

# Seven trading days over two months; daily_factors reads the 60 trading days before them, so
# the market lands from there (which puts lookback days into March's files too).
FIRST, LAST = "2024-03-26", "2024-04-03"
MONTHS = ("2024-03", "2024-04")
MARKET_APIS = ("daily", "adj_factor", "daily_basic")


def sliced(dataset, change=None):
    """A server answering the market APIs for a slice of the stocks; ``change`` then alters the rows."""
    codes = sorted(set(dataset.truth("daily", "20240102", "20240102").ts_code))[::25]
    codes = set(codes) | {"000001.SZ", "000333.SZ", "000858.SZ", "002594.SZ", "600036.SH", "600276.SH",
                          "600519.SH", "600887.SH", "601166.SH", "601318.SH"}

    def reply(api_name, params, rows):
        if api_name in MARKET_APIS:
            rows = rows[rows.ts_code.isin(codes)]
        return change(api_name, params, rows) if change else rows
    return ChangedReplies(reply, dataset=dataset)


def _range(first: str, last: str) -> dict:
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}


def export(resources, instance, first: str, last: str):
    return dg.materialize([parquet_export], resources=resources, instance=instance, tags=_range(first, last))


def warehouse_months(url: str, table: str) -> pd.DataFrame:
    """The warehouse's rows of the exported months, as the files should hold them."""
    wh = Warehouse(url)
    frame = wh.read(table)
    wh.engine.dispose()
    frame = frame[frame.trade_date.map(lambda d: d.isoformat()[:7] in MONTHS)]
    return comparable(frame)


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.drop(columns=[c for c in ("month",) if c in frame.columns])
    frame["trade_date"] = frame.trade_date.map(lambda d: pd.Timestamp(d).date())
    for column in frame.columns:
        if column not in ("ts_code", "trade_date"):
            frame[column] = frame[column].astype("float64")
    frame["ts_code"] = frame.ts_code.astype(object)
    return frame.sort_values(["trade_date", "ts_code"]).reset_index(drop=True)


@pytest.mark.slow  # lands 67 trading days and derives two tables from them
def test_duckdb_and_pyarrow_read_back_the_warehouse(tmp_path, dataset, monkeypatch):
    monkeypatch.setenv("ZQUANT_EXPORT_DIR", str(tmp_path / "exports"))
    url = f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
    days = trading_days.get_partition_keys()
    lookback = days[days.index(FIRST) - 60]
    with sliced(dataset) as server, dg.instance_for_test() as instance:
        resources = resources_for(server, url)
        materialize_reference(resources, instance)
        assert materialize_range(MARKET_ASSETS + [daily_hfq], lookback, LAST, resources, instance).success
        assert dg.materialize([daily_factors], resources=resources, instance=instance,
                              tags=_range(FIRST, LAST)).success
        result = export(resources, instance, FIRST, LAST)
    root = tmp_path / "exports" / "parquet"

    # One file per table and month, where the layout says.
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == [f"{table}/month={month}/data.parquet" for table in sorted(EXPORTED_TABLES) for month in MONTHS]
    metadata = result.asset_materializations_for_node("parquet_export")[0].metadata
    assert metadata["files"].value == 10
    assert metadata["bytes"].value == sum((root / f).stat().st_size for f in files)

    total = 0
    for table in EXPORTED_TABLES:
        expected = warehouse_months(url, table)
        assert len(expected) > 1000, table
        total += len(expected)
        # DuckDB over the glob, the month from the folder names.
        by_duckdb = duckdb.read_parquet(f"{root}/{table}/*/*.parquet", hive_partitioning=True).df()
        assert sorted(by_duckdb.month.unique()) == list(MONTHS)
        pd.testing.assert_frame_equal(comparable(by_duckdb), expected)
        # pyarrow's dataset API over the table's folder.
        dataset_ = ds.dataset(root / table, format="parquet", partitioning="hive")
        by_arrow = dataset_.to_table()
        pd.testing.assert_frame_equal(comparable(by_arrow.to_pandas()), expected)
        # Types as declared: days as date32, codes as strings, every number a double.
        for field in pq.read_schema(root / table / "month=2024-04" / "data.parquet"):
            want = {"trade_date": pa.date32(), "ts_code": pa.string()}.get(field.name, pa.float64())
            assert field.type == want, (table, field)
        # Each file sorted by (trade_date, ts_code).
        for month in MONTHS:
            keys = pq.read_table(root / table / f"month={month}" / "data.parquet",
                                 columns=["trade_date", "ts_code"]).to_pandas()
            assert list(keys.itertuples(index=False)) == sorted(keys.itertuples(index=False)), (table, month)
    # March holds the lookback days before the run's first day too: every landed day of the month.
    march = duckdb.sql(f"SELECT min(trade_date) FROM read_parquet('{root}/daily_bars/month=2024-03/*.parquet')")
    assert march.fetchall()[0][0].isoformat() == "2024-03-01"
    assert metadata["rows"].value == total


@pytest.mark.slow  # two landings from the local server and two exports
def test_a_relanded_day_rewrites_only_its_month(tmp_path, dataset, monkeypatch):
    monkeypatch.setenv("ZQUANT_EXPORT_DIR", str(tmp_path / "exports"))
    url = f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
    first, last, changed_day = "2024-03-27", "2024-04-03", "2024-04-02"
    with dg.instance_for_test() as instance:
        with sliced(dataset) as server:
            resources = resources_for(server, url)
            materialize_reference(resources, instance)
            assert materialize_range(MARKET_ASSETS, first, last, resources, instance).success
            export(resources, instance, first, last)
        root = tmp_path / "exports" / "parquet"
        march, april = (root / "daily_bars" / f"month={m}" / "data.parquet" for m in MONTHS)
        before = {path: (path.read_bytes(), path.stat().st_ino) for path in root.rglob("*.parquet")}
        old_april = pq.read_table(april).to_pandas()

        # Tushare's reply for the day now differs: every close one yuan higher.
        def higher(api_name, params, rows):
            if api_name == "daily" and params.get("trade_date") == changed_day.replace("-", ""):
                rows = rows.assign(close=rows.close.astype(float) + 1.0)
            return rows
        with sliced(dataset, higher) as server:
            resources = resources_for(server, url)
            assert materialize_range([MARKET_ASSETS[0]], changed_day, changed_day, resources, instance,
                                     run_config={"ops": {"daily_bars": {"config": {"force_refresh": True}}}}).success
            export(resources, instance, changed_day, changed_day)

    # Every March file is the same file, untouched.
    for path, (content, inode) in before.items():
        if "month=2024-03" in str(path):
            assert (path.read_bytes(), path.stat().st_ino) == (content, inode), path
    assert march.read_bytes() == before[march][0]
    # April's daily_bars differs on the re-landed day only, as the warehouse does now.
    new_april = pq.read_table(april).to_pandas()
    assert april.read_bytes() != before[april][0]
    on_day = new_april.trade_date.map(lambda d: d.isoformat()) == changed_day
    assert on_day.sum() > 100
    pd.testing.assert_series_equal(new_april.close[on_day], old_april.close[on_day] + 1.0)
    pd.testing.assert_frame_equal(new_april[~on_day], old_april[~on_day])
    wh = Warehouse(url)
    landed = wh.read_days("daily_bars", date(2024, 4, 1), date(2024, 4, 30))
    wh.engine.dispose()
    pd.testing.assert_frame_equal(comparable(new_april), comparable(landed))
    # No temporary file is left behind, and readers see only data.parquet files.
    assert sorted(p.name for p in root.rglob("*") if p.is_file()) == ["data.parquet"] * 6


@pytest.mark.parametrize("make_url", warehouse_urls())
def test_a_month_the_warehouse_no_longer_holds_loses_its_file(tmp_path, dataset, make_url):
    """A day removed from the warehouse leaves the export on re-export; a month left empty has
    no file at all, rather than an old one a reader would still find."""
    wh = Warehouse(make_url(tmp_path))
    bars = dataset.truth("daily", "20240329", "20240401")
    bars = bars[bars.ts_code.isin(["000001.SZ", "600519.SH"])]
    for day, rows in bars.groupby("trade_date"):
        wh.replace_rows("daily_bars", rows, {"trade_date": [dates.iso(day)]})
    root = tmp_path / "parquet"
    stats = export_months(wh, root, MONTHS, tables=["daily_bars"])
    assert (stats["daily_bars"]["files"], stats["daily_bars"]["rows"]) == (2, 4)
    assert stats["daily_bars"]["days"] == {"2024-03-29", "2024-04-01"}

    wh.replace_rows("daily_bars", bars.iloc[0:0], {"trade_date": ["2024-04-01"]})
    stats = export_months(wh, root, ["2024-04"], tables=["daily_bars"])
    wh.engine.dispose()
    assert stats["daily_bars"]["files"] == 0
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == [
        "daily_bars", "daily_bars/month=2024-03", "daily_bars/month=2024-03/data.parquet"]
    read = duckdb.read_parquet(f"{root}/daily_bars/*/*.parquet", hive_partitioning=True).df()
    assert (sorted(read.ts_code), set(read.month)) == (["000001.SZ", "600519.SH"], {"2024-03"})
