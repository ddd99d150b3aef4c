"""Latency from a schedule tick to the latest trading day's rows committed.

Runs a deployment as production does (`dagster-daemon run` on the shipped dagster.yaml
and workspace.yaml, every sensor at its default), with the evening schedule's cron set to
every minute (ZQUANT_MARKET_CRON). The previous trading day is landed first, so the gap
sensor has nothing to do. Then it waits for the schedule's run of today and polls the
warehouse every 50 ms for today's rows of daily_bars, adj_factor and daily_basic.

    python bench/schedule_latency.py

Today (Asia/Shanghai) must be a trading day: the schedule skips holidays and weekends.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402

SCHEDULE = "market_after_close_schedule"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warehouse", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    print(harness.machine_line(), flush=True)
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()

    with harness.workdir() as work, harness.tushare_server(work, as_of=today.replace("-", "")) as server, \
            harness.warehouse(args.warehouse, work) as url:
        env = harness.dagster_env(work, server, url, ZQUANT_MARKET_CRON="* * * * *", ZQUANT_GAP_LOOKBACK_DAYS="1")
        days = harness.trading_days(env, "1990-01-01", today)
        if not days or days[-1] != today:
            raise SystemExit(f"{today} is not a trading day in Shanghai: the schedule would skip it; "
                             "run this on a trading day")
        previous = days[-2]
        server.warm(list(harness.MARKET_APIS.values()), previous.replace("-", ""), today.replace("-", ""))
        harness.land_reference_data(env)
        harness.materialize(env, "daily_bars,adj_factor,daily_basic,daily_hfq", partition=previous)

        os.environ.update(DAGSTER_HOME=env["DAGSTER_HOME"])
        import dagster as dg

        instance = dg.DagsterInstance.get()
        daemon = subprocess.Popen([str(harness.BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
                                  cwd=harness.ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            run, committed = wait_for_scheduled_run(instance, url, today)
        finally:
            daemon.terminate()
            daemon.wait(timeout=60)
        report(instance, run, committed)


def wait_for_scheduled_run(instance, url: str, day: str, timeout: float = 300):
    import dagster as dg

    deadline = time.time() + timeout
    run = None
    committed: dict[str, float] = {}
    while time.time() < deadline and len(committed) < len(harness.MARKET_APIS):
        if run is None:
            runs = instance.get_runs(dg.RunsFilter(tags={"dagster/schedule_name": SCHEDULE}), limit=1)
            run = runs[0] if runs else None
        if run is not None:
            for table in harness.MARKET_APIS:
                if table not in committed and harness.count_rows(url, table, day):
                    committed[table] = time.time()
        time.sleep(0.05)
    if len(committed) < len(harness.MARKET_APIS):
        raise SystemExit(f"no rows of {day} within {timeout:.0f}s (run: {run.run_id if run else 'none'})")
    return run, committed


def report(instance, run, committed: dict[str, float]) -> None:
    import dagster as dg

    record = instance.get_run_record_by_id(run.run_id)
    created = record.create_timestamp.timestamp()
    tick = created - created % 60  # the scheduler evaluates a tick seconds after its minute starts
    events = instance.all_logs(run.run_id)
    first = {}
    for event in events:
        if event.is_dagster_event:
            key = (event.dagster_event.event_type, event.step_key)
            first.setdefault(key, event.timestamp)
    rows = [["schedule tick (the minute)", 0.0],
            ["run created by the scheduler", created - tick],
            ["run started (RUN_START)", first[(dg.DagsterEventType.RUN_START, None)] - tick]]
    for step in ("stock_basic", *harness.MARKET_APIS):
        if (dg.DagsterEventType.STEP_START, step) in first:
            rows.append([f"step {step} started", first[(dg.DagsterEventType.STEP_START, step)] - tick])
    for table, at in sorted(committed.items(), key=lambda kv: kv[1]):
        rows.append([f"{table} rows of the day committed", at - tick])
    print(harness.table([[name, round(seconds, 2)] for name, seconds in rows], ["event", "seconds after tick"]))
    print(f"\nlatency, tick to the last of the day's rows: {max(committed.values()) - tick:.1f}s (run {run.run_id})")


if __name__ == "__main__":
    main()
