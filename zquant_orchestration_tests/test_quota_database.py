"""ZQUANT_QUOTA_URL: processes that share no quota folder (as on two hosts) share one quota
through PostgreSQL, a waiting process holds no lock, and a bad URL is one masked line.
The semantics both stores share are in test_rate_limit.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from sqlalchemy import create_engine, text

from zquant_orchestration.lib.tushare import TushareClient, TushareQuotaStoreError
from zquant_orchestration.lib.tushare.rate_limit import limiter_for
from zquant_orchestration.lib.tushare_server import LOCAL_TOKEN

from .dialects import postgres_url
from .tushare_helpers import max_calls_in_window

SCOPE = "http://x token"  # an argument of the workers: no NUL in it
# A worker: N calls of the quota named by its environment, each answered after a random
# delay; it prints each call's send and answer time as JSON lines.
LIMITER_WORKER = """
import json, random, sys, time
from zquant_orchestration.lib.tushare.rate_limit import limiter_for
scope, calls, limit, window = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
quota = limiter_for(scope, "daily", limit, window)
for _ in range(calls):
    waited, ticket = quota.acquire()
    sent = time.time()
    time.sleep(random.uniform(0, 0.3))  # the call travels, the server answers
    answered = time.time()
    quota.done(ticket)
    print(json.dumps([sent, answered]), flush=True)
"""
CLIENT_WORKER = """
import sys
from zquant_orchestration.lib.tushare import TushareClient
url, token, calls, limit, window = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
client = TushareClient(url, token, calls_per_minute=limit, window_seconds=window)
for _ in range(calls):
    client.query("trade_cal", {"exchange": "SSE", "start_date": "20240101", "end_date": "20240110"})
"""


def _env(tmp_path, name: str, quota_url: str | None) -> dict[str, str]:
    """A worker's environment: a quota folder of its own (as on its own host), and the URL."""
    env = {k: v for k, v in os.environ.items() if k != "ZQUANT_QUOTA_URL"}
    env["ZQUANT_QUOTA_DIR"] = str(tmp_path / f"quota-{name}")
    if quota_url:
        env["ZQUANT_QUOTA_URL"] = quota_url
    return env


def _start(code: str, args, env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-3000:]
    return out


def most_calls_counting(calls: list[tuple[float, float]], window: float) -> int:
    """The most calls whose arrival may fall in one server window: at each send, the calls
    sent by then and answered less than a window before it (a call arrives between its send
    and its answer, so L + 1 arrivals in a window would be L + 1 calls counting at the last send)."""
    return max(sum(1 for s, a in calls if s <= send < a + window) for send, _ in calls)


@pytest.mark.slow  # starts processes
def test_processes_with_their_own_quota_folders_and_one_url_never_exceed_the_limit(tmp_path):
    url, limit, window = postgres_url(tmp_path), 3, 1.0
    workers = [_start(LIMITER_WORKER, [SCOPE, 5, limit, window], _env(tmp_path, f"host{i}", url)) for i in range(3)]
    calls = [tuple(json.loads(line)) for w in workers for line in _finish(w).splitlines()]
    assert len(calls) == 15
    assert most_calls_counting(calls, window) <= limit
    assert max_calls_in_window([s for s, _ in calls], window) <= limit


@pytest.mark.slow  # starts processes
def test_workers_on_one_database_are_never_refused_by_the_server_and_folders_alone_would_be(tmp_path, local_server):
    limit, window = 3, 1.5
    server = local_server(calls_per_minute=limit, window_seconds=window)

    def run(quota_url: str | None, tag: str) -> list[dict]:
        start = len(server.requests)
        workers = [_start(CLIENT_WORKER, [server.url, LOCAL_TOKEN, 4, limit, window],
                          _env(tmp_path, f"{tag}{i}", quota_url)) for i in range(3)]
        for worker in workers:
            _finish(worker)
        return server.requests[start:]

    shared = run(postgres_url(tmp_path), "shared")
    assert len(shared) == 12 and not [r for r in shared if r["code"] == 40203], "no call was refused"
    assert max_calls_in_window([r["t"] for r in shared], window) <= limit
    time.sleep(window)  # the server's window forgets the run above
    apart = run(None, "apart")  # each worker keeps the whole quota in its own folder
    assert [r for r in apart if r["code"] == 40203], "three folders let three quotas through at once"


@pytest.mark.slow  # starts processes
def test_a_limit_and_a_block_learned_by_one_process_hold_in_another(tmp_path):
    url, window = postgres_url(tmp_path), 30.0
    other = ("import sys, time\nfrom zquant_orchestration.lib.tushare.rate_limit import limiter_for\n"
             "quota = limiter_for(sys.argv[1], 'daily', 10, 30.0)\n"
             "print('ready', flush=True)\nsys.stdin.readline()\n"
             "print(*quota.usage(), round(quota.acquire()[0], 1), flush=True)")
    proc = subprocess.Popen([sys.executable, "-c", other, SCOPE], env=_env(tmp_path, "other", url), text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().strip() == "ready"
    quota = limiter_for(SCOPE, "daily", 10, window, quota_url=url)
    quota.lower_limit(2)
    quota.block_for(2.0)
    proc.stdin.write("go\n")
    proc.stdin.flush()
    calls, limit, waited = _finish(proc).split()
    assert (calls, limit) == ("0", "2"), "the other process holds the server's limit of 2, not its own 10"
    assert float(waited) >= 1.0, "and waited out the block"


@pytest.mark.slow  # starts processes
def test_a_process_waiting_for_a_slot_holds_no_lock_and_no_open_transaction(tmp_path):
    url, limit, window = postgres_url(tmp_path), 2, 60.0
    waiter = ("import sys\nfrom zquant_orchestration.lib.tushare.rate_limit import limiter_for\n"
              "quota = limiter_for(sys.argv[1], 'daily', 2, 60.0)\n"
              "for _ in range(2):\n    quota.done(quota.acquire()[1])\n"
              "print('waiting', flush=True)\nquota.acquire()\nprint('acquired', flush=True)")
    proc = _start(waiter, [SCOPE], _env(tmp_path, "waiter", url))
    try:
        assert proc.stdout.readline().strip() == "waiting"
        admin = create_engine(url)
        seen = []
        with admin.connect() as conn:
            for _ in range(10):
                time.sleep(0.2)
                seen.append(conn.execute(text(
                    "SELECT a.state, (SELECT count(*) FROM pg_locks l WHERE l.pid = a.pid) FROM pg_stat_activity a "
                    "WHERE a.datname = current_database() AND a.application_name = 'zquant-tushare-quota'")).all())
                conn.rollback()
        admin.dispose()
        assert proc.poll() is None, "the worker still waits for a slot"
        assert all(rows for rows in seen), "its pooled connection stays open, idle"
        assert {state for rows in seen for state, _ in rows} == {"idle"}, seen
        assert {locks for rows in seen for _, locks in rows} == {0}, seen
        started = time.monotonic()
        assert limiter_for(SCOPE, "daily", limit, window, quota_url=url).usage() == (2, 2)
        assert time.monotonic() - started < 5, "another process looks at the quota meanwhile, unblocked"
    finally:
        proc.kill()
        proc.communicate()


@pytest.mark.parametrize("where", ["127.0.0.1:1/zquant", "127.0.0.1:5432/zq_no_such_database"])
def test_a_quota_database_that_cannot_be_used_is_one_line_without_its_password(local_server, monkeypatch, where):
    server = local_server()
    monkeypatch.setenv("ZQUANT_QUOTA_URL", f"postgresql://postgres:s3cret-pw@{where}")
    client = TushareClient(server.url, LOCAL_TOKEN)
    with pytest.raises(TushareQuotaStoreError) as raised:
        client.query("trade_cal", {"exchange": "SSE"})
    message = str(raised.value)
    assert message.startswith("The Tushare quota database ZQUANT_QUOTA_URL=postgresql://postgres:***@"), message
    assert "s3cret" not in message and "\n" not in message
    assert "unset ZQUANT_QUOTA_URL" in message
    assert server.requests == [], "nothing was sent to Tushare"
