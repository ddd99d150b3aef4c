"""The quota is one per host: processes that follow or overlap one another, calls answered
late, and processes killed mid-call never put more than the limit into one window."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import threading
import time

import pytest

from zquant_orchestration.lib.tushare.rate_limit import STALE_WINDOWS, SharedCallLog, limiter_for

from .tushare_helpers import max_calls_in_window

LIMIT, WINDOW = 3, 1.0


def _burst(path, calls, answer_delay, out):
    log = SharedCallLog(path, LIMIT, WINDOW)
    for _ in range(calls):
        _, ticket = log.acquire()
        out.put(time.time())  # the "arrival" at the server: after sending, before the answer
        time.sleep(answer_delay)
        log.done(ticket)


def _run_processes(path, count, calls, answer_delay=0.0, stagger=0.0) -> list[float]:
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = []
    for _ in range(count):
        procs.append(ctx.Process(target=_burst, args=(path, calls, answer_delay, out)))
        procs[-1].start()
        time.sleep(stagger)
    stamps = [out.get(timeout=60) for _ in range(count * calls)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return stamps


def test_a_process_that_starts_as_another_ends_waits_for_its_calls_to_leave_the_window(tmp_path):
    path = tmp_path / "daily.json"
    first = _run_processes(path, 1, LIMIT)  # a whole quota, then the process exits
    second = _run_processes(path, 1, 1)
    assert second[0] - first[0] >= WINDOW, "the next step's first call waited out the last step's calls"
    assert max_calls_in_window(first + second, WINDOW) <= LIMIT


def test_overlapping_processes_share_one_quota(tmp_path):
    stamps = _run_processes(tmp_path / "daily.json", 4, 4, stagger=0.05)
    assert len(stamps) == 16
    assert max_calls_in_window(stamps, WINDOW) <= LIMIT


def test_a_call_answered_late_counts_its_window_from_the_answer(tmp_path):
    # Each answer takes 0.4 s: windows counted from the send would let 4 arrivals into 1 s.
    stamps = _run_processes(tmp_path / "daily.json", 3, 3, answer_delay=0.4)
    assert max_calls_in_window(stamps, WINDOW) <= LIMIT


def test_a_call_of_a_killed_process_counts_until_it_is_stale(tmp_path):
    path = tmp_path / "daily.json"
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()

    def hang():
        log = SharedCallLog(path, 1, 0.2)
        log.acquire()  # sent, never answered
        ready.set()
        time.sleep(60)

    proc = ctx.Process(target=hang)
    proc.start()
    assert ready.wait(30)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    started = time.time()
    waited, ticket = SharedCallLog(path, 1, 0.2).acquire()
    assert time.time() - started >= 0.2 * STALE_WINDOWS * 0.9, "the in-flight call held its slot"


def test_the_server_s_number_is_learned_by_every_process_but_not_forever(tmp_path, monkeypatch):
    log = limiter_for("http://x\0token", "daily", 10, WINDOW, quota_dir=tmp_path)
    other = SharedCallLog(log.path, 10, WINDOW)  # another process's view of the same file
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


def test_the_file_names_the_api_but_never_holds_the_token(tmp_path):
    log = limiter_for("http://x\0secret-token-123", "daily", 5, WINDOW, quota_dir=tmp_path)
    log.done(log.acquire()[1])
    assert log.path.name.startswith("daily-")
    for f in tmp_path.iterdir():
        assert "secret-token-123" not in f.name and "secret-token-123" not in f.read_text()


QUOTA_LOGGER = "zquant_orchestration.lib.tushare.rate_limit"


@pytest.mark.parametrize("ahead", ["blocked_until", "learned_limit", "calls"])
def test_a_block_or_stamp_from_before_the_clock_went_back_is_dropped(tmp_path, caplog, ahead):
    """Stamps an hour ahead mean the clock stepped back: calls go on within a window (here
    one second), not an hour later, and a warning names the file."""
    path = tmp_path / "daily.json"
    later = time.time() + 3600
    state = {"calls": {f"old-{i}": [later, 1] for i in range(LIMIT)} if ahead == "calls" else {},
             "blocked_until": later if ahead == "blocked_until" else 0.0}
    if ahead == "learned_limit":
        state["learned_limit"] = [1, later]  # without the drop: one call a window for the next two hours
    path.write_text(json.dumps(state))
    log = SharedCallLog(path, LIMIT, WINDOW)

    def calls():
        for _ in range(LIMIT):
            log.done(log.acquire()[1])

    with caplog.at_level(logging.WARNING, logger=QUOTA_LOGGER):
        caller = threading.Thread(target=calls, daemon=True)  # a daemon: a regression waits, not the suite
        caller.start()
        caller.join(timeout=5)
    assert not caller.is_alive(), "the calls went out within seconds, not an hour later"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and str(path) in warnings[0] and "future" in warnings[0], warnings


@pytest.mark.parametrize("content", ["[1, 2, 3]", '{"calls": "x"}', '{"calls": {"a": 5}}',
                                     '{"calls": {}, "blocked_until": "soon"}', '{"calls": {}, "learned_limit": 5}',
                                     '{"calls": {}, "blocked_until": NaN}', "not json"])
def test_a_quota_file_of_the_wrong_shape_is_started_afresh_with_one_warning(tmp_path, caplog, content):
    path = tmp_path / "daily.json"
    path.write_text(content)
    log = SharedCallLog(path, LIMIT, WINDOW)
    with caplog.at_level(logging.WARNING, logger=QUOTA_LOGGER):
        log.done(log.acquire()[1])
        log.done(log.acquire()[1])
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and str(path) in warnings[0], warnings
    assert len(json.loads(path.read_text())["calls"]) == 2, "the file is a quota log again"
