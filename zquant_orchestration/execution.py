"""Where a run's steps execute: ``ZQUANT_EXECUTOR`` picks it, so a deployment changes it in its
environment file, not in code.

- ``multiprocess`` (the default): each step in a process of its own on the run's host.
- ``celery``: each step is a task on a Celery queue (``ZQUANT_CELERY_QUEUE``) of the RabbitMQ
  broker at ``ZQUANT_CELERY_BROKER_URL``, executed by whichever worker host takes it
  (``celery_worker.py``, deploy/systemd/zquant-celery-worker.service; README "Scaling out").

Either way the run's own process hands out the Tushare pools' slots through the Dagster
instance before a step starts (dagster-celery's execution loop claims them as the
multiprocess executor does), so one step per Tushare API at a time holds across every host
that shares the instance.
"""

from __future__ import annotations

import dagster as dg

from zquant_orchestration.settings import Settings, SettingsError, get_settings

# What a step process needs before it runs our code: Dagster, the definitions module, and what a
# step imports on its own to reopen the instance (the storage classes, and upath through
# the IO manager's module). Left out, every step would import them itself, a CPU cost per
# step that the forkserver (and a Celery worker's pool) pays once (docs/benchmarks.md).
STEP_PRELOAD_MODULES = ["dagster", "dagster._core.storage.base_storage", "upath", "zquant_orchestration.definitions"]

# Results go back to the run's process over the broker itself: the instance already holds every
# event, so a result needs no store of its own.
CELERY_RESULT_BACKEND = "rpc://"
# A task is acknowledged when its step ends, not when a worker takes it: a worker host that dies
# mid-step (power, kill -9) drops its broker connection, and RabbitMQ hands the step to the next
# worker on the queue, in the same run. A step's pool process dying alone (the OOM killer) is
# reported as the step's failure instead of being re-queued forever; the run's retry takes it.
# One step per pool process at a time, each in a fresh process: a step's memory goes back to
# the system when it ends, as with the multiprocess executor.
CELERY_CONFIG = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": False,
    "worker_prefetch_multiplier": 1,
    "worker_max_tasks_per_child": 1,
    "broker_connection_retry_on_startup": True,
}


def build_executor(settings: Settings | None = None) -> dg.ExecutorDefinition:
    settings = settings or get_settings()
    if settings.executor == "celery":
        return _celery_executor(settings)
    # Steps run in processes of their own, forked from a server that imported Dagster and
    # the definitions once per run: a step starts without re-importing Dagster and pandas
    # (seconds of CPU each, docs/benchmarks.md). Four at a time (default: one per core), so
    # the three market APIs are fetched side by side, each waiting on its own quota, even on
    # a two-core host.
    return dg.multiprocess_executor.configured({
        "max_concurrent": 4,
        "start_method": {"forkserver": {"preload_modules": STEP_PRELOAD_MODULES}},
    })


def celery_app_args(settings: Settings) -> dict:
    """The Celery app's arguments, the same on the side that sends steps and on the workers."""
    from dagster._core.execution.retries import RetryMode

    executor = _celery_module().executor.CeleryExecutor(retries=RetryMode(RetryMode.ENABLED),
                                                        **_celery_options(settings))
    return executor.app_args()


def worker_app(settings: Settings):
    """The Celery app a worker host runs: dagster-celery's step task on the same broker and queue
    settings as the sending side (``celery_worker.py`` starts it on ``ZQUANT_CELERY_QUEUE``)."""
    celery = _celery_module()
    app = celery.make_app.make_app(celery_app_args(settings))
    celery.tasks.create_task(app)
    return app


def _celery_executor(settings: Settings) -> dg.ExecutorDefinition:
    # The broker URL (and its password) stays in this process: configured here, it is in no
    # run's config, and the steps sent to workers carry only the job's address and the run id.
    return _celery_module().celery_executor.configured(_celery_options(settings))


def _celery_options(settings: Settings) -> dict:
    """Broker, result backend and Celery config: one set for the sending side and the workers."""
    return {"broker": settings.celery_broker(), "backend": CELERY_RESULT_BACKEND,
            "config_source": {**CELERY_CONFIG, "task_default_queue": settings.celery_queue}}


def _celery_module():
    try:
        import dagster_celery
        import dagster_celery.executor
        import dagster_celery.make_app
        import dagster_celery.tasks
    except ImportError:
        raise SettingsError("ZQUANT_EXECUTOR=celery needs dagster-celery: pip install -e '.[celery]'") from None
    return dagster_celery
