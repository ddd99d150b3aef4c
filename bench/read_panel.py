"""A 10-year daily panel of every stock's forward-adjusted (qfq) close, read through the
research API (``Warehouse.prices``), against the practical floor: the same values read from
a Parquet file with pyarrow.

The warehouse is filled directly with the local server's truth (daily bars and adj_factor,
a month at a time through ``Warehouse.replace_rows``; no Dagster). Each read runs in a new
process, alternating API and floor, so each has its own peak memory and neither warms the
other's imports. Printed per warehouse: seconds (median of the repeats), the ratio to the
floor, and the peak memory above the process's size before the read, against the size of
the frame read (pandas' deep memory usage).

    python bench/read_panel.py                         # SQLite and Postgres, 2015..2024
    python bench/read_panel.py --warehouse postgres --repeat 5
    python bench/read_panel.py --first 2024-01-01      # one year, for a quick look
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warehouse", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--first", default="2015-01-01", help="first day of the panel (default 2015-01-01)")
    parser.add_argument("--last", default="2024-12-31", help="last day of the panel (default 2024-12-31)")
    parser.add_argument("--repeat", type=int, default=3, help="reads of each kind (default 3)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    print(harness.machine_line(), flush=True)
    kinds = ("sqlite", "postgres") if args.warehouse == "both" else (args.warehouse,)
    with harness.workdir(args.keep) as work:
        for kind in kinds:
            with harness.warehouse(kind, work) as url:
                bench(kind, url, work, args)


def bench(kind: str, url: str, work: Path, args) -> None:
    started = time.perf_counter()
    rows = fill(url, args.first, args.last)
    print(f"\n{kind}: {rows:,} bars and as many factors landed in {time.perf_counter() - started:.0f}s", flush=True)
    parquet = work / f"qfq_close_{kind}.parquet"
    written = measure(url, "write-parquet", args, parquet)
    print(f"the floor's file: {parquet.stat().st_size / 2**20:.0f} MB of Parquet, {written['rows']:,} rows, "
          f"written from the API's panel", flush=True)
    runs: dict[str, list[dict]] = {"api": [], "parquet": [], "stored": []}
    for _ in range(args.repeat):
        for what in runs:
            runs[what].append(measure(url, what, args, parquet))
    floor = statistics.median(r["seconds"] for r in runs["parquet"])
    labels = {"api": "Warehouse.prices(adjust='qfq', fields=['close'])",
              "parquet": "pyarrow.parquet.read_table(...).to_pandas() (the floor)",
              "stored": "Warehouse.prices(adjust=None, fields=['close']) (stored, no adjustment)"}
    table = []
    for what, results in runs.items():
        seconds = statistics.median(r["seconds"] for r in results)
        peak = max(r["peak_mb"] for r in results)
        frame = results[0]["frame_mb"]
        table.append([labels[what], f"{results[0]['rows']:,}", f"{seconds:.2f}",
                      " / ".join(f"{r['seconds']:.2f}" for r in results), f"{seconds / floor:.1f}x",
                      round(peak), round(frame), f"{peak / frame:.2f}x"])
    print(harness.table(table, ["read", "rows", "median s", "each s", "vs floor", "peak MB", "frame MB",
                                "peak / frame"]), flush=True)


def fill(url: str, first: str, last: str) -> int:
    """Daily bars and adj_factor of [first, last] from the local server's truth, a month a write."""
    import pandas as pd

    from zquant_orchestration.lib import dates
    from zquant_orchestration.lib.tushare_server import Dataset
    from zquant_orchestration.lib.warehouse import Warehouse

    dataset = Dataset(as_of=dates.compact(last))
    wh = Warehouse(url)
    rows = 0
    for month in pd.period_range(first, last, freq="M"):
        start, end = max(dates.compact(month.start_time), dates.compact(first)), dates.compact(month.end_time)
        for api, table in (("daily", "daily_bars"), ("adj_factor", "adj_factor")):
            frame = dataset.truth(api, start, end)
            if len(frame):
                days = dates.to_dates(sorted(frame.trade_date.unique()))
                landed = wh.replace_rows(table, frame, {"trade_date": days})
                rows += landed if table == "daily_bars" else 0
    if wh.dialect == "postgresql":  # what autovacuum would have done by the time a researcher reads
        with wh.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE daily_bars")
            conn.exec_driver_sql("ANALYZE adj_factor")
    wh.engine.dispose()
    return rows


def measure(url: str, what: str, args, parquet: Path) -> dict:
    """One read in a new process: its seconds, peak memory above its size before, the frame's size."""
    command = [sys.executable, __file__, "--_read", what, url, args.first, args.last, str(parquet)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"the {what} read failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def read_once(what: str, url: str, first: str, last: str, parquet: str) -> None:
    import pyarrow.parquet as pq

    from zquant_orchestration.lib.warehouse import Warehouse

    wh = Warehouse(url)
    wh.ensure_schema()
    before = _reset_peak()
    started = time.perf_counter()
    if what == "parquet":
        frame = pq.read_table(parquet).to_pandas(date_as_object=False, self_destruct=True, split_blocks=True)
    else:
        frame = wh.prices(first, last, adjust=None if what == "stored" else "qfq", fields=["close"])
    seconds = time.perf_counter() - started
    peak = _status_mb("VmHWM") - before
    if what == "write-parquet":
        import pyarrow as pa

        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), parquet)
    print(json.dumps({"seconds": seconds, "peak_mb": peak, "rows": len(frame),
                      "frame_mb": frame.memory_usage(deep=True).sum() / 2**20}))


def _reset_peak() -> float:
    """Start the process's peak resident size (VmHWM) over from its size now, which it returns:
    the imports' own peak is not the read's."""
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    return _status_mb("VmRSS")


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--_read":
        read_once(*sys.argv[2:7])
    else:
        main()
