"""The statement tables in the warehouse: merges of one period take turns on Postgres, and a
point-in-time read puts no free text into SQL."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text

from zquant_orchestration.lib.report_periods import parse_period
from zquant_orchestration.lib.warehouse import Warehouse
from zquant_orchestration.lib.warehouse.tables import version_keys

from .dialects import postgres_url, sqlite_url

GATE = 918273  # an advisory lock the test holds to keep inserts into `income` waiting
WAITING = ("SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
           "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")


def test_two_concurrent_merges_of_one_period_land_each_version_once(tmp_path, dataset):
    url = postgres_url(tmp_path)
    rows = dataset.truth("income", "20240930", "20240930", ts_codes=["000001.SZ", "600519.SH"])
    assert len(rows) >= 2
    setup = Warehouse(url)
    setup.ensure_schema()
    # Two runs of the same period staged the same versions, as two concurrent runs do.
    for run_id in ("run-a", "run-b"):
        setup.stage_rows("income", run_id, rows)
    # The race window, held open: every INSERT into income first waits for the gate. Without a
    # lock of their own both merges delete (nothing yet), then both wait here to insert.
    with setup.engine.begin() as conn:
        conn.execute(text(f"CREATE FUNCTION gate() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                          f"PERFORM pg_advisory_xact_lock_shared({GATE}); RETURN NULL; END $$"))
        conn.execute(text("CREATE TRIGGER gate BEFORE INSERT ON income FOR EACH STATEMENT EXECUTE FUNCTION gate()"))
    merges = [Warehouse(url) for _ in range(2)]
    for wh in merges:
        wh.ensure_schema()
    results, errors = {}, []

    def merge(run_id: str, wh: Warehouse) -> None:
        try:
            results[run_id] = wh.merge_staged("income", run_id, parse_period("20240930"))
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    with setup.engine.connect() as gate:
        gate.execute(text(f"SELECT pg_advisory_lock({GATE})"))
        threads = [threading.Thread(target=merge, args=(run_id, wh), daemon=True) for run_id, wh in zip(
            ("run-a", "run-b"), merges, strict=True)]
        for thread in threads:
            thread.start()
        # Both merges are inside their transactions, each waiting on a lock (the gate, or the
        # other merge); only then may they go on.
        deadline = time.monotonic() + 60
        while setup.scalar(WAITING) < 2:
            assert not errors, errors
            assert time.monotonic() < deadline, "the two merges never both waited inside their transactions"
            time.sleep(0.02)
        gate.execute(text(f"SELECT pg_advisory_unlock({GATE})"))
        gate.commit()
        for thread in threads:
            thread.join(60)
    assert not errors, errors
    keys = version_keys("income")
    copies = setup.query(f"SELECT {', '.join(keys)}, COUNT(*) AS n FROM income GROUP BY {', '.join(keys)}")
    assert len(copies) == len(rows) and set(copies.n) == {1}, "exactly one row per version"
    assert sorted(results.values()) == [(len(rows), 0), (len(rows), len(rows))], "the later merge replaced the rows"
    assert setup.scalar("SELECT COUNT(*) FROM stage_income") == 0
    for wh in (setup, *merges):
        wh.engine.dispose()


@pytest.mark.parametrize("name", ["daily_bars", "income_pit", "stage_income", "income_pit; DROP TABLE income; --"])
def test_point_in_time_reads_only_the_statement_tables(tmp_path, name):
    wh = Warehouse(sqlite_url(tmp_path))
    wh.ensure_schema()
    with pytest.raises(ValueError) as refused:
        wh.point_in_time(name, "20241231")
    assert str(refused.value) == ("point-in-time reads cover the statement tables income, balancesheet, cashflow, "
                                  f"fina_indicator only, not {name!r}; name one of them")
    assert wh.point_in_time("income", "20241231").empty, "the statement tables are read as before"
    wh.engine.dispose()
