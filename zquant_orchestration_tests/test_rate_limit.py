"""The quota is one per host (files) or one per database (ZQUANT_QUOTA_URL): processes that
follow or overlap one another, calls answered late, and processes killed mid-call never put
more than the limit into one window. Every test runs against both stores."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import threading
import time

import pytest
from sqlalchemy import create_engine, text

from zquant_orchestration.lib.tushare.rate_limit import STALE_WINDOWS, limiter_for, open_quota

from .dialects import postgres_url
from .tushare_helpers import max_calls_in_window

LIMIT, WINDOW = 3, 1.0
SCOPE = "http://x\0token"


@pytest.fixture(params=["files", "postgres"])
def where(request, tmp_path) -> dict:
    """Where the quota is kept: the host's folder, or a database of the test's own."""
    if request.param == "files":
        return {"quota_dir": tmp_path}
    return {"quota_url": postgres_url(tmp_path)}


def view(where, limit, window):
    """One process's view of the quota, as a client opens it."""
    return open_quota(SCOPE, "daily", limit, window, **where)


def _burst(where, calls, answer_delay, out):
    log = view(where, LIMIT, WINDOW)
    for _ in range(calls):
        _, ticket = log.acquire()
        out.put(time.time())  # the "arrival" at the server: after sending, before the answer
        time.sleep(answer_delay)
        log.done(ticket)


def _run_processes(where, count, calls, answer_delay=0.0, stagger=0.0) -> list[float]:
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = []
    for _ in range(count):
        procs.append(ctx.Process(target=_burst, args=(where, calls, answer_delay, out)))
        procs[-1].start()
        time.sleep(stagger)
    stamps = [out.get(timeout=60) for _ in range(count * calls)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return stamps


def test_a_process_that_starts_as_another_ends_waits_for_its_calls_to_leave_the_window(where):
    first = _run_processes(where, 1, LIMIT)  # a whole quota, then the process exits
    second = _run_processes(where, 1, 1)
    assert second[0] - first[0] >= WINDOW, "the next step's first call waited out the last step's calls"
    assert max_calls_in_window(first + second, WINDOW) <= LIMIT


def test_overlapping_processes_share_one_quota(where):
    stamps = _run_processes(where, 4, 4, stagger=0.05)
    assert len(stamps) == 16
    assert max_calls_in_window(stamps, WINDOW) <= LIMIT


def test_a_call_answered_late_counts_its_window_from_the_answer(where):
    # Each answer takes 0.4 s: windows counted from the send would let 4 arrivals into 1 s.
    stamps = _run_processes(where, 3, 3, answer_delay=0.4)
    assert max_calls_in_window(stamps, WINDOW) <= LIMIT


def test_a_call_of_a_killed_process_counts_until_it_is_stale(where):
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()

    def hang():
        log = view(where, 1, 0.2)
        log.acquire()  # sent, never answered
        ready.set()
        time.sleep(60)

    proc = ctx.Process(target=hang)
    proc.start()
    assert ready.wait(30)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    started = time.time()
    waited, ticket = view(where, 1, 0.2).acquire()
    assert time.time() - started >= 0.2 * STALE_WINDOWS * 0.9, "the in-flight call held its slot"


def test_the_server_s_number_is_learned_by_every_process_but_not_forever(where, monkeypatch):
    log = limiter_for(SCOPE, "daily", 10, WINDOW, **where)
    other = view(where, 10, WINDOW)  # another process's view of the same quota
    log.lower_limit(2)
    for _ in range(2):
        other.done(other.acquire()[1])
    started = time.time()
    other.acquire()
    assert time.time() - started >= WINDOW * 0.9, "the third call waited: the learned limit is 2"
    from zquant_orchestration.lib.tushare import rate_limit

    monkeypatch.setattr(rate_limit, "LEARNED_LIMIT_SECONDS", 0.0)
    started = time.time()
    other.acquire()
    assert time.time() - started < WINDOW * 0.5, "an old lesson expired: the configured 10 apply again"


def test_the_store_names_the_api_but_never_holds_the_token(where, tmp_path):
    log = limiter_for("http://x\0secret-token-123", "daily", 5, WINDOW, **where)
    log.done(log.acquire()[1])
    if "quota_dir" in where:
        assert log.store.path.name.startswith("daily-")
        held = [f.name + f.read_text() for f in tmp_path.iterdir()]
    else:
        held = [str(row) for row in _rows(where, "tushare_quota_calls") + _rows(where, "tushare_quota_state")]
        assert {row.api for row in _rows(where, "tushare_quota_calls")} == {"daily"}
    assert held and not [h for h in held if "secret-token-123" in h]


def _rows(where, table) -> list:
    engine = create_engine(where["quota_url"])
    with engine.connect() as conn:
        rows = list(conn.execute(text(f"SELECT * FROM {table}")))
    engine.dispose()
    return rows


def _plant(where, log, state) -> None:
    """Write a quota state as the store keeps it: the file, or the database's rows."""
    if "quota_dir" in where:
        log.store.path.write_text(json.dumps(state))
        return
    engine = create_engine(where["quota_url"])
    keys = log.store.keys
    with engine.begin() as conn:
        learned = state.get("learned_limit") or [None, None]
        conn.execute(text("INSERT INTO tushare_quota_state VALUES (:scope, :api, :blocked, :limit, :at) "
                          "ON CONFLICT (scope_digest, api) DO UPDATE SET blocked_until = :blocked, "
                          "learned_limit = :limit, learned_at = :at"),
                     dict(keys, blocked=state["blocked_until"], limit=learned[0], at=learned[1]))
        for ticket, (stamp, status) in state["calls"].items():
            conn.execute(text("INSERT INTO tushare_quota_calls VALUES (:scope, :api, :ticket, :stamp, :status)"),
                         dict(keys, ticket=ticket, stamp=stamp, status=status))
    engine.dispose()


QUOTA_LOGGER = "zquant_orchestration.lib.tushare"


@pytest.mark.parametrize("ahead", ["blocked_until", "learned_limit", "calls"])
def test_a_block_or_stamp_from_before_the_clock_went_back_is_dropped(where, caplog, ahead):
    """Stamps an hour ahead mean the clock stepped back: calls go on within a window (here
    one second), not an hour later, and a warning names the file or the database."""
    log = view(where, LIMIT, WINDOW)
    log.usage()  # the database's tables exist
    later = time.time() + 3600
    state = {"calls": {f"old-{i}": [later, 1] for i in range(LIMIT)} if ahead == "calls" else {},
             "blocked_until": later if ahead == "blocked_until" else 0.0}
    if ahead == "learned_limit":
        state["learned_limit"] = [1, later]  # without the drop: one call a window for the next two hours
    _plant(where, log, state)

    def calls():
        for _ in range(LIMIT):
            log.done(log.acquire()[1])

    with caplog.at_level(logging.WARNING, logger=QUOTA_LOGGER):
        caller = threading.Thread(target=calls, daemon=True)  # a daemon: a regression waits, not the suite
        caller.start()
        caller.join(timeout=5)
    assert not caller.is_alive(), "the calls went out within seconds, not an hour later"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and log.store.where in warnings[0] and "future" in warnings[0], warnings


@pytest.mark.parametrize("content", ["[1, 2, 3]", '{"calls": "x"}', '{"calls": {"a": 5}}',
                                     '{"calls": {}, "blocked_until": "soon"}', '{"calls": {}, "learned_limit": 5}',
                                     '{"calls": {}, "blocked_until": NaN}', "not json"])
def test_a_quota_file_of_the_wrong_shape_is_started_afresh_with_one_warning(tmp_path, caplog, content):
    log = view({"quota_dir": tmp_path}, LIMIT, WINDOW)
    path = log.store.path
    path.write_text(content)
    with caplog.at_level(logging.WARNING, logger=QUOTA_LOGGER):
        log.done(log.acquire()[1])
        log.done(log.acquire()[1])
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and str(path) in warnings[0], warnings
    assert len(json.loads(path.read_text())["calls"]) == 2, "the file is a quota log again"
