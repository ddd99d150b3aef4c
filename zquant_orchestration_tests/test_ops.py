"""`zquant-ops run-stats` and `zquant-ops health` on the SQLite default instance.

The same commands against the Postgres production instance, with the daemon running, are
in test_production.py.
"""

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from zquant_orchestration.defs.warehouse.resources import WarehouseResource
from zquant_orchestration.lib.tushare_server import LOCAL_TOKEN
from zquant_orchestration.ops import cli
from zquant_orchestration.ops.run_stats import percentile

from .deployment import DEPLOY, free_port

OPS = str(Path(sys.executable).with_name("zquant-ops"))


@dg.asset
def prices() -> int:
    return 1


class SignalConfig(dg.Config):
    fail: bool = False


# No `from __future__ import annotations` here: Dagster reads the config annotation.
@dg.asset(deps=[prices])
def signal(config: SignalConfig) -> dg.MaterializeResult:
    if config.fail:
        raise dg.Failure("the source said no")
    return dg.MaterializeResult()


@dg.asset(deps=[signal])
def report() -> None:
    return None


pipeline = dg.define_asset_job("pipeline", selection=[prices, signal, report])
only_prices = dg.define_asset_job("only_prices", selection=[prices])
DEFS = dg.Definitions(assets=[prices, signal, report], jobs=[pipeline, only_prices])


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A DAGSTER_HOME like the SQLite default's (no run storage settings: SQLite under it)."""
    folder = tmp_path / "dagster_home"
    folder.mkdir()
    (folder / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(folder))
    return folder


def _run(job_name: str, fail: bool = False) -> dg.ExecuteInProcessResult:
    config = {"ops": {"signal": {"config": {"fail": True}}}} if fail else None
    with dg.DagsterInstance.get() as instance:
        return DEFS.get_job_def(job_name).execute_in_process(instance=instance, run_config=config,
                                                             raise_on_error=False)


def test_run_stats_count_runs_and_asset_outcomes_per_job_and_asset(home, capsys):
    outcomes = [_run("pipeline"), _run("pipeline", fail=True), _run("pipeline"), _run("only_prices")]
    assert [r.success for r in outcomes] == [True, False, True, True]

    with pytest.raises(SystemExit) as exited:
        cli.main(["run-stats", "--json"])
    assert exited.value.code == 0
    stats = json.loads(capsys.readouterr().out)
    jobs = {s["name"]: s for s in stats["jobs"]}
    assets = {s["name"]: s for s in stats["assets"]}
    assert {n: (s["runs"], s["success"], s["failure"], s["running"]) for n, s in jobs.items()} == {
        "pipeline": (3, 2, 1, 0), "only_prices": (1, 1, 0, 0)}
    assert jobs["pipeline"]["success_rate"] == round(2 / 3, 4)
    assert jobs["only_prices"]["last_status"] == "success"
    # prices ran in all four runs; signal failed once; report never ran in the failed run.
    assert {n: (s["runs"], s["success"], s["failure"]) for n, s in assets.items()} == {
        "prices": (4, 4, 0), "signal": (3, 2, 1), "report": (3, 2, 1)}
    assert assets["report"]["success_rate"] == round(2 / 3, 4)

    # Durations are of successful runs, as Dagster recorded them.
    with dg.DagsterInstance.get() as instance:
        records = instance.get_run_records(dg.RunsFilter(job_name="pipeline",
                                                         statuses=[dg.DagsterRunStatus.SUCCESS]))
        durations = [r.end_time - r.start_time for r in records]
        steps = [s for r in records for s in instance.get_run_step_stats(r.dagster_run.run_id)
                 if s.step_key == "signal"]
    assert jobs["pipeline"]["avg_seconds"] == round(sum(durations) / 2, 3)
    assert jobs["pipeline"]["p95_seconds"] == round(max(durations), 3)
    assert assets["signal"]["avg_seconds"] == round(sum(s.end_time - s.start_time for s in steps) / 2, 3)


@pytest.mark.slow  # the command in a process of its own; the fast tier calls its main() in process
def test_run_stats_table_and_filters_from_the_command_line(home):
    _run("pipeline")
    _run("pipeline", fail=True)
    _run("only_prices")
    table = subprocess.run([OPS, "run-stats"], capture_output=True, text=True, check=True).stdout
    header, *rows = table.splitlines()
    assert header.split()[:8] == ["kind", "name", "runs", "ok", "failed", "canceled", "running", "success"]
    pipeline_row = next(r.split() for r in rows if r.split()[:2] == ["job", "pipeline"])
    assert pipeline_row[2:8] == ["2", "1", "1", "0", "0", "50.0%"]
    assert pipeline_row[-1] == "failure"  # the newest pipeline run failed

    only = json.loads(subprocess.run([OPS, "run-stats", "--json", "--job", "only_prices"], capture_output=True,
                                     text=True, check=True).stdout)
    assert [s["name"] for s in only["jobs"]] == ["only_prices"]
    assert [s["name"] for s in only["assets"]] == ["prices"]
    future = subprocess.run([OPS, "run-stats", "--since", "2999-01-01"], capture_output=True, text=True)
    assert (future.returncode, future.stdout.strip()) == (0, "no runs")

    bad = subprocess.run([OPS, "run-stats", "--since", "yesterday"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--since takes a date as YYYY-MM-DD, got 'yesterday'" in bad.stderr


def test_percentile_is_nearest_rank():
    assert percentile([5.0], 0.95) == 5.0
    assert percentile([float(v) for v in range(1, 21)], 0.95) == 19.0
    assert percentile([float(v) for v in range(1, 101)], 0.95) == 95.0
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0


def test_run_stats_without_an_instance_says_so(monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    env = {k: v for k, v in __import__("os").environ.items() if k != "DAGSTER_HOME"}
    result = subprocess.run([OPS, "run-stats"], capture_output=True, text=True, env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == ("zquant-ops run-stats: DAGSTER_HOME is not set: point it at the folder "
                                     "holding dagster.yaml")


# --- health ---------------------------------------------------------------------------------


@pytest.fixture
def healthy(home, tmp_path, monkeypatch, local_server):
    """A SQLite instance, a SQLite warehouse and a local Tushare server with its own token."""
    server = local_server(token="secret-health-token")
    monkeypatch.setenv("ZQUANT_WAREHOUSE_URL", f"sqlite:///{tmp_path / 'warehouse.sqlite'}")
    monkeypatch.setenv("TUSHARE_HTTP_URL", server.url)
    monkeypatch.setenv("TUSHARE_TOKEN", "secret-health-token")
    return server


def _health(capsys, *args: str) -> tuple[int, list[str], str]:
    with pytest.raises(SystemExit) as exited:
        cli.main(["health", *args])
    out, err = capsys.readouterr()
    return exited.value.code, out.splitlines(), err


def test_health_passes_and_spends_one_call_of_the_shared_quota(healthy, capsys):
    code, lines, err = _health(capsys, "--no-daemon")
    assert (code, err) == (0, "")
    assert [line.split()[:2] for line in lines] == [["ok", "instance"], ["ok", "warehouse"], ["ok", "tushare"]]
    assert "0 runs" in lines[0]
    assert "daily_bars empty" in lines[1]
    assert f"{healthy.url} (token from TUSHARE_TOKEN)" in lines[2] and "quota 1/200" in lines[2]
    assert [r["api"] for r in healthy.requests] == ["trade_cal"]
    assert "secret-health-token" not in "\n".join(lines)


def test_health_fails_when_no_daemon_is_running(healthy, capsys):
    code, lines, err = _health(capsys, "--only", "instance")
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("zquant-ops health: instance: sqlite storage, 0 runs; no daemon "
                                                   "heartbeat for 120 s from ")
    assert "start `dagster-daemon run`" in err and "SCHEDULER" in err


def test_health_names_a_wrong_token_after_one_call(healthy, capsys, monkeypatch):
    monkeypatch.setenv("TUSHARE_TOKEN", "not-the-token")
    code, lines, err = _health(capsys, "--no-daemon")
    assert code == 1
    assert lines[-1].startswith("FAIL  tushare") and "TUSHARE_TOKEN" in lines[-1]
    assert err.startswith("zquant-ops health: tushare: ") and "TUSHARE_TOKEN" in err and err.count("\n") == 1
    assert "not-the-token" not in err + "\n".join(lines)
    assert len(healthy.requests) == 1


def test_health_names_an_unreachable_tushare_endpoint(healthy, capsys, monkeypatch):
    monkeypatch.setenv("TUSHARE_HTTP_URL", f"http://127.0.0.1:{free_port()}")
    code, _, err = _health(capsys, "--only", "tushare")
    assert code == 1 and err.startswith("zquant-ops health: tushare: ") and err.count("\n") == 1
    assert "trade_cal" in err


def test_health_names_an_unreachable_warehouse_without_its_password(healthy, capsys, monkeypatch):
    monkeypatch.setenv("ZQUANT_WAREHOUSE_URL", f"postgresql://zquant:hunter2@127.0.0.1:{free_port()}/zquant")
    code, lines, err = _health(capsys, "--no-daemon")
    assert code == 1
    assert err.startswith("zquant-ops health: warehouse: cannot read postgresql+psycopg2://zquant:***@127.0.0.1:")
    assert "check ZQUANT_WAREHOUSE_URL" in err and err.count("\n") == 1
    assert "hunter2" not in err + "\n".join(lines)
    # The other checks still ran and passed.
    assert [line.split()[:2] for line in lines] == [["ok", "instance"], ["FAIL", "warehouse"], ["ok", "tushare"]]


@pytest.mark.parametrize("url", ["postgresql://u:ss#S3cret@nohost.invalid:5432/db",
                                 "postgresql://u:p@ss#S3cret@nohost.invalid:5432/db",
                                 "postgresql://u:ss#S3cret@nohost.invalid:port/db"])
def test_health_says_the_shipped_calendar_is_in_use_and_never_shows_the_password(healthy, capsys, monkeypatch, url):
    monkeypatch.setenv("ZQUANT_WAREHOUSE_URL", url)
    code, lines, err = _health(capsys, "--only", "warehouse")
    assert code == 1 and err.count("\n") == 1
    assert "S3cret" not in err + "\n".join(lines)
    assert err.startswith("zquant-ops health: warehouse: cannot read postgresql+psycopg2://u:***@nohost.invalid:")
    assert err.rstrip().endswith("while the warehouse is unreachable the code location uses the shipped calendar "
                                 "(through 2026-12-31) and stock list")


@dg.asset
def reads_the_warehouse(warehouse: WarehouseResource) -> None:
    warehouse.get()


def test_a_run_that_cannot_reach_the_warehouse_fails_without_its_password(home):
    url = "postgresql://u:p@ss#S3cret@nohost.invalid:5432/db"
    with dg.DagsterInstance.get() as instance:
        result = dg.materialize([reads_the_warehouse], instance=instance, raise_on_error=False,
                                resources={"warehouse": WarehouseResource(url=url)})
        events = [str(e.dagster_event) if e.dagster_event else e.user_message for e in instance.all_logs(result.run_id)]
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE").step_failure_data.error
    assert 'could not translate host name "***@nohost.invalid"' in failure.to_string()
    assert "S3cret" not in "\n".join(events) + failure.to_string()


@pytest.mark.slow  # waits out the instance's connection retries to a port nobody listens on
def test_health_names_an_unreachable_postgres_instance(healthy, capsys, home, monkeypatch):
    (home / "dagster.yaml").write_text((DEPLOY / "postgres" / "dagster.yaml").read_text())
    for name, value in {"DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(free_port()),
                        "DAGSTER_PG_USER": "postgres", "DAGSTER_PG_PASSWORD": "", "DAGSTER_PG_DB": "x"}.items():
        monkeypatch.setenv(name, value)
    code, _, err = _health(capsys, "--only", "instance")
    assert code == 1 and err.count("\n") == 1
    assert err.startswith(f"zquant-ops health: instance: cannot read the run storage of {home}: ")

    monkeypatch.delenv("DAGSTER_PG_PASSWORD")
    code, _, err = _health(capsys, "--only", "instance")
    assert code == 1 and "DAGSTER_PG_PASSWORD" in err and err.count("\n") == 1


@pytest.mark.slow  # the command in a process of its own; the fast tier calls its main() in process
def test_health_from_the_command_line_exits_non_zero_with_one_line(healthy, tmp_path):
    import os

    env = dict(os.environ, ZQUANT_WAREHOUSE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")
    result = subprocess.run([OPS, "health", "--no-daemon"], capture_output=True, text=True, env=env)
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("zquant-ops health: warehouse: ")
    assert LOCAL_TOKEN not in result.stdout


def test_the_production_instance_differs_from_the_default_only_in_storage():
    """deploy/postgres/dagster.yaml repeats ./dagster.yaml's queue, pools, retries and run
    monitoring (YAML has no include); they must not drift apart."""
    import yaml

    default = yaml.safe_load((DEPLOY.parent / "dagster.yaml").read_text())
    production = yaml.safe_load((DEPLOY / "postgres" / "dagster.yaml").read_text())
    assert set(production.pop("storage")) == {"postgres"}
    assert production == default
