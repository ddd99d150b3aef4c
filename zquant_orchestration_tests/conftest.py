from __future__ import annotations

import pytest

from zquant_orchestration.lib.tushare_server import Dataset, LocalTushareServer

# The server's "today" in tests: fixed, so truths do not move with the calendar.
AS_OF = "20241231"

# Files whose tests share a module fixture and build on each other (a `dagster dev`,
# the production deployment): one worker runs each of them whole, in order.
ONE_WORKER_FILES = ("test_readme_demo.py", "test_production.py", "test_task_automation.py", "test_tradable.py")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`--dist load` (pyproject's addopts), except that each of ONE_WORKER_FILES is one unit.

    xdist's `loadgroup` would do this with marks, but it renames test ids through an
    attribute pytest 9.2 no longer reads, so its groups are silently split. Units go out
    biggest first, so the long files start at once and single tests fill in around them."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureFilesWhole(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return path if path.rsplit("/", 1)[-1] in ONE_WORKER_FILES else nodeid

    return SharedFixtureFilesWhole(config, log)


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    """One shared dataset (building one is not free); servers built on it share its truth."""
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


@pytest.fixture(autouse=True)
def _own_quota_logs(tmp_path, monkeypatch):
    """Each test keeps its own host-wide call logs: local servers reuse ports, and a quota
    a test taught one server must not slow the next test down."""
    monkeypatch.setenv("ZQUANT_QUOTA_DIR", str(tmp_path / "tushare_quota"))


@pytest.fixture(autouse=True)
def _core_datasets_only(monkeypatch):
    """Tests of the foundation run it alone, as their assertions describe it; the tests of the
    catalog's datasets (test_datasets*.py) choose ZQUANT_DATASETS themselves."""
    monkeypatch.setenv("ZQUANT_DATASETS", "none")


@pytest.fixture(autouse=True, scope="session")
def _drop_postgres_test_databases():
    from .dialects import drop_test_databases

    yield
    drop_test_databases()
