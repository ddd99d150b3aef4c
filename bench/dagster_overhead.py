"""Dagster's own cost: per run, and per partition of a range run.

Materializes ``daily_basic`` for one trading day and then for a whole year (one run each,
the single-run backfill policy), with no quota. Dagster's cost of a run is the run's time
(RUN_START to RUN_SUCCESS in the event log) minus the time the asset spent in our code
(``land_ms`` + ``check_ms`` of its materialization: fetching, validating, writing,
checking). The difference between the two runs, divided by the partitions added, is the
cost per partition; the one-day run's is the cost per run.

    python bench/dagster_overhead.py [--warehouse sqlite|postgres]
"""

from __future__ import annotations

import argparse
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
    args = parser.parse_args()

    with harness.workdir() as work, harness.tushare_server(work) as server, \
            harness.warehouse(args.warehouse, work) as url:
        env = harness.dagster_env(work, server, url)
        days = harness.trading_days(env, args.first, args.last)
        server.warm([harness.MARKET_APIS[ASSET]], days[0].replace("-", ""), days[-1].replace("-", ""))
        harness.land_reference_data(env)
        rows = []
        # The one-day run is a day outside the range, so the range run starts from nothing.
        for label, kwargs, n in (("one day", {"partition": days[-1]}, 1),
                                 ("range", {"partition_range": (days[0], days[-2])}, len(days) - 1)):
            cli = harness.materialize(env, ASSET, **kwargs)
            run = harness.last_run(env)
            meta = run.steps[ASSET].metadata
            ours = (meta["land_ms"] + meta["check_ms"]) / 1000
            rows.append([label, n, round(cli.wall_seconds, 2), round(run.seconds, 2),
                         round(run.steps[ASSET].seconds, 2), round(ours, 2), round(run.seconds - ours, 2)])
        (_, _, _, _, _, _, one), (_, n, _, _, _, _, many) = rows
        print(harness.table(rows, ["run", "partitions", "CLI s", "run s", "step s", "our code s", "dagster s"]))
        print()
        print(harness.table([
            ["Dagster per run (one-day run)", f"{one * 1000:.0f} ms"],
            ["Dagster per partition (range - one day) / (partitions - 1)", f"{(many - one) / (n - 1) * 1000:.1f} ms"],
        ], ["measure", "value"]))


if __name__ == "__main__":
    main()
