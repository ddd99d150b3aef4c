"""Run statistics per job and per asset, read from the Dagster instance's run storage.

Everything comes from Dagster's own records (run records for runs, the event log's step
stats for assets), so it works the same on the SQLite default and on Postgres, and there is
no table of ours to keep in step.

A run counts for an asset when its execution plan had a step producing that asset; the
asset's outcome in that run is the step's outcome (a step skipped because an upstream step
failed counts as a failure: the asset did not land).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.storage.dagster_run import RunRecord

# Dagster's names for runs launched by selecting assets rather than a job.
ASSET_JOB_PREFIX = "__ASSET_JOB"
PAGE = 500

FINISHED = {DagsterRunStatus.SUCCESS: "success", DagsterRunStatus.FAILURE: "failure",
            DagsterRunStatus.CANCELED: "canceled"}


@dataclass
class Outcome:
    """One run (or one asset's step in a run)."""

    status: str  # success | failure | canceled | running
    start: float | None
    end: float | None

    @property
    def duration(self) -> float | None:
        return self.end - self.start if self.start is not None and self.end is not None else None


@dataclass
class Stats:
    kind: str  # job | asset
    name: str
    runs: int = 0
    success: int = 0
    failure: int = 0
    canceled: int = 0
    running: int = 0
    success_rate: float | None = None
    avg_seconds: float | None = None
    p95_seconds: float | None = None
    last_run_at: str | None = None
    last_status: str | None = None
    _durations: list[float] = field(default_factory=list, repr=False)
    _last: float = field(default=-math.inf, repr=False)

    def add(self, outcome: Outcome, created: float) -> None:
        self.runs += 1
        setattr(self, outcome.status, getattr(self, outcome.status) + 1)
        if outcome.status == "success" and outcome.duration is not None:
            self._durations.append(outcome.duration)
        when = outcome.start if outcome.start is not None else created
        if when >= self._last:
            self._last = when
            self.last_run_at = datetime.fromtimestamp(when, UTC).isoformat(timespec="seconds")
            self.last_status = outcome.status

    def finish(self) -> Stats:
        finished = self.success + self.failure + self.canceled
        self.success_rate = round(self.success / finished, 4) if finished else None
        if self._durations:
            self.avg_seconds = round(sum(self._durations) / len(self._durations), 3)
            self.p95_seconds = round(percentile(self._durations, 0.95), 3)
        return self

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least q of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def run_stats(instance: DagsterInstance, since: datetime | None = None,
              job: str | None = None) -> tuple[list[Stats], list[Stats]]:
    """(per-job stats, per-asset stats), each sorted by name. Durations are of successful runs
    (or steps): a failure's duration says when it gave up, not how long the work takes."""
    jobs: dict[str, Stats] = {}
    assets: dict[str, Stats] = {}
    plans: dict[str, dict[str, list[str]]] = {}
    for record in _records(instance, RunsFilter(job_name=job, created_after=since)):
        run = record.dagster_run
        created = record.create_timestamp.timestamp()
        run_outcome = Outcome(FINISHED.get(run.status, "running"), record.start_time, record.end_time)
        jobs.setdefault(run.job_name, Stats("job", run.job_name)).add(run_outcome, created)
        step_assets = _step_assets(instance, run.execution_plan_snapshot_id, plans)
        if not step_assets:
            continue
        stats = {s.step_key: s for s in instance.get_run_step_stats(run.run_id)}
        for step_key, keys in step_assets.items():
            outcome = _step_outcome(stats.get(step_key), run_outcome)
            for key in keys:
                assets.setdefault(key, Stats("asset", key)).add(outcome, created)
    return ([s.finish() for _, s in sorted(jobs.items())], [s.finish() for _, s in sorted(assets.items())])


def _records(instance: DagsterInstance, filters: RunsFilter) -> Iterator[RunRecord]:
    cursor = None
    while True:
        page = instance.get_run_records(filters=filters, limit=PAGE, cursor=cursor)
        yield from page
        if len(page) < PAGE:
            return
        cursor = page[-1].dagster_run.run_id


def _step_assets(instance: DagsterInstance, snapshot_id: str | None,
                 cache: dict[str, dict[str, list[str]]]) -> dict[str, list[str]]:
    """step key -> the asset keys it materializes, for the steps the run planned to execute."""
    if not snapshot_id:
        return {}
    if snapshot_id not in cache:
        plan = instance.get_execution_plan_snapshot(snapshot_id)
        planned = set(plan.step_keys_to_execute)
        cache[snapshot_id] = {
            step.key: keys for step in plan.steps if step.key in planned
            if (keys := [o.properties.asset_key.to_user_string() for o in step.outputs
                         if o.properties and o.properties.asset_key and not o.properties.asset_check_key])}
    return cache[snapshot_id]


def _step_outcome(step, run: Outcome) -> Outcome:
    status = getattr(getattr(step, "status", None), "value", None)
    if status == "SUCCESS":
        return Outcome("success", step.start_time, step.end_time)
    if status == "FAILURE":
        return Outcome("failure", step.start_time, step.end_time)
    if run.status == "running":
        return Outcome("running", getattr(step, "start_time", None), None)
    # The run ended and this step did not succeed: skipped after an upstream failure, or
    # never reached because the run was canceled or crashed.
    return Outcome("canceled" if run.status == "canceled" else "failure",
                   getattr(step, "start_time", None), getattr(step, "end_time", None))


COLUMNS = ("kind", "name", "runs", "success", "failure", "canceled", "running", "success_rate",
           "avg_seconds", "p95_seconds", "last_run_at", "last_status")
HEADERS = ("kind", "name", "runs", "ok", "failed", "canceled", "running", "success", "avg s", "p95 s",
           "last run (UTC)", "last status")


def format_table(rows: Iterable[Stats]) -> str:
    cells = [HEADERS] + [tuple(_cell(c, getattr(r, c)) for c in COLUMNS) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(HEADERS))]
    numeric = {i for i, c in enumerate(COLUMNS) if c not in ("kind", "name", "last_run_at", "last_status")}
    lines = ["  ".join(v.rjust(w) if i in numeric else v.ljust(w)
                       for i, (v, w) in enumerate(zip(row, widths, strict=True))).rstrip() for row in cells]
    return "\n".join(lines)


def _cell(column: str, value) -> str:
    if value is None:
        return "-"
    if column == "success_rate":
        return f"{value:.1%}"
    if isinstance(value, float):
        return f"{value:.1f}"
    if column == "name" and value.startswith(ASSET_JOB_PREFIX):
        return f"{value} (asset runs)"
    return str(value)
