"""``zquant-celery-worker``: a Celery worker that executes the steps of runs whose
``ZQUANT_EXECUTOR`` is ``celery`` (README "Scaling out"; deploy/systemd/zquant-celery-worker.service).

It consumes ``ZQUANT_CELERY_QUEUE`` on ``ZQUANT_CELERY_BROKER_URL``; every other argument goes to
``celery worker`` as it is (``--concurrency``, ``-n``, ``--loglevel``). A step reaches the
warehouse, Tushare and the Dagster instance with this host's own environment, so every host
names the same ones (and the same quota store).
"""

from __future__ import annotations

import importlib
import sys

from zquant_orchestration.execution import STEP_PRELOAD_MODULES, worker_app
from zquant_orchestration.settings import SettingsError, get_settings


def main(argv: list[str] | None = None) -> int:
    try:
        settings = get_settings()
        app = worker_app(settings)
    except SettingsError as exc:
        print(f"zquant-celery-worker: {exc}", file=sys.stderr)
        return 2
    # Imported once here, before the pool forks its processes: each step then starts without
    # importing Dagster, pandas and the definitions again.
    for module in STEP_PRELOAD_MODULES:
        importlib.import_module(module)
    args = list(sys.argv[1:] if argv is None else argv)
    app.worker_main(["worker", "--queues", settings.celery_queue, *args])
    return 0


if __name__ == "__main__":
    sys.exit(main())
