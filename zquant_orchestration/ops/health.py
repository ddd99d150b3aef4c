"""Health of a deployment: the Dagster instance (and its daemon), the warehouse, Tushare.

Each check returns one line. A check never writes: the instance and the warehouse are only
read, and the Tushare check is one small ``trade_cal`` call that goes through the same
host-wide quota as every run (so a health probe every minute cannot push a sync over it).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from zquant_orchestration.lib import dates
from zquant_orchestration.settings import get_settings

# A daemon writes a heartbeat every 30 s; two minutes of silence means it is not running.
DAEMON_SILENCE_SECONDS = 120


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok' if self.ok else 'FAIL':4}  {self.name:9}  {self.detail}"


def check_instance(require_daemon: bool = True) -> Check:
    home = get_settings().dagster_home
    if not home:
        return Check("instance", False, "DAGSTER_HOME is not set: point it at the folder holding dagster.yaml")
    from dagster import DagsterInstance

    try:
        instance = DagsterInstance.get()
        runs = instance.get_runs_count()
        heartbeats = instance.get_daemon_heartbeats()
        required = instance.get_required_daemon_types()
    except Exception as exc:  # noqa: BLE001 - any failure to reach storage is the finding
        return Check("instance", False, f"cannot read the run storage of {home}: "
                                        f"{_first_line(exc)}")
    storage = type(instance.run_storage).__name__.replace("RunStorage", "").lower() or "run storage"
    detail = f"{storage} storage, {runs} runs"
    if not require_daemon:
        return Check("instance", True, detail)
    now = time.time()
    silent = sorted(t for t in required
                    if t not in heartbeats or now - heartbeats[t].timestamp > DAEMON_SILENCE_SECONDS)
    if silent:
        return Check("instance", False, f"{detail}; no daemon heartbeat for {DAEMON_SILENCE_SECONDS} s from "
                                        f"{', '.join(silent)}: start `dagster-daemon run` (schedules, sensors "
                                        "and queued runs wait for it)")
    return Check("instance", True, f"{detail}; daemon alive ({len(required)} daemons)")


def check_warehouse() -> Check:
    from zquant_orchestration.lib.redact import first_line, redact_url
    from zquant_orchestration.lib.trading_calendar import shipped_through
    from zquant_orchestration.lib.warehouse import Warehouse, default_url
    from zquant_orchestration.lib.warehouse.warehouse import normalize_url

    url = default_url()
    where = redact_url(normalize_url(url))
    warehouse = None
    try:
        warehouse = Warehouse(url)
        latest = warehouse.ping()
    except Exception as exc:  # noqa: BLE001
        # The code location reads the same URL at load and falls back the same way.
        return Check("warehouse", False, f"cannot read {where}: {first_line(exc, url)} (check ZQUANT_WAREHOUSE_URL); "
                                         "while the warehouse is unreachable the code location uses the shipped "
                                         f"calendar (through {shipped_through()}) and stock list")
    finally:
        if warehouse is not None:
            warehouse.engine.dispose()
    landed = ", ".join(f"{t} {d or 'empty'}" for t, d in latest.items())
    return Check("warehouse", True, f"{where}; latest day: {landed}")


def check_tushare() -> Check:
    from zquant_orchestration.defs.tushare.resources import TushareResource
    from zquant_orchestration.lib.tushare import TushareError

    secret = get_settings().tushare_token
    token = secret.get_secret_value() if secret else None
    # Two tries and a short timeout: a probe reports, it does not ride out an outage.
    resource = TushareResource(token=token or None, max_attempts=2, timeout_seconds=10.0, backoff_seconds=0.5)
    today = date.today()
    try:
        with resource.process_config_and_initialize_cm() as tushare:
            frame = tushare.query("trade_cal", {"exchange": "SSE", "end_date": dates.compact(today),
                                                "start_date": dates.compact(today - timedelta(days=10))})
            used, limit = tushare.quota_usage("trade_cal")
            endpoint = tushare.endpoint
    except TushareError as exc:
        return Check("tushare", False, _first_line(exc))
    except Exception as exc:  # noqa: BLE001 - a bad setting (e.g. TUSHARE_CALLS_PER_MINUTE) is a finding too
        return Check("tushare", False, _first_line(exc))
    who = "token from TUSHARE_TOKEN" if token else "no TUSHARE_TOKEN: the embedded local server"
    if frame.empty:
        return Check("tushare", False, f"{endpoint} answered trade_cal with no rows for the last 10 days "
                                       "(expected the calendar): the service is faulty, try again later")
    return Check("tushare", True, f"{endpoint} ({who}); trade_cal answered {len(frame)} rows; "
                                  f"quota {used}/{limit} calls in the current window")


CHECKS: dict[str, Callable[[], Check]] = {
    "instance": check_instance, "warehouse": check_warehouse, "tushare": check_tushare}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    # dagster.yaml's `env:` settings fail with pages of config schema; the cause is one line.
    missing = re.search(r'environment variable "(\w+)" which is not set', text)
    if missing:
        return f"{missing.group(1)} is not set (dagster.yaml reads it): set it in the environment"
    return text.splitlines()[0][:300]
