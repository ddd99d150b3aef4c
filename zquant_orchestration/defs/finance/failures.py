"""Stocks that failed inside a run, kept in Dagster's event log (not in a table of ours).

After each run a finance asset records, per report period it touched, an
``AssetObservation`` whose metadata holds every stock still failing there: its error and
how many runs have tried it. The newest observation of a partition is its current state;
a stock leaves it only when a later run lands it. The sensor retries the stocks below the
attempt limit; the rest stay visible: the run fails, the ``no_failed_stocks`` check fails
and the observation shows each stock's error in the UI.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import dagster as dg

FAILED_STOCKS = "failed_stocks"


@dataclass(frozen=True)
class FailedStock:
    error: str
    attempts: int


FailureRecord = dict[str, FailedStock]  # ts_code -> its failure, for one (asset, period)


def latest_records(instance: dg.DagsterInstance, asset_key: dg.AssetKey,
                   partitions: Iterable[str] | None = None, scan: int = 2000) -> dict[str, FailureRecord]:
    """period -> the newest failure record of that partition (periods never recorded are absent)."""
    records = instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=list(partitions) if partitions else None),
        limit=scan, ascending=False,
    ).records
    latest: dict[str, FailureRecord] = {}
    for record in records:
        observation = record.asset_observation
        if observation is None or observation.partition in latest or FAILED_STOCKS not in observation.metadata:
            continue
        raw = observation.metadata[FAILED_STOCKS].value or {}
        latest[observation.partition] = {code: FailedStock(v["error"], int(v["attempts"])) for code, v in raw.items()}
    return latest


def next_record(previous: FailureRecord, landed: Iterable[str], failed: Mapping[str, str],
                wanted: set[str] | None = None) -> FailureRecord:
    """The record after a run: landed stocks leave it, failed ones enter or count one more
    attempt. A run over the whole universe (``wanted``) also forgets stocks no longer in it."""
    landed = set(landed)
    record = {code: f for code, f in previous.items()
              if code not in landed and (wanted is None or code in wanted)}
    for code, error in failed.items():
        record[code] = FailedStock(error, previous[code].attempts + 1 if code in previous else 1)
    return record


def observation(asset_key: dg.AssetKey, period: str, record: FailureRecord) -> dg.AssetObservation:
    rows = [dg.TableRecord({"ts_code": code, "attempts": f.attempts, "error": f.error})
            for code, f in sorted(record.items())]
    return dg.AssetObservation(asset_key=asset_key, partition=period, metadata={
        FAILED_STOCKS: dg.MetadataValue.json({c: {"error": f.error, "attempts": f.attempts}
                                              for c, f in record.items()}),
        "failed_stock_count": len(record),
        "failed_stock_table": dg.MetadataValue.table(rows, schema=FAILED_SCHEMA),
    })


FAILED_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("ts_code", "string"), dg.TableColumn("attempts", "int"), dg.TableColumn("error", "string")])
