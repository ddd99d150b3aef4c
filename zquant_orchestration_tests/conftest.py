from __future__ import annotations

import pytest

from zquant_orchestration.lib.tushare_server import Dataset, LocalTushareServer

# The server's "today" in tests: fixed, so truths do not move with the calendar.
AS_OF = "20241231"


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    """One shared dataset (building one costs ~0.6 s); servers built on it share its truth."""
    return Dataset(as_of=AS_OF)


@pytest.fixture
def local_server(dataset, tmp_path):
    """A factory of started local servers on the shared dataset; all are stopped after the test."""
    started: list[LocalTushareServer] = []

    def start(**options) -> LocalTushareServer:
        options.setdefault("dataset", dataset)
        options.setdefault("log_path", tmp_path / f"requests-{len(started)}.jsonl")
        server = LocalTushareServer(**options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def max_calls_in_window(times: list[float], window: float) -> int:
    """The most arrivals inside any window of ``window`` seconds (two pointers over sorted times)."""
    times = sorted(times)
    best = lo = 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


@pytest.fixture(autouse=True)
def _own_quota_logs(tmp_path, monkeypatch):
    """Each test keeps its own host-wide call logs: local servers reuse ports, and a quota
    a test taught one server must not slow the next test down."""
    monkeypatch.setenv("ZQUANT_QUOTA_DIR", str(tmp_path / "tushare_quota"))


@pytest.fixture(autouse=True, scope="session")
def _drop_postgres_test_databases():
    from .dialects import drop_test_databases

    yield
    drop_test_databases()
