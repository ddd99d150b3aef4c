"""``run_notification_sensor``: tells another system about finished runs.

``ZQUANT_WEBHOOK_URL`` receives a JSON POST for every failed run (and every successful one
with ``ZQUANT_WEBHOOK_ON_SUCCESS=1``): job, run id, partitions, status, duration, error
summary and a link to the run in the UI (``ZQUANT_UI_URL``, default http://127.0.0.1:3000).
When more than ``ZQUANT_WEBHOOK_MAX_MESSAGES`` (5) runs finish between two ticks (a
backfill failing wholesale), one digest replaces them: counts by job and status and the
first runs with their errors. Delivery is retried and logged; it never fails the sensor.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import dagster as dg

from zquant_orchestration.lib.webhook import post_json
from zquant_orchestration.settings import get_settings

DIGEST_SAMPLE = 10
# Run storage may keep update times to the second: every tick re-reads this much before its
# cursor and skips the runs it has already sent, so no run slips between two ticks.
OVERLAP_SECONDS = 5.0


def _settings() -> tuple[str | None, bool, int, str]:
    settings = get_settings()
    url = settings.webhook_url.get_secret_value() if settings.webhook_url else None
    return url, settings.notify_on_success, settings.webhook_max_messages, settings.ui_base_url


@dg.sensor(minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="POSTs finished runs (failures; successes if configured) to ZQUANT_WEBHOOK_URL.")
def run_notification_sensor(context: dg.SensorEvaluationContext):
    url, on_success, max_messages, ui = _settings()
    if not url:
        return dg.SkipReason("ZQUANT_WEBHOOK_URL is not set: no notifications")
    cursor = json.loads(context.cursor or "{}")
    since = datetime.fromtimestamp(cursor["after"], tz=UTC) if "after" in cursor else None
    statuses = [dg.DagsterRunStatus.FAILURE] + ([dg.DagsterRunStatus.SUCCESS] if on_success else [])
    if since is None:  # first tick: start from now, do not replay the history
        now = datetime.now(UTC)
        earlier = context.instance.get_run_records(
            dg.RunsFilter(statuses=statuses, updated_after=now - timedelta(seconds=OVERLAP_SECONDS)), limit=1000)
        return dg.SensorResult(cursor=json.dumps({"after": now.timestamp(),
                                                  "seen": sorted(r.dagster_run.run_id for r in earlier)}))
    window = since - timedelta(seconds=OVERLAP_SECONDS)
    records = context.instance.get_run_records(dg.RunsFilter(statuses=statuses, updated_after=window),
                                               order_by="update_timestamp", ascending=True, limit=1000)
    seen = set(cursor.get("seen", []))
    recent = {r.dagster_run.run_id: _utc(r.update_timestamp).timestamp() for r in records}
    records = [r for r in records if r.dagster_run.run_id not in seen]
    if not records:
        return dg.SkipReason("no run finished since the last tick")
    messages = [run_message(context.instance, r, ui) for r in records]
    if len(messages) > max_messages:
        messages = [digest(messages)]
    for message in messages:
        post_json(url, message, logger=context.log)
    after = max(since.timestamp(), *recent.values())
    keep = sorted(run_id for run_id, ts in recent.items() if ts >= after - 2 * OVERLAP_SECONDS)
    return dg.SensorResult(cursor=json.dumps({"after": after, "seen": keep}))


def _utc(moment: datetime) -> datetime:
    """Run storage keeps naive UTC timestamps on some backends."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def run_message(instance: dg.DagsterInstance, record, ui: str) -> dict:
    run = record.dagster_run
    tags = run.tags
    first = tags.get("dagster/asset_partition_range_start") or tags.get("dagster/partition")
    last = tags.get("dagster/asset_partition_range_end") or tags.get("dagster/partition")
    duration = (record.end_time - record.start_time) if record.start_time and record.end_time else None
    return {
        "kind": "run",
        "job": run.job_name,
        "run_id": run.run_id,
        "status": run.status.value,
        "partitions": {"first": first, "last": last} if first else None,
        "backfill_id": tags.get("dagster/backfill"),
        "duration_seconds": round(duration, 3) if duration is not None else None,
        "error": error_summary(instance, run) if run.status == dg.DagsterRunStatus.FAILURE else None,
        "url": f"{ui}/runs/{run.run_id}",
    }


def error_summary(instance: dg.DagsterInstance, run) -> str:
    """The first step failure's message (the cause), else the run failure's, one line."""
    failures = instance.all_logs(run.run_id, of_type={dg.DagsterEventType.STEP_FAILURE,
                                                       dg.DagsterEventType.RUN_FAILURE})
    for event in sorted(failures, key=lambda e: e.dagster_event.event_type != dg.DagsterEventType.STEP_FAILURE):
        data = event.dagster_event.event_specific_data
        error = getattr(data, "error", None)
        text = (error.message if error else None) or event.dagster_event.message or ""
        text = re.sub(r"^[\w.]+(Error|Failure|Exception): ", "", text.strip())
        if text:
            step = f"{event.step_key}: " if event.step_key else ""
            return (step + " ".join(text.split()))[:500]
    return "the run failed without an error message (e.g. its process was killed)"


def digest(messages: list[dict]) -> dict:
    return {
        "kind": "digest",
        "runs": len(messages),
        "by_status": dict(Counter(m["status"] for m in messages)),
        "by_job": dict(Counter(m["job"] for m in messages)),
        "backfills": sorted({m["backfill_id"] for m in messages if m["backfill_id"]}),
        "errors": dict(Counter(m["error"] for m in messages if m["error"]).most_common(5)),
        "sample": messages[:DIGEST_SAMPLE],
    }
