"""ZQUANT_EXECUTOR picks where steps execute; the embedded default stays the multiprocess executor."""

from __future__ import annotations

import dagster as dg
from dagster._serdes import serialize_value

from zquant_orchestration.celery_worker import main as celery_worker_main
from zquant_orchestration.execution import build_executor
from zquant_orchestration.settings import get_settings


def test_steps_run_in_processes_of_the_runs_host_by_default(monkeypatch):
    monkeypatch.delenv("ZQUANT_EXECUTOR", raising=False)
    assert build_executor().name == dg.multiprocess_executor.name


def test_the_celery_executor_is_a_setting(monkeypatch):
    monkeypatch.setenv("ZQUANT_EXECUTOR", "celery")
    monkeypatch.setenv("ZQUANT_CELERY_BROKER_URL", "pyamqp://zquant:s3cret@mq.internal:5672//")
    executor = build_executor()
    assert executor.name == "celery"

    # The broker's password is in nothing Dagster stores or shows of a job (its snapshot).
    @dg.op
    def step():
        pass

    @dg.job(executor_def=executor)
    def one_step():
        step()

    snapshot = serialize_value(one_step.get_job_snapshot())
    assert "s3cret" not in snapshot


def test_a_broker_that_is_not_rabbitmq_is_one_line_and_no_worker(monkeypatch, capsys):
    monkeypatch.setenv("ZQUANT_CELERY_BROKER_URL", "redis://:s3cret@127.0.0.1:6379/0")
    assert celery_worker_main([]) == 2
    err = capsys.readouterr().err
    assert err == ("zquant-celery-worker: ZQUANT_CELERY_BROKER_URL must be a Celery broker URL like "
                   "pyamqp://user:password@host:5672//\n")


def test_the_queue_defaults_to_dagster_celerys_own(monkeypatch):
    monkeypatch.delenv("ZQUANT_CELERY_QUEUE", raising=False)
    assert get_settings().celery_queue == "dagster"
