"""The market tables' checks. Those of the landed rows alone run in the asset's step
(``step_checks``); those that read another table (the stock list, the other market table)
are asset checks of their own, over the days of the run that materialized the asset."""

from datetime import date

import dagster as dg

from zquant_orchestration.defs.shared.partitions import trading_day_partitions
from zquant_orchestration.defs.warehouse.resources import WarehouseResource
from zquant_orchestration.lib.datasets import DATASETS, DatasetSpec
from zquant_orchestration.lib.run_tags import run_day_range
from zquant_orchestration.lib.warehouse import quality


def check_names(spec: DatasetSpec) -> list[str]:
    """The checks a dataset's step runs on the rows it landed."""
    return ["no_duplicate_keys", "ohlc_sane"] if spec.name == "daily_bars" else ["no_duplicate_keys"]


def step_checks(spec: DatasetSpec, wh, start: date, end: date) -> list[dg.AssetCheckResult]:
    results = []
    for name in check_names(spec):
        if name == "no_duplicate_keys":
            dups = quality.duplicate_keys(wh, spec.name, start, end, spec.keys, spec.date_column)
            results.append(dg.AssetCheckResult(check_name=name, passed=dups == 0,
                                               metadata={"duplicate_keys": dups}))
        elif name == "ohlc_sane":
            bad = quality.ohlc_violations(wh, start, end)
            results.append(dg.AssetCheckResult(check_name=name, passed=bad == 0,
                                               metadata={"rows_violating_low_open_close_high": bad}))
    return results


def build_coverage_check(spec: DatasetSpec) -> dg.AssetChecksDefinition:
    """A dataset that has a row for (nearly) every daily bar: the share of the run's bars
    without one, against the declaration's ``covers_daily_bars``. A warning: new listings,
    for one, have no price limit on their first days."""

    @dg.asset_check(asset=spec.name, name="covers_daily_bars", additional_deps=["daily_bars"], description=(
        f"At least {spec.covers_daily_bars:.0%} of the run's daily bars have a {spec.name} row."))
    def covers_daily_bars(context: dg.AssetCheckExecutionContext,
                          warehouse: WarehouseResource) -> dg.AssetCheckResult:
        start, end = _run_days(context)
        missing, total = quality.missing_coverage(warehouse.get(), spec.name, "daily_bars", start, end)
        covered = 1 - missing / total if total else 1.0
        return dg.AssetCheckResult(passed=covered >= spec.covers_daily_bars, severity=dg.AssetCheckSeverity.WARN,
                                   metadata={"from": str(start), "to": str(end), "daily_bars_rows": total,
                                             f"bars_without_{spec.name}": missing, "covered": round(covered, 4)})

    return covers_daily_bars


@dg.asset_check(asset="adj_factor", additional_deps=["daily_bars"], description=(
    "Every daily bar of the run's days has an adjustment factor (adjusted prices need both)."))
def adj_factor_covers_daily_bars(context: dg.AssetCheckExecutionContext,
                                 warehouse: WarehouseResource) -> dg.AssetCheckResult:
    start, end = _run_days(context)
    missing, total = quality.missing_coverage(warehouse.get(), "adj_factor", "daily_bars", start, end)
    return dg.AssetCheckResult(passed=missing == 0, metadata={
        "from": str(start), "to": str(end), "daily_bars_rows": total, "bars_without_adj_factor": missing})


@dg.asset_check(asset="daily_bars", name="rows_match_listed_universe", additional_deps=["stock_basic"],
                description=(
                    "No day holds more bars than stocks listed that day (stock_basic), nor fewer than 80% of them "
                    "(suspended stocks have no bar). A warning: the stock list may lag a new listing."))
def daily_bars_match_listed_universe(context: dg.AssetCheckExecutionContext,
                                     warehouse: WarehouseResource) -> dg.AssetCheckResult:
    start, end = _run_days(context)
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


def _run_days(context: dg.AssetCheckExecutionContext) -> tuple[date, date]:
    return run_day_range(context.run.tags, lambda: trading_day_partitions().get_last_partition_key())


def build_coverage_checks(enabled) -> list[dg.AssetChecksDefinition]:
    """The coverage checks of the enabled datasets that declare one."""
    return [build_coverage_check(DATASETS[n]) for n in enabled if DATASETS[n].covers_daily_bars]
