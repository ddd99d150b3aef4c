"""``zquant-demo``: the README's first command, on embedded defaults (no token, no database server).

It runs the same Dagster CLI a user would, in order:

    dagster asset materialize --select trade_cal,stock_basic
    dagster asset materialize --select daily_bars,adj_factor,daily_basic --partition-range <a month>
    dagster dev                                  # the UI on http://127.0.0.1:3000

With no TUSHARE_TOKEN the runs read the embedded local Tushare-compatible server; with
no ZQUANT_WAREHOUSE_URL they write SQLite at ./.zquant/warehouse.sqlite; with no
DAGSTER_HOME the Dagster instance lives in ./.dagster_home (using ./dagster.yaml).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

from zquant_orchestration.settings import export, get_settings

MODULE = "zquant_orchestration.definitions"


def _previous_month(today: date) -> str:
    year, month = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
    return f"{year:04d}-{month:02d}"


def _month_range(month: str) -> tuple[str, str]:
    """The first and last trading-day partition keys of a YYYY-MM month."""
    from zquant_orchestration.defs.shared.partitions import trading_day_partitions

    keys = [k for k in trading_day_partitions().get_partition_keys() if k.startswith(month + "-")]
    if not keys:
        raise SystemExit(f"zquant-demo: no trading days in {month!r}; give --month as YYYY-MM within the calendar")
    return keys[0], keys[-1]


def _dagster(*args: str) -> None:
    command = [sys.executable, "-m", "dagster", *args]
    print("+ dagster " + " ".join(args), flush=True)
    if subprocess.call(command) != 0:
        raise SystemExit(f"zquant-demo: `dagster {' '.join(args)}` failed; see the run's log above")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="zquant-demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--month", default=_previous_month(date.today()), help="YYYY-MM (default: last month)")
    parser.add_argument("--port", type=int, default=3000, help="port of the Dagster UI")
    parser.add_argument("--no-ui", action="store_true", help="land the data and stop, without `dagster dev`")
    args = parser.parse_args(argv)

    if not get_settings().dagster_home:
        home = Path(".dagster_home").resolve()
        home.mkdir(exist_ok=True)
        if Path("dagster.yaml").exists() and not (home / "dagster.yaml").exists():
            shutil.copy("dagster.yaml", home / "dagster.yaml")
        export("DAGSTER_HOME", str(home))
    first, last = _month_range(args.month)
    _dagster("asset", "materialize", "-m", MODULE, "--select", "trade_cal,stock_basic")
    _dagster("asset", "materialize", "-m", MODULE, "--select", "daily_bars,adj_factor,daily_basic",
             "--partition-range", f"{first}...{last}")
    print(f"zquant-demo: landed reference data and {first}..{last} in the warehouse", flush=True)
    if args.no_ui:
        return
    workspace = ["-w", "workspace.yaml"] if Path("workspace.yaml").exists() else ["-m", MODULE]
    os.execv(sys.executable, [sys.executable, "-m", "dagster", "dev", *workspace, "-p", str(args.port)])


if __name__ == "__main__":
    main()
