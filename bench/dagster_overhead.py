"""Dagster's own cost: per run, and per partition of a range run.

Materializes ``daily_basic`` for one trading day (three times, three days) and then for
the rest of a year in one run (the single-run backfill policy), with no quota. Dagster's
cost of a run is the run's time (RUN_START to RUN_SUCCESS in the event log) minus the time
the asset spent in our code (``land_ms`` + ``check_ms`` of its materialization: fetching,
validating, writing, checking). The range run's cost minus the median one-day run's,
divided by the partitions added, is the cost per partition; the median one-day run's is
the cost per run (one run's figure moves by a second on these machines).

    python bench/dagster_overhead.py [--warehouse sqlite|postgres] [--instance sqlite|postgres]
                                     [--event-batch-size N]

``--instance postgres`` puts the Dagster instance on Postgres (deploy/postgres/dagster.yaml,
as in production); ``--event-batch-size`` sets DAGSTER_EVENT_BATCH_SIZE, with which
Dagster writes a range run's materializations in batches (on Postgres: one INSERT each).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402

ASSET = "daily_basic"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warehouse", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--first", default="2024-01-01")
    parser.add_argument("--last", default="2024-12-31")
    parser.add_argument("--instance", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--event-batch-size", type=int, default=0)
    args = parser.parse_args()
    print(harness.machine_line(), flush=True)

    extra = {"DAGSTER_EVENT_BATCH_SIZE": str(args.event_batch_size)} if args.event_batch_size else {}
    with harness.workdir() as work, harness.tushare_server(work) as server, \
            harness.warehouse(args.warehouse, work) as url, harness.instance_database(args.instance, work) as db:
        env = harness.dagster_env(work, server, url, instance_url=db, **extra)
        days = harness.trading_days(env, args.first, args.last)
        server.warm([harness.MARKET_APIS[ASSET]], days[0].replace("-", ""), days[-1].replace("-", ""))
        harness.land_reference_data(env)
        rows = []
        # The one-day runs are days outside the range, so the range run starts from nothing.
        runs = [("one day", {"partition": day}, 1) for day in days[-3:]]
        runs.append(("range", {"partition_range": (days[0], days[-4])}, len(days) - 3))
        for label, kwargs, n in runs:
            cli = harness.materialize(env, ASSET, **kwargs)
            run = harness.last_run(env)
            meta = run.steps[ASSET].metadata
            ours = (meta["land_ms"] + meta["check_ms"]) / 1000
            rows.append([label, n, round(cli.wall_seconds, 2), round(run.seconds, 2),
                         round(run.steps[ASSET].seconds, 2), round(ours, 2), round(run.seconds - ours, 2)])
        one = statistics.median(row[-1] for row in rows[:3])
        n, many = rows[-1][1], rows[-1][-1]
        print(f"instance: {args.instance}, warehouse: {args.warehouse}, "
              f"DAGSTER_EVENT_BATCH_SIZE={args.event_batch_size or 'unset'}")
        print(harness.table(rows, ["run", "partitions", "CLI s", "run s", "step s", "our code s", "dagster s"]))
        print()
        print(harness.table([
            ["Dagster per run (median one-day run)", f"{one * 1000:.0f} ms"],
            ["Dagster per partition (range - one day) / (partitions - 1)", f"{(many - one) / (n - 1) * 1000:.1f} ms"],
        ], ["measure", "value"]))


if __name__ == "__main__":
    main()
