"""History sync of daily_bars + adj_factor + daily_basic over a year, as a user runs it:

    dagster asset materialize --select daily_bars,adj_factor,daily_basic --partition-range FIRST...LAST

against the local Tushare server (the full synthetic market, replies rendered beforehand)
with a per-API quota, into a new SQLite or Postgres warehouse. Prints the wall time
against the quota's floor, rows per second from first request to last commit, where each
step's time went, and the peak memory of every process of the run.

    python bench/sync_history.py --quota 500                  # targets 1 and 4
    python bench/sync_history.py --quota 0 --warehouse sqlite  # target 2 (no quota)
    python bench/sync_history.py --quota 0 --warehouse postgres
    python bench/sync_history.py --quota 60 --quota-store postgres   # the quota in PostgreSQL (ZQUANT_QUOTA_URL)
"""

from __future__ import annotations

import argparse
import collections
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quota", type=int, default=500, help="calls per minute per API, 0 for none (default 500)")
    parser.add_argument("--warehouse", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--first", default="2024-01-01", help="first day of the range (default 2024-01-01)")
    parser.add_argument("--last", default="2024-12-31", help="last day of the range (default 2024-12-31)")
    parser.add_argument("--no-warm", action="store_true",
                        help="let the server render each reply when asked (its CPU then competes with ours)")
    parser.add_argument("--quota-store", choices=("files", "postgres"), default="files",
                        help="where the quota is kept: this host's files (default) or a new PostgreSQL database")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    print(harness.machine_line(), flush=True)

    with harness.workdir(args.keep) as work, \
            harness.tushare_server(work, calls_per_minute=args.quota or None) as server, \
            harness.warehouse(args.warehouse, work) as url, \
            harness.instance_database("sqlite" if args.quota_store == "files" else "postgres", work) as quota_url:
        extra = {"ZQUANT_QUOTA_URL": quota_url} if quota_url else {}
        env = harness.dagster_env(work, server, url, calls_per_minute=args.quota or None, **extra)
        days = harness.trading_days(env, args.first, args.last)
        print(f"{len(days)} trading days {days[0]}..{days[-1]}, quota {args.quota or 'none'}/min per API, "
              f"{args.warehouse} warehouse, quota in {args.quota_store}", flush=True)
        if not args.no_warm:
            started = time.perf_counter()
            rendered = server.warm(list(harness.MARKET_APIS.values()), days[0].replace("-", ""),
                                   days[-1].replace("-", ""))
            print(f"server: {rendered} replies rendered beforehand in {time.perf_counter() - started:.0f}s",
                  flush=True)
        harness.land_reference_data(env)
        before = len(server.requests())
        server_cpu, own_cpu = harness.cpu_seconds(server.process.pid), harness.cpu_seconds(os.getpid())

        cli = harness.materialize(env, ",".join(harness.MARKET_APIS), partition_range=(days[0], days[-1]),
                                  sample_memory=True)
        run = harness.last_run(env)
        requests = server.requests()[before:]
        cli.cpu_seconds["local Tushare server"] = harness.cpu_seconds(server.process.pid) - server_cpu
        cli.cpu_seconds["this script (its sampling)"] = harness.cpu_seconds(os.getpid()) - own_cpu
        report(args, days, cli, run, requests, url)


def report(args, days, cli: harness.CliResult, run: harness.RunReport, requests: list[dict], url: str) -> None:
    calls = collections.Counter(r["api"] for r in requests)
    rows_served = collections.Counter()
    for r in requests:
        rows_served[r["api"]] += r.get("rows") or 0
    first_request = {api: min(r["t"] for r in requests if r["api"] == api) for api in calls}

    print(f"\nrun {run.run_id}: {run.status}, {run.seconds:.1f}s from RUN_START to its end; "
          f"the CLI took {cli.wall_seconds:.1f}s in all (process start and imports included)\n")
    rows, total_rows, windows = [], 0, []
    for asset, api in harness.MARKET_APIS.items():
        meta = run.steps[asset].metadata
        landed = harness.count_rows(url, asset)
        total_rows += landed
        land_s = meta["land_ms"] / 1000
        windows.append((first_request[api], first_request[api] + land_s))
        rows.append([asset, calls[api], landed, rows_served[api], round(run.steps[asset].seconds, 1),
                     round(land_s, 1), round(meta["fetch_ms"] / 1000, 1), round(meta["write_ms"] / 1000, 1),
                     round(meta["check_ms"] / 1000, 1), round(landed / land_s)])
        if landed != rows_served[api]:
            print(f"!! {asset}: {landed} rows in the warehouse, {rows_served[api]} served")
    print(harness.table(rows, ["asset", "calls", "rows", "rows served", "step s", "land s", "fetch s", "write s",
                               "check s", "rows/s"]))

    busiest = max(calls.values())
    window = max(end for _, end in windows) - min(start for start, _ in windows)
    print()
    summary = [["rows/s, first request to last commit (all three)", round(total_rows / window)]]
    if args.quota:
        floor = busiest / args.quota * 60
        summary = [
            ["floor: busiest API's calls / quota", f"{busiest} / {args.quota} per min = {floor:.1f}s"],
            # The quota is a sliding minute (as Tushare counts), not a steady rate: the first
            # `quota` calls may go at once, so the floor above binds only when the calls
            # exceed the quota; this is when the quota lets the last call go at the earliest.
            ["earliest last call the quota allows", f"{(math.ceil(busiest / args.quota) - 1) * 60:.0f}s"],
            ["run (RUN_START to end)", f"{run.seconds:.1f}s = {run.seconds / floor:.2f}x floor"],
            ["first request to last commit", f"{window:.1f}s = {window / floor:.2f}x floor"],
            ["dagster CLI, start to exit", f"{cli.wall_seconds:.1f}s = {cli.wall_seconds / floor:.2f}x floor"],
        ] + summary
    print(harness.table(summary, ["measure", "value"]))
    print()
    memory = sorted(cli.peak_rss_mb.items(), key=lambda kv: -kv[1])
    print(harness.table([[label, round(mb)] for label, mb in memory]
                        + [["all processes together, at their peak", round(cli.peak_total_rss_mb)]],
                        ["process", "peak RSS MB"]))
    print()
    cpu = sorted(cli.cpu_seconds.items(), key=lambda kv: -kv[1])
    print(harness.table([[label, round(seconds, 1)] for label, seconds in cpu]
                        + [["all together", round(sum(cli.cpu_seconds.values()), 1)]],
                        ["process (all of its kind)", "CPU s"]))


if __name__ == "__main__":
    main()
