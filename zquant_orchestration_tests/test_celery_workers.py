"""Steps on Celery workers on two "hosts" (README "Scaling out"): the Dagster pools keep one step
per Tushare API at a time across hosts, the quota store decides whether the quota holds.

Each host launches one of two overlapping range runs, and its steps go to that host's worker
(ZQUANT_CELERY_QUEUE per host): so each API's steps run on both hosts, one right after the
other, every time, rather than as the broker's dispatch happens to fall. That is the case a
shared quota exists for. Uses the machine's RabbitMQ (.ci/run says so).
"""

from __future__ import annotations

import time

import dagster as dg
import pytest

from .celery_helpers import ASSETS, start_cluster, step_spans, step_workers, wait_all
from .dialects import postgres_url
from .market_helpers import assert_same, materialize_reference, resources_for, truth_rows, warehouse_rows
from .tushare_helpers import max_calls_in_window

pytestmark = pytest.mark.slow  # two Celery workers, two `dagster` CLI runs, a Postgres instance

# Tushare's 60 s window scaled down, yet longer than the handover from one host's step of an API
# to the other's (the step's end, the pool slot passing, the next step loading the definitions
# on its worker). Whichever run's step of an API comes first fetches its two days at once, a
# whole quota; the other's then fetches the one day the first did not land: inside the same
# window, that is one call over the quota unless the hosts share it.
QUOTA, WINDOW = 2, 30.0
RANGES = (("2024-03-04", "2024-03-05"), ("2024-03-05", "2024-03-06"))
# The killed run's range: more days than a window's quota, so the step pauses with days to go.
KILL_RANGE, KILL_WINDOW = ("2024-03-04", "2024-03-07"), 10.0
TABLES = ASSETS.split(",")
APIS = ("daily", "adj_factor", "daily_basic")


def overlapping_runs_on_two_hosts(tmp_path, local_server, quota_url: str | None):
    warehouse = postgres_url(tmp_path)
    assert materialize_reference(resources_for(local_server(), warehouse), dg.DagsterInstance.ephemeral()).success
    server = local_server(calls_per_minute=QUOTA, window_seconds=WINDOW)
    cluster = start_cluster(tmp_path, server, warehouse, QUOTA, WINDOW, quota_url=quota_url)
    try:
        wait_all([host.backfill(*span) for host, span in zip(cluster.hosts, RANGES, strict=True)], cluster)
        with cluster.instance() as instance:
            workers = step_workers(instance)
            assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in instance.get_runs())
            # The pools held across hosts: the two runs' steps of an API never ran at once.
            spans = step_spans(instance)
        for table in TABLES:
            (a_start, a_end), (b_start, b_end) = sorted(spans[table])
            assert a_end <= b_start, f"{table}: two steps at once on two hosts"
    finally:
        cluster.stop()
    return server, warehouse, workers


def test_two_worker_hosts_share_one_quota_in_postgres(tmp_path, local_server):
    server, warehouse, workers = overlapping_runs_on_two_hosts(tmp_path, local_server, postgres_url(tmp_path))

    # Steps ran on both hosts, each API's on each of them.
    step_keys = {f"{table}" for table in TABLES}
    assert set(workers) == {"host-a", "host-b"}
    assert all(step_keys <= steps for steps in workers.values()), workers
    calls = server.requests
    for api in APIS:
        times = [r["t"] for r in calls if r.get("api") == api]
        assert len(times) > QUOTA, "enough calls that the quota binds"
        assert max_calls_in_window(times, WINDOW) <= QUOTA, f"{api}: over the quota in some window"
    assert not [r for r in calls if r.get("code") == 40203], "no call was turned away for the rate limit"
    for table in TABLES:
        assert_same(warehouse_rows(warehouse, table), truth_rows(server, table, RANGES[0][0], RANGES[1][1]))


def test_per_host_quota_files_exceed_the_quota_across_hosts(tmp_path, local_server):
    """Without ZQUANT_QUOTA_URL each host holds the quota in its own files: the pools still keep
    one step per API at a time, but the next host's step spends a whole quota of its own inside
    the window the previous host's calls already filled. This is why the quota moves to Postgres."""
    server, warehouse, workers = overlapping_runs_on_two_hosts(tmp_path, local_server, None)

    assert set(workers) == {"host-a", "host-b"}
    calls = server.requests
    over = {api: max_calls_in_window([r["t"] for r in calls if r.get("api") == api], WINDOW) for api in APIS}
    refused = [r for r in calls if r.get("code") == 40203]
    assert max(over.values()) > QUOTA or refused, f"the hosts' files held the quota: {over}"
    # The client's retries still land every day (a 40203 teaches the host the limit).
    for table in TABLES:
        assert_same(warehouse_rows(warehouse, table), truth_rows(server, table, RANGES[0][0], RANGES[1][1]))


def test_a_worker_killed_mid_step_leaves_nothing_partial_and_the_run_finishes_when_it_is_back(tmp_path, local_server):
    warehouse = postgres_url(tmp_path)
    assert materialize_reference(resources_for(local_server(), warehouse), dg.DagsterInstance.ephemeral()).success
    # A short window: here it only has to pause the step long enough to kill it.
    server = local_server(calls_per_minute=QUOTA, window_seconds=KILL_WINDOW)
    cluster = start_cluster(tmp_path, server, warehouse, QUOTA, KILL_WINDOW, names=("host-a",))
    host = cluster.hosts[0]
    first, last = KILL_RANGE
    try:
        run = host.backfill(first, last)
        # The quota pauses each step after its first calls: kill the host's worker then, with
        # days landed and days still to fetch.
        deadline = time.monotonic() + 180
        while _days_landed(warehouse) < 1:
            assert run.poll() is None, run.stdout.read()
            assert time.monotonic() < deadline, "the steps never got going\n" + host.worker_log()
            time.sleep(0.2)
        host.kill_worker()
        # Nothing partial: each day in the warehouse is the whole day at the source.
        landed = {}
        for table in TABLES:
            rows = warehouse_rows(warehouse, table) if table in _tables(warehouse) else None
            if rows is None or rows.empty:
                continue
            days = sorted(set(rows["trade_date"]))
            landed[table] = days
            truth = truth_rows(server, table, first, last)
            assert_same(rows, truth[truth["trade_date"].isin(days)])
        assert run.poll() is None, "the run waits for its steps"
        # The host comes back (the unit restarts a killed worker): RabbitMQ gives it the steps
        # the dead worker never acknowledged, and the same run finishes.
        host.start_worker()
        wait_all([run], cluster)
        with cluster.instance() as instance:
            (dagster_run,) = instance.get_runs()
            assert dagster_run.status == dg.DagsterRunStatus.SUCCESS
            executions = [r for r in instance.all_logs(dagster_run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
                          if "in celery worker" in (r.dagster_event.message or "")]
    finally:
        cluster.stop()
    assert len([e for e in executions if e.step_key == "daily_bars"]) == 2, "daily_bars ran again after the kill"
    for table in TABLES:
        assert_same(warehouse_rows(warehouse, table), truth_rows(server, table, first, last))


def _days_landed(url: str) -> int:
    if "daily_bars" not in _tables(url):
        return 0
    return len(set(warehouse_rows(url, "daily_bars")["trade_date"]))


def _tables(url: str) -> set[str]:
    from sqlalchemy import create_engine, inspect

    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
