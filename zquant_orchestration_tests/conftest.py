from __future__ import annotations

import pytest

from zquant_orchestration.lib.tushare_server import Dataset, LocalTushareServer

# The server's "today" in tests: fixed, so truths do not move with the calendar.
AS_OF = "20241231"

# Files whose tests share a module fixture and build on each other (a `dagster dev`, the
# production deployment), or whose tests must not crowd each other (the Celery hosts' steps
# hand over inside a quota window): one worker runs each of them whole, in order.
ONE_WORKER_FILES = ("test_readme_demo.py", "test_production.py", "test_task_automation.py", "test_tradable.py",
                    "test_celery_workers.py")
# Files whose module fixture lands a warehouse per dialect: one worker runs each dialect's
# tests, so that each landing is made once rather than once per worker.
ONE_WORKER_PER_DIALECT_FILES = ("test_read_api.py",)
DIALECTS = ("sqlite", "postgres")

# The longest work units (a file kept whole, or a test), longest first: they start first, so
# that the suite does not end waiting on one of them while the other workers are idle. The
# rest follows: the other slow tests, then the fast tier's.
LONG_FIRST = (
    "test_production.py", "test_task_automation.py", "test_readme_demo.py", "test_celery_workers.py",
    "test_datasets.py::test_a_week_of_every_new_dataset", "test_read_api.py", "test_job_backfill.py",
    "test_parquet_export.py::test_duckdb", "test_qlib_export.py::test_a_month", "test_finance_cli.py",
    "test_automation.py::test_the_evening_job", "test_kill_and_rerun.py", "test_datasets.py::test_the_evening_job",
    "test_datasets.py::test_a_day_of_every_dataset", "test_shared_quota.py", "test_fault_soak.py",
    "test_finance_assets.py", "test_tradable.py",
)


def _unit(nodeid: str) -> str:
    """The work unit of a test: its file for ONE_WORKER_FILES, its file and dialect for
    ONE_WORKER_PER_DIALECT_FILES, else the test itself."""
    path = nodeid.split("::", 1)[0]
    name = path.rsplit("/", 1)[-1]
    if name in ONE_WORKER_FILES:
        return path
    if name in ONE_WORKER_PER_DIALECT_FILES and "[" in nodeid:
        dialect = nodeid.split("[", 1)[1].split("-", 1)[0].rstrip("]")
        if dialect in DIALECTS:
            return f"{path}::{dialect}"
    return nodeid


def _rank(item: pytest.Item) -> int:
    """Where an item's unit starts: LONG_FIRST's order, then the other slow tests, then the fast."""
    nodeid = item.nodeid.split("/", 1)[-1]
    for rank, prefix in enumerate(LONG_FIRST):
        if nodeid.startswith(prefix):
            return rank
    return len(LONG_FIRST) + (0 if item.get_closest_marker("slow") else 1)


def pytest_collection_modifyitems(config, items):
    """Long units first (LONG_FIRST). A stable sort on a key that is the same for every test
    of a unit kept whole: those run in their file's order, as they build on each other."""
    items.sort(key=_rank)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`--dist load` (pyproject's addopts), except that the tests of a unit (``_unit``) go to
    one worker together; units go out in the collection's order (``pytest_collection_modifyitems``).

    xdist's `loadgroup` would do this with marks, but it renames test ids through an
    attribute pytest 9.2 no longer reads, so its groups are silently split."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    config.option.loadscopereorder = False  # the collection's order, not the biggest unit first

    class SharedFixtureUnits(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _unit(nodeid)

    return SharedFixtureUnits(config, log)


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
