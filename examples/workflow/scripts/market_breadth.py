"""Advancers and decliners of one trading day; reports them to Dagster through Pipes."""

import os

from dagster_pipes import open_dagster_pipes
from sqlalchemy import create_engine, text

with open_dagster_pipes() as pipes:
    day = pipes.partition_key
    engine = create_engine(os.environ["ZQUANT_WAREHOUSE_URL"])
    with engine.connect() as conn:
        up, down, total = conn.execute(text(
            "SELECT SUM(CASE WHEN pct_chg > 0 THEN 1 ELSE 0 END), SUM(CASE WHEN pct_chg < 0 THEN 1 ELSE 0 END), "
            "COUNT(*) FROM daily_bars WHERE trade_date = :day"), {"day": day}).one()
    engine.dispose()
    if not total:
        # An exception inside open_dagster_pipes() reaches the run as the step's error.
        raise RuntimeError(f"no daily_bars rows for {day}: materialize daily_bars for it first")
    pipes.log.info(f"{day}: {up} up, {down} down of {total} stocks")
    pipes.report_asset_materialization(metadata={
        "advancing": up, "declining": down, "stocks": total,
        "advance_share": {"raw_value": round(up / total, 4), "type": "float"}})
