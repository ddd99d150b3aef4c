"""``qlib_export``: the warehouse in qlib's binary format under ``$ZQUANT_EXPORT_DIR/qlib``,
one trading-day partition per day, appended as days land (lib/exports/qlib_bin.py has the
format, the fields and why prices are backward-adjusted).

``qlib.init(provider_uri=<that folder>, region="cn")`` opens it. A range run writes its days
in order, a chunk at a time; a day re-landed upstream is exported again in place. A day
after a hole in the export is refused: materialize the missing days first.
"""

import functools

import dagster as dg

from zquant_orchestration.defs.shared.lazy import lazy_attributes
from zquant_orchestration.defs.shared.partitions import trading_day_partitions
from zquant_orchestration.defs.warehouse.resources import WarehouseResource
from zquant_orchestration.lib import dates
from zquant_orchestration.lib.exports.qlib_bin import ExportRefused, QlibBinExport, WriteStats, qlib_fields
from zquant_orchestration.settings import get_settings

# Days per read and write: bounds memory on a ten-year backfill (about 5,500 stocks a day),
# and each feature file is opened once per chunk rather than once per day.
CHUNK_DAYS = 60


def qlib_root():
    return get_settings().exports_root() / "qlib"


def build_qlib_export(trading_days: dg.TimeWindowPartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name="qlib_export",
        group_name="exports",
        kinds={"qlib"},
        partitions_def=trading_days,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=["daily_hfq", "adj_factor", "stock_basic"],
        # One writer of the folder at a time (dagster.yaml gives every pool one slot).
        pool="export_qlib",
        automation_condition=dg.AutomationCondition.eager(),
        description="qlib's binary format (calendars/, instruments/all.txt, features/) of the hfq bars, "
                    "under $ZQUANT_EXPORT_DIR/qlib: qlib.init(provider_uri=..., region='cn').",
    )
    def qlib_export(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        wh = warehouse.get()
        days = sorted(context.partition_keys)
        export = QlibBinExport(qlib_root())
        all_days = trading_days.get_partition_keys()
        try:
            export.plan(days, all_days)
        except ExportRefused as refused:
            raise dg.Failure(description=str(refused), allow_retries=False) from None
        first, last = dates.span(days)
        unlanded = sorted(set(days) - wh.days_with_rows("daily_hfq", first, last))
        if unlanded:
            raise dg.Failure(description=(
                f"daily_hfq has not landed {len(unlanded)} of the run's days ({', '.join(unlanded[:5])}"
                f"{', ...' if len(unlanded) > 5 else ''}): materialize daily_hfq for them first"), allow_retries=False)
        listings = wh.read("stock_basic")[["ts_code", "list_date", "delist_date"]]
        total = WriteStats()
        for start in range(0, len(days), CHUNK_DAYS):
            chunk = days[start:start + CHUNK_DAYS]
            hfq = wh.read_days("daily_hfq", *dates.span(chunk))
            stats = export.write(chunk, qlib_fields(hfq), listings, all_days)
            for name in ("days_written", "days_appended", "bytes_appended", "bytes_overwritten", "files_created",
                         "files_rewritten"):
                setattr(total, name, getattr(total, name) + getattr(stats, name))
            total.instruments = stats.instruments
            context.log.info(f"qlib export: {chunk[0]}..{chunk[-1]} written ({stats.bytes_appended} bytes appended)")
        return dg.MaterializeResult(metadata={
            "path": dg.MetadataValue.path(str(export.root)), "days_written": total.days_written,
            "days_appended": total.days_appended, "instruments": total.instruments,
            "bytes_appended": total.bytes_appended, "bytes_overwritten": total.bytes_overwritten,
            "files_created": total.files_created, "files_rewritten": total.files_rewritten,
            "first_day": days[0], "last_day": days[-1]})

    return qlib_export


@functools.cache
def _process_qlib_export() -> dg.AssetsDefinition:
    return build_qlib_export(trading_day_partitions())


# qlib_export as an attribute, for tests and tools that import it: built at the first
# ask over this process's trading days.
__getattr__ = lazy_attributes(__name__, {"qlib_export": _process_qlib_export})
