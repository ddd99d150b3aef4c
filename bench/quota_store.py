"""What the Tushare quota costs per call: ``acquire()`` + ``done()`` with the quota in this
host's files (the default) against in PostgreSQL (``ZQUANT_QUOTA_URL``), from one process
and from several processes at once on one API, as the client calls them.

The limit is out of reach, so nothing waits: what is measured is the store's own cost.
Each round sends ``--calls`` calls in all (split between the processes) within one window,
so the log holds at most that many calls of the API, as a 500-a-minute account's does.

    python bench/quota_store.py                       # 500 calls a round, 1 and 4 processes, 3 rounds
    python bench/quota_store.py --processes 1,2,8 --rounds 5
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402

WINDOW = 60.0
LIMIT = 10**9


def _caller(where: dict, scope: str, calls: int, ready, out) -> None:
    from zquant_orchestration.lib.tushare.rate_limit import limiter_for

    quota = limiter_for(scope, "daily", LIMIT, WINDOW, **where)
    quota.usage()  # connect (and create the tables) before the clock starts
    ready.wait()
    took = []
    for _ in range(calls):
        began = time.perf_counter()
        _, ticket = quota.acquire()
        quota.done(ticket)
        took.append(time.perf_counter() - began)
    out.put(took)


def measure(where: dict, processes: int, calls: int, round_no: int) -> dict:
    ctx = multiprocessing.get_context("spawn")  # each caller its own process, as each step is
    ready, out = ctx.Barrier(processes + 1), ctx.Queue()
    scope = f"bench-{time.time()}-{round_no}"  # a new API log each round: no calls of the last one
    procs = [ctx.Process(target=_caller, args=(where, scope, calls // processes, ready, out)) for _ in range(processes)]
    for p in procs:
        p.start()
    ready.wait(timeout=600)  # every caller has imported and connected
    began = time.perf_counter()
    took = [t for _ in procs for t in out.get(timeout=600)]
    wall = time.perf_counter() - began
    for p in procs:
        p.join()
        if p.exitcode:
            raise SystemExit(f"a caller failed (exit {p.exitcode})")
    took.sort()
    return {"ms": statistics.median(took) * 1000, "p95": took[int(len(took) * 0.95)] * 1000,
            "p99": took[int(len(took) * 0.99)] * 1000, "per_s": len(took) / wall, "calls": len(took)}


def round_trip_ms(url: str) -> float:
    from sqlalchemy import create_engine, text

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1))
    took = []
    with engine.connect() as conn:
        for _ in range(200):
            began = time.perf_counter()
            conn.execute(text("SELECT 1"))
            took.append(time.perf_counter() - began)
    engine.dispose()
    return statistics.median(took) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=500, help="calls a round, all processes together (default 500)")
    parser.add_argument("--processes", default="1,4", help="process counts to measure, e.g. 1,4 (default)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each (default 3)")
    args = parser.parse_args()
    print(harness.machine_line(), flush=True)
    counts = [int(n) for n in args.processes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as folder, harness.warehouse("postgres", Path(folder)) as url:
        stores = {"files": {"quota_dir": Path(folder) / "quota"}, "postgres": {"quota_url": url}}
        for processes in counts:
            for round_no in range(args.rounds):
                for name, where in stores.items():
                    r = measure(where, processes, args.calls, round_no)
                    rows.append([name, processes, r["calls"], round(r["ms"], 2), round(r["p95"], 2),
                                 round(r["p99"], 2), round(r["per_s"])])
                    print(f"{name}, {processes} process(es), round {round_no + 1}: median {r['ms']:.2f} ms",
                          flush=True)
        print(f"a round trip to this PostgreSQL (SELECT 1): {round_trip_ms(url):.2f} ms median")
    print()
    print(harness.table(sorted(rows, key=lambda row: (row[1], row[0])),
                        ["store", "processes", "calls", "median ms", "p95 ms", "p99 ms", "calls/s (all)"]))


if __name__ == "__main__":
    main()
