"""Hosts of the Celery recipe (README "Scaling out") on this machine, started as the shipped
worker unit starts them.

Each "host" has a working directory, a DAGSTER_HOME and a ZQUANT_QUOTA_DIR of its own, and a
worker (deploy/systemd/zquant-celery-worker.service's command line) consuming a queue of its
own. Every host names the same Dagster instance (deploy/postgres/dagster.yaml on a throwaway
Postgres database), the same warehouse, the same local Tushare server and, when given, the
same ZQUANT_QUOTA_URL. The broker is the machine's RabbitMQ (127.0.0.1:5672, guest), as
.ci/run says.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import create_engine

from zquant_orchestration.defs.tushare.policy import tushare_pool

from .cli_helpers import DAGSTER
from .deployment import DEPLOY, unit_command
from .dialects import ADMIN_URL, postgres_url

BROKER_URL = "pyamqp://guest:guest@127.0.0.1:5672//"
ASSETS = "daily_bars,adj_factor,daily_basic"
POOLED_APIS = ("daily", "adj_factor", "daily_basic")


@dataclass
class Host:
    name: str
    folder: Path
    env: dict[str, str]
    queue: str
    # The Celery node name: unique on the machine's broker, whose per-node control queue is
    # exclusive, so tests running at once (or a killed run's stray worker) do not collide.
    node: str = ""
    worker: subprocess.Popen | None = None
    logs: list[Path] = field(default_factory=list)

    def start_worker(self, wait: bool = True) -> None:
        """The shipped unit's command line, named after this "host"; ready when Celery says so."""
        command = unit_command("zquant-celery-worker.service")
        command[command.index("--hostname") + 1] = f"{self.node or self.name}@%h"
        self.logs.append(self.folder / f"worker-{len(self.logs)}.log")
        with open(self.logs[-1], "w") as out:
            self.worker = subprocess.Popen(command, cwd=self.folder, env=self.env, stdout=out,
                                           stderr=subprocess.STDOUT, start_new_session=True)
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        log = self.logs[-1]
        deadline = time.monotonic() + 120
        while " ready." not in log.read_text(errors="replace"):
            assert self.worker.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the worker never got ready\n" + log.read_text()
            time.sleep(0.3)

    def kill_worker(self) -> None:
        """What a host's power cut does to its worker: every process of it gone at once."""
        os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait(timeout=30)

    def stop_worker(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            os.killpg(self.worker.pid, signal.SIGTERM)
            try:
                self.worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill_worker()

    def backfill(self, first: str, last: str) -> subprocess.Popen:
        """A range run of the market assets launched from this host, as a user's terminal does."""
        return subprocess.Popen(
            [DAGSTER, "asset", "materialize", "-m", "zquant_orchestration.definitions", "--select", ASSETS,
             "--partition-range", f"{first}...{last}"],
            cwd=self.folder, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)

    def worker_log(self) -> str:
        return "\n".join(log.read_text(errors="replace")[-3000:] for log in self.logs)


@dataclass
class Cluster:
    hosts: list[Host]
    instance_env: dict[str, str]
    warehouse_url: str

    def instance(self) -> dg.DagsterInstance:
        """The shared Postgres instance, as the first host's DAGSTER_HOME names it."""
        saved = {k: os.environ.get(k) for k in self.instance_env}
        os.environ.update(self.instance_env)
        try:
            return dg.DagsterInstance.from_config(self.instance_env["DAGSTER_HOME"])
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k)
                else:
                    os.environ[k] = v

    def stop(self) -> None:
        for host in self.hosts:
            host.stop_worker()
        _delete_queues([host.queue for host in self.hosts])


def require_broker() -> None:
    """The machine's RabbitMQ (.ci/run starts it if it is down): CI fails without it, a laptop skips."""
    from kombu import Connection

    try:
        with Connection(BROKER_URL, connect_timeout=5) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:
        if os.environ.get("CI"):
            raise AssertionError(f"no RabbitMQ at {BROKER_URL}: {exc}") from exc
        pytest.skip(f"no RabbitMQ at 127.0.0.1:5672 ({exc.__class__.__name__})")


def start_cluster(tmp_path: Path, server, warehouse_url: str, quota: int, window: float,
                  quota_url: str | None = None, names=("host-a", "host-b")) -> Cluster:
    require_broker()
    instance_db = postgres_url(tmp_path).rsplit("/", 1)[1]
    admin = create_engine(ADMIN_URL).url
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TUSHARE_", "ZQUANT_", "DAGSTER_"))}
    base.update({
        "DAGSTER_PG_HOST": admin.host or "127.0.0.1", "DAGSTER_PG_PORT": str(admin.port or 5432),
        "DAGSTER_PG_USER": admin.username or "postgres", "DAGSTER_PG_PASSWORD": admin.password or "",
        "DAGSTER_PG_DB": instance_db,
        "ZQUANT_WAREHOUSE_URL": warehouse_url, "TUSHARE_HTTP_URL": server.url,
        "TUSHARE_CALLS_PER_MINUTE": str(quota), "TUSHARE_RATE_WINDOW_SECONDS": str(window),
        "ZQUANT_DATASETS": "none", "ZQUANT_EXECUTOR": "celery", "ZQUANT_CELERY_BROKER_URL": BROKER_URL,
    })
    if quota_url is not None:
        base["ZQUANT_QUOTA_URL"] = quota_url
    run_id = uuid.uuid4().hex[:8]
    hosts = []
    for name in names:
        folder = tmp_path / name
        home = folder / "dagster_home"
        home.mkdir(parents=True)
        shutil.copy(DEPLOY / "postgres" / "dagster.yaml", home / "dagster.yaml")
        # A queue of the test's own on the machine's broker: another test's leftovers never reach it.
        queue = f"zq-test-{run_id}-{name}"
        env = dict(base, DAGSTER_HOME=str(home), ZQUANT_QUOTA_DIR=str(folder / "tushare_quota"),
                   ZQUANT_CELERY_QUEUE=queue)
        hosts.append(Host(name, folder, env, queue, node=f"{name}-{run_id}"))
    instance_env = {k: v for k, v in hosts[0].env.items() if k.startswith("DAGSTER_")}
    cluster = Cluster(hosts, instance_env, warehouse_url)
    # The instance's tables are created once, as the first `dagster` command on a new
    # instance would, before the hosts' processes open it at once.
    # So are the Tushare pools' rows: two runs creating the same pool's row at once make one of
    # them fail on Postgres (dagster-io/dagster#33552; README "Scaling out").
    with cluster.instance() as instance:
        for api in POOLED_APIS:
            instance.event_log_storage.initialize_concurrency_limit_to_default(tushare_pool(api))
    try:
        for host in hosts:
            host.start_worker(wait=False)
        for host in hosts:
            host.wait_ready()
    except BaseException:
        cluster.stop()
        raise
    return cluster


def wait_all(processes: list[subprocess.Popen], cluster: Cluster) -> list[str]:
    outputs = []
    for process in processes:
        output, _ = process.communicate(timeout=600)  # a guard against a hang, not a timing
        outputs.append(output)
        assert process.returncode == 0, output[-4000:] + "\n".join(h.worker_log() for h in cluster.hosts)
    return outputs


def step_workers(instance: dg.DagsterInstance) -> dict[str, set[str]]:
    """Celery worker name -> the steps it executed, from the engine events dagster-celery's task
    records on the worker ("Executing steps ... in celery worker")."""
    seen: dict[str, set[str]] = {}
    for run in instance.get_runs():
        for record in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
            data = record.dagster_event.engine_event_data
            worker = data.metadata.get("Celery worker") if data and data.metadata else None
            if worker is not None:
                host = worker.value.split("@", 1)[0].rsplit("-", 1)[0]  # host-a-<run id>@machine
                seen.setdefault(host, set()).add(record.step_key)
    return seen


def step_spans(instance: dg.DagsterInstance) -> dict[str, list[tuple[float, float]]]:
    """Step key -> (start, end) of each run's execution of it, from the steps' own events."""
    spans: dict[str, list[tuple[float, float]]] = {}
    for run in instance.get_runs():
        starts: dict[str, float] = {}
        for record in instance.all_logs(run.run_id):
            event = record.dagster_event
            if event is None or record.step_key is None:
                continue
            if event.event_type == dg.DagsterEventType.STEP_START:
                starts[record.step_key] = record.timestamp
            elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
                spans.setdefault(record.step_key, []).append((starts[record.step_key], record.timestamp))
    return spans


def _delete_queues(names: list[str]) -> None:
    from kombu import Connection

    with Connection(BROKER_URL) as conn:
        channel = conn.channel()
        for name in names:
            channel.queue_delete(name)
        channel.close()
