"""What every benchmark needs: the local Tushare server in its own process, a throwaway
Dagster home and warehouse, the real `dagster` CLI, memory sampling, and the run's events.

The benchmarks drive the product the way a user does (`dagster asset materialize`,
`dagster-daemon run`) and read the results back from the Dagster instance and the
warehouse; nothing here reaches into the product's internals.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MARKET_APIS = {"daily_bars": "daily", "adj_factor": "adj_factor", "daily_basic": "daily_basic"}
POSTGRES_ADMIN_URL = os.environ.get("ZQUANT_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


# --- the machine -----------------------------------------------------------------------------

def machine_line() -> str:
    """What the figures were measured on, and how fast it was at the time.

    Machines of the project's kind differ: the same code measured 33.9 s for a year's
    SQLite sync on one (session 8) and 16.5 s on another (session 9). The calibration is
    the same single-core work on every machine (keyed SQLite inserts, as the warehouse
    does), so figures from two machines can be set side by side."""
    model = "unknown CPU"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (f"machine: {model}, {os.cpu_count()} cores; calibration {calibrate():.2f}s "
            "(one core: 300,000 keyed rows into SQLite, python bench/harness.py)")


def calibrate(rows: int = 300_000) -> float:
    """Seconds for a fixed piece of single-core work like the warehouse's: rows of a text
    key, a date and ten doubles into a table keyed on (code, date), in batches in key order."""
    import sqlite3

    with tempfile.TemporaryDirectory() as folder:
        db = sqlite3.connect(Path(folder) / "calibrate.sqlite")
        db.execute("CREATE TABLE t (code TEXT, day TEXT, " + ", ".join(f"v{i} REAL" for i in range(10))
                   + ", PRIMARY KEY (code, day))")
        codes = [f"{n:06d}.SZ" for n in range(5_000)]
        started = time.perf_counter()
        per_day = len(codes)
        for first in range(0, rows // per_day, 20):  # 20 days a transaction, like a batch of days
            batch = [(code, f"2024-{day:04d}", *(float(i + day) for i in range(10)))
                     for code in codes for day in range(first, first + 20)]
            with db:
                db.executemany("INSERT INTO t VALUES (" + ", ".join("?" * 12) + ")", batch)
        seconds = time.perf_counter() - started
        db.close()
    return seconds


# --- the source ------------------------------------------------------------------------------

@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log_path: Path

    def warm(self, apis: list[str], start_date: str, end_date: str) -> int:
        """Render the replies of those days beforehand, so the server's CPU is not ours (see
        ReplyCache in lib/tushare_server/server.py)."""
        body = json.dumps({"apis": apis, "start_date": start_date, "end_date": end_date}).encode()
        with urllib.request.urlopen(urllib.request.Request(f"{self.url}/_admin/warm", data=body), timeout=600) as r:
            return json.loads(r.read())["rendered"]

    def requests(self) -> list[dict]:
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]


@contextmanager
def tushare_server(workdir: Path, calls_per_minute: int | None = None, as_of: str | None = None,
                   reply_cache_mb: int = 4096) -> Iterator[Server]:
    log_path = workdir / "tushare-requests.jsonl"
    args = [str(BIN / "zquant-tushare-server"), "serve", "--port", "0", "--log", str(log_path),
            "--reply-cache-mb", str(reply_cache_mb)]
    if calls_per_minute:
        args += ["--calls-per-minute", str(calls_per_minute)]
    if as_of:
        args += ["--as-of", as_of]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = process.stdout.readline()
    match = re.search(r"(http://\S+)", line)
    if not match:
        process.kill()
        raise RuntimeError(f"the local Tushare server did not start: {line}{process.stdout.read()}")
    try:
        yield Server(match.group(1), process, log_path)
    finally:
        process.terminate()
        process.wait(timeout=10)


# --- the warehouse ---------------------------------------------------------------------------

@contextmanager
def warehouse(kind: str, workdir: Path) -> Iterator[str]:
    """A new, empty warehouse: a SQLite file, or a Postgres database dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'warehouse.sqlite'}"
        return
    if kind != "postgres":
        raise SystemExit(f"unknown warehouse {kind!r}: sqlite or postgres")
    from sqlalchemy import create_engine, text

    name = f"zquant_bench_{os.getpid()}_{int(time.time())}"
    admin = create_engine(POSTGRES_ADMIN_URL.replace("postgresql://", "postgresql+psycopg2://", 1),
                          isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


@contextmanager
def instance_database(kind: str, work: Path) -> Iterator[str | None]:
    """Where the Dagster instance keeps runs and events: None for the shipped SQLite one,
    else a new Postgres database (dropped afterwards) for deploy/postgres/dagster.yaml."""
    if kind == "sqlite":
        yield None
        return
    with warehouse("postgres", work) as url:
        yield url


def count_rows(url: str, table: str, day: str | None = None) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1))
    try:
        with engine.connect() as conn:
            if day:
                return conn.execute(text(f"SELECT COUNT(*) FROM {table} WHERE trade_date = :d"), {"d": day}).scalar()
            return conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar()
    except Exception:  # noqa: BLE001 - the table does not exist yet
        return 0
    finally:
        engine.dispose()


# --- Dagster -----------------------------------------------------------------------------------

@contextmanager
def workdir(keep: bool = False) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="zquant-bench-"))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


def dagster_env(work: Path, server: Server, warehouse_url: str, calls_per_minute: int | None = None,
                instance_url: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a deployment: the shipped dagster.yaml in a new DAGSTER_HOME, or,
    with ``instance_url`` (a Postgres database, see ``instance_database``), the production
    one (deploy/postgres/dagster.yaml) on that database."""
    home = work / "dagster_home"
    home.mkdir(exist_ok=True)
    shipped = ROOT / "deploy" / "postgres" / "dagster.yaml" if instance_url else ROOT / "dagster.yaml"
    shutil.copy(shipped, home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TUSHARE_", "ZQUANT_", "DAGSTER_"))}
    if instance_url:
        from sqlalchemy.engine import make_url

        url = make_url(instance_url)
        env.update(DAGSTER_PG_HOST=url.host or "127.0.0.1", DAGSTER_PG_PORT=str(url.port or 5432),
                   DAGSTER_PG_USER=url.username or "postgres", DAGSTER_PG_PASSWORD=url.password or "",
                   DAGSTER_PG_DB=url.database)
    env.update(DAGSTER_HOME=str(home), TUSHARE_HTTP_URL=server.url, ZQUANT_WAREHOUSE_URL=warehouse_url,
               ZQUANT_QUOTA_DIR=str(work / "quota"), ZQUANT_DATA_DIR=str(work / "data"), **extra)
    # No quota set: as good as none (the server enforces none either).
    env["TUSHARE_CALLS_PER_MINUTE"] = str(calls_per_minute or 1_000_000)
    return env


@dataclass
class CliResult:
    returncode: int
    output: str
    wall_seconds: float
    peak_rss_mb: dict[str, float] = field(default_factory=dict)  # process label -> its peak RSS
    peak_total_rss_mb: float = 0.0  # the most all of the command's processes held at once
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # process label -> CPU (user + system), summed


def dagster(args: list[str], env: dict[str, str], sample_memory: bool = False, timeout: float = 3600) -> CliResult:
    """Run `dagster ...` (from this venv) to its end. With ``sample_memory``, the memory and CPU
    of its processes, and of the Postgres backends of a Postgres warehouse."""
    started = time.perf_counter()
    process = subprocess.Popen([str(BIN / "dagster"), *args], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    warehouse_url = env.get("ZQUANT_WAREHOUSE_URL", "")
    backends = f" {warehouse_url.rsplit('/', 1)[1]} " if warehouse_url.startswith("postgres") else None
    sampler = MemorySampler(process.pid, also=backends) if sample_memory else None
    if sampler:
        sampler.start()
    output, _ = process.communicate(timeout=timeout)
    wall = time.perf_counter() - started
    result = CliResult(process.returncode, output, wall)
    if sampler:
        sampler.stop()
        result.peak_rss_mb, result.peak_total_rss_mb = sampler.peaks()
        result.cpu_seconds = sampler.cpu_seconds()
    if process.returncode != 0:
        raise RuntimeError(f"dagster {' '.join(args)} failed:\n{output[-4000:]}")
    return result


def materialize(env: dict[str, str], select: str, partition: str | None = None,
                partition_range: tuple[str, str] | None = None, **kwargs) -> CliResult:
    args = ["asset", "materialize", "-m", "zquant_orchestration.definitions", "--select", select]
    if partition:
        args += ["--partition", partition]
    if partition_range:
        args += ["--partition-range", f"{partition_range[0]}...{partition_range[1]}"]
    return dagster(args, env, **kwargs)


def land_reference_data(env: dict[str, str]) -> None:
    """The calendars and the stock list, as every deployment has them before market data."""
    materialize(env, "trade_cal,stock_basic")


def trading_days(env: dict[str, str], first: str, last: str) -> list[str]:
    """The partition keys of [first, last], as the code location sees them."""
    code = ("from zquant_orchestration.defs.shared.partitions import trading_days as t\n"
            f"print(' '.join(k for k in t.get_partition_keys() if {first!r} <= k <= {last!r}))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return out.stdout.split()


# --- what the instance recorded ---------------------------------------------------------------

@dataclass
class StepReport:
    step: str
    seconds: float
    metadata: dict


@dataclass
class RunReport:
    run_id: str
    status: str
    seconds: float  # RUN_START to RUN_SUCCESS/FAILURE, as the event log has them
    steps: dict[str, StepReport]


def last_run(env: dict[str, str]) -> RunReport:
    """The newest run of the instance at env's DAGSTER_HOME, with each step's time and the
    metadata of its first materialization."""
    code = f"""
import json
from dagster import DagsterEventType as T
from dagster._core.instance import DagsterInstance
instance = DagsterInstance.from_config({env['DAGSTER_HOME']!r})
run = instance.get_runs(limit=1)[0]
events = [e for e in instance.all_logs(run.run_id) if e.is_dagster_event]
times = {{}}
steps = {{}}
for e in events:
    kind, step = e.dagster_event.event_type, e.step_key
    if kind in (T.RUN_START, T.RUN_SUCCESS, T.RUN_FAILURE):
        times[kind.name] = e.timestamp
    if kind == T.STEP_START:
        steps.setdefault(step, {{}})["start"] = e.timestamp
    if kind in (T.STEP_SUCCESS, T.STEP_FAILURE):
        steps.setdefault(step, {{}})["end"] = e.timestamp
    if kind == T.ASSET_MATERIALIZATION and "metadata" not in steps.get(step, {{}}):
        meta = e.dagster_event.event_specific_data.materialization.metadata
        steps.setdefault(step, {{}})["metadata"] = {{k: getattr(v, "value", None) for k, v in meta.items()}}
end = times.get("RUN_SUCCESS", times.get("RUN_FAILURE"))
print(json.dumps({{"run_id": run.run_id, "status": run.status.value, "seconds": end - times["RUN_START"],
                  "steps": steps}}, default=str))
"""
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"could not read the run from the instance:\n{out.stderr[-3000:]}")
    raw = json.loads(out.stdout.strip().splitlines()[-1])
    steps = {k: StepReport(k, v.get("end", 0) - v.get("start", 0), v.get("metadata", {}))
             for k, v in raw["steps"].items()}
    return RunReport(raw["run_id"], raw["status"], raw["seconds"], steps)


# --- memory -----------------------------------------------------------------------------------

class MemorySampler:
    """Every 50 ms: each process's peak RSS (VmHWM, which the kernel keeps, so a short peak
    between samples still counts), the tree's total RSS, and each process's CPU time as last
    seen (a process's last 50 ms before it exits are lost). The process tree under ``pid`` is
    looked up once a second: walking all of /proc every 50 ms cost the benchmark ~7 s of CPU
    in a 45 s sync, on the two cores the sync runs on."""

    def __init__(self, pid: int, interval: float = 0.05, tree_interval: float = 1.0, also: str | None = None):
        self.pid, self.interval, self.tree_interval = pid, interval, tree_interval
        self.also = also  # other processes to follow: those whose command line contains this
        self._peak: dict[int, tuple[str, float]] = {}
        self._peak_total = 0.0
        self._cpu: dict[int, float] = {}
        self._labels: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def peaks(self) -> tuple[dict[str, float], float]:
        by_label: dict[str, float] = {}
        for label, mb in self._peak.values():
            by_label[label] = max(by_label.get(label, 0.0), mb)
        return by_label, self._peak_total

    def cpu_seconds(self) -> dict[str, float]:
        by_label: dict[str, float] = {}
        for pid, seconds in self._cpu.items():
            label = self._labels.get(pid, "?")
            by_label[label] = by_label.get(label, 0.0) + seconds
        return by_label

    def _run(self) -> None:
        tree, tree_at = [], float("-inf")
        while not self._stop.is_set():
            if time.monotonic() - tree_at >= self.tree_interval:
                tree, tree_at = _tree(self.pid, self.also), time.monotonic()
            total = 0.0
            for pid, parent in tree:
                status = _status(pid)
                if not status:
                    continue
                total += status.get("VmRSS", 0.0)
                label = self._labels.get(pid) or self._labels.setdefault(pid, _label(pid, parent))
                peak = status.get("VmHWM", 0.0)
                if peak > self._peak.get(pid, ("", 0.0))[1]:
                    self._peak[pid] = (label, peak)
                self._cpu[pid] = max(self._cpu.get(pid, 0.0), cpu_seconds(pid))
            self._peak_total = max(self._peak_total, total)
            time.sleep(self.interval)


def _tree(root: int, also: str | None = None) -> list[tuple[int, int]]:
    """(pid, parent pid) of ``root`` and every process below it, and of every process whose
    command line contains ``also`` (a Postgres database's backends, say)."""
    children: dict[int, list[int]] = {}
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
            if also and also in _cmdline(int(entry)):
                out.append((int(entry), ppid))
    todo = [(root, 0)]
    while todo:
        pid, parent = todo.pop()
        out.append((pid, parent))
        todo.extend((child, pid) for child in children.get(pid, []))
    return out


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (0 once it has gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _status(pid: int) -> dict[str, float]:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    out = {}
    for line in lines:
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _label(pid: int, parent: int) -> str:
    """What a process of a run is: the run itself, the forkserver, a step (forked from the
    forkserver, so it shows the forkserver's command line), or a helper."""
    cmd = _cmdline(pid)
    if "forkserver" in cmd:
        return "step process" if "forkserver" in _cmdline(parent) else "forkserver"
    if "resource_tracker" in cmd:
        return "resource tracker"
    if "dagster" in cmd:
        return "run process (dagster CLI)"
    if cmd.startswith("postgres:"):
        return "Postgres backends of the warehouse"
    return cmd[:40] or "?"


# --- output -----------------------------------------------------------------------------------

def table(rows: list[list], headers: list[str]) -> str:
    """A plain text table, right-aligned numbers."""
    cells = [[str(c) for c in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        pairs = enumerate(zip(row, widths, strict=True))
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


if __name__ == "__main__":
    print(machine_line())
