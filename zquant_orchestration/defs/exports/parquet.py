"""``parquet_export``: the trading-day tables as a Parquet dataset that Arrow, DuckDB, Polars
and Spark read directly, one file per table and month (hive partitioning):

    <exports_root>/parquet/<table>/month=YYYY-MM/data.parquet

A month's file holds every day of that month the warehouse has, sorted by (trade_date,
ts_code); days as date32, numbers as float64, codes as strings, NULL as null. A run over
some trading days rewrites the files of the months those days fall in, from the warehouse,
so a re-landed day is exported again by re-exporting it. Files of other months are left
as they are.

Each file is replaced atomically: written to a hidden temporary file in its folder, synced,
then renamed over the old one, so a reader sees the old month or the new one, never half a
file. Readers skip the temporary files: Arrow's dataset discovery ignores names starting
with a dot, and ``*/*.parquet`` does not match them.
"""

import calendar
import functools
import os
import tempfile
from collections.abc import Iterable
from datetime import date
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from zquant_orchestration.defs.shared.lazy import lazy_attributes
from zquant_orchestration.defs.shared.partitions import trading_day_partitions
from zquant_orchestration.defs.warehouse.resources import WarehouseResource
from zquant_orchestration.lib import dates
from zquant_orchestration.lib.warehouse import Warehouse
from zquant_orchestration.settings import get_settings

EXPORTED_TABLES = ("daily_bars", "adj_factor", "daily_basic", "daily_hfq", "daily_factors")
FILE_NAME = "data.parquet"


def parquet_root() -> Path:
    """Where the dataset goes: ``parquet`` in the export folder (ZQUANT_EXPORT_DIR)."""
    return get_settings().exports_root() / "parquet"


def month_file(root: Path, table: str, month: str) -> Path:
    """The file of ``table`` for ``month`` (YYYY-MM)."""
    return root / table / f"month={month}" / FILE_NAME


def month_span(month: str) -> tuple[date, date]:
    """The first and last calendar day of ``month`` (YYYY-MM)."""
    year, number = int(month[:4]), int(month[5:7])
    return date(year, number, 1), date(year, number, calendar.monthrange(year, number)[1])


def export_months(wh: Warehouse, root: Path, months: Iterable[str],
                  tables: Iterable[str] = EXPORTED_TABLES) -> dict[str, dict]:
    """Rewrite each table's file of each month from the warehouse, a month at a time (memory
    stays at one month of one table). Per table: files written, rows, bytes, the days each
    month holds. A month without rows has no file: one left from before is removed."""
    stats = {}
    for table in tables:
        done = stats[table] = {"files": 0, "rows": 0, "bytes": 0, "days": set()}
        for month in sorted(set(months)):
            rows = wh.read_days_arrow(table, *month_span(month))
            path = month_file(root, table, month)
            if rows.num_rows == 0:
                _remove(path)
                continue
            done["bytes"] += write_atomically(rows, path)
            done["files"] += 1
            done["rows"] += rows.num_rows
            done["days"] |= {dates.iso(d) for d in rows.column("trade_date").unique().to_pylist()}
    return stats


def write_atomically(rows: pa.Table, path: Path) -> int:
    """Write ``rows`` to ``path`` through a synced temporary file in the same folder and a
    rename; the size written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            pq.write_table(rows, out, compression="zstd")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    # The rename itself is durable once the folder's entry is synced.
    _sync_folder(path.parent)
    return path.stat().st_size


def _remove(path: Path) -> None:
    if path.exists():
        path.unlink()
        _sync_folder(path.parent)
        try:
            path.parent.rmdir()
        except OSError:
            pass  # another file is there (a writer's temporary one): the folder stays


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def build_parquet_export(trading_days: dg.TimeWindowPartitionsDefinition) -> dg.AssetsDefinition:
    """The asset over the given trading days (the definitions build it)."""

    @dg.asset(
        group_name="exports",
        kinds={"parquet"},
        partitions_def=trading_days,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[dg.AssetDep(table) for table in EXPORTED_TABLES],
        # Runs that rewrite the same month take turns, so an earlier read never replaces a later one.
        pool="exports_parquet",
        # The latest day once every table has it: eager waits while any of the five lacks the
        # day or is being materialized (daily_factors comes last), then exports once.
        automation_condition=dg.AutomationCondition.eager(),
        description="The trading-day tables as Parquet, one file per table and month "
                    "(<ZQUANT_EXPORT_DIR>/parquet/<table>/month=YYYY-MM/data.parquet, hive partitioning), "
                    "for DuckDB, Arrow and pandas.",
    )
    def parquet_export(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        days = context.partition_keys
        root = parquet_root()
        stats = export_months(warehouse.get(), root, {day[:7] for day in days})
        unlanded = {table: sorted(set(days) - done["days"]) for table, done in stats.items()}
        unlanded = {table: missing for table, missing in unlanded.items() if missing}
        for table, missing in unlanded.items():
            context.log.warning(f"{table} has no rows for {len(missing)} of the run's days ({', '.join(missing[:5])}"
                                f"{', ...' if len(missing) > 5 else ''}): the export holds what has landed")
        return dg.MaterializeResult(metadata={
            "files": sum(done["files"] for done in stats.values()),
            "rows": sum(done["rows"] for done in stats.values()),
            "bytes": sum(done["bytes"] for done in stats.values()),
            "months": sorted({day[:7] for day in days}),
            "path": dg.MetadataValue.path(str(root)),
            **{f"{table}_rows": done["rows"] for table, done in stats.items()},
            "days_not_landed": {table: len(missing) for table, missing in unlanded.items()},
        })

    return parquet_export


@functools.cache
def _process_parquet_export() -> dg.AssetsDefinition:
    return build_parquet_export(trading_day_partitions())


# The asset as an attribute, for tests and tools that import it: built at the first ask
# over this process's trading days.
__getattr__ = lazy_attributes(__name__, {"parquet_export": _process_parquet_export})
