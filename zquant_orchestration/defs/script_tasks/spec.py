"""The task file: users' own scripts as assets, declared in YAML.

```yaml
tasks:
  top_movers:                       # the asset's name
    description: The day's strongest stocks by 20-day momentum.
    script: scripts/top_movers.py   # a Python file, run with this interpreter (path relative to the YAML)
    # command: ["Rscript", "x.R"]   # or any command (a list, or one string split like a shell)
    deps: [daily_factors]           # assets of this code location or other tasks
    cron: "0 20 * * 1-5"            # at most one trigger: cron (Asia/Shanghai, after its deps updated),
    # interval: 15m                 #   interval (at least 30s), manual: true (only when launched);
    # manual: true                  #   none: the task runs when its deps update
    enabled: true                   # optional: its automation's default state (a switch per task)
    retries: 1                      # optional step retries, retry_delay apart (default 10s)
    retry_delay: 30s
    timeout: 30m                    # optional: the run is failed past it
    env: [REPORT_DIR]               # optional: variables of the code location's environment the script gets
    params:                         # optional: typed run config with defaults (params.py)
      top_n: {type: int, default: 20}
```

Everything is checked when the code location loads, and a mistake stops the load with
ONE line naming the file, the task and the field: a loaded location never holds a task
that cannot run.
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import yaml

from .launch import SECRETS
from .params import ParamSpec, parse_params

FIELDS = {"description", "script", "command", "deps", "cron", "interval", "manual", "enabled", "retries",
          "retry_delay", "timeout", "on_failure", "env", "params"}
TRIGGERS = ("cron", "interval", "manual")
# An interval task's sensor ticks no more often than this: below it, a task's runs would
# pile up behind each other and the daemon would spend its time on one task.
MIN_INTERVAL_SECONDS = 30
DEFAULT_RETRY_DELAY_SECONDS = 10
DURATION = re.compile(r"(\d+)\s*([smhd])")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Dagster's asset names: ASCII letters, digits and _ (a Python identifier may be 日报).
TASK_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TaskFileError(ValueError):
    """A task file that cannot be loaded; the message is the whole explanation."""


@dataclass(frozen=True)
class TaskSpec:
    name: str
    command: tuple[str, ...]
    deps: tuple[str, ...] = ()
    description: str = ""
    cron: str | None = None
    interval: int | None = None  # seconds
    manual: bool = False
    enabled: bool = True
    retries: int = 0
    retry_delay: int = DEFAULT_RETRY_DELAY_SECONDS  # seconds
    timeout: int | None = None  # seconds
    params: tuple[ParamSpec, ...] = ()
    cwd: Path = field(default_factory=Path.cwd)
    env: tuple[str, ...] = ()

    @property
    def trigger(self) -> str:
        """cron, interval, manual, or deps (runs when its deps update)."""
        return "cron" if self.cron else "interval" if self.interval else "manual" if self.manual else "deps"


def duration_text(seconds: int) -> str:
    """90 -> 90s, 1800 -> 30m, 7200 -> 2h: how the task file writes it."""
    for unit in ("d", "h", "m"):
        if seconds and seconds % UNIT_SECONDS[unit] == 0:
            return f"{seconds // UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"


def load_task_file(path: Path, known_assets: set[str], known_codes: set[str] | None = None) -> list[TaskSpec]:
    """The tasks of ``path`` in dependency order, or a TaskFileError. ``known_codes``: the
    ts_codes a ``ts_codes`` param's default may name (None: only their form is checked)."""
    path = Path(path)
    where = str(path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except _DuplicateKey as duplicate:
        raise TaskFileError(f"{where}: line {duplicate.line}: '{duplicate.key}' appears twice in one mapping "
                            f"(first at line {duplicate.first}); a task name or field may appear once") from None
    except FileNotFoundError:
        raise TaskFileError(f"{where}: no such task file; fix ZQUANT_TASKS_FILE or create it") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise TaskFileError(f"{where}: not valid YAML{at} ({getattr(exc, 'problem', exc)}); fix the syntax") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("tasks"), dict) or not raw["tasks"]:
        raise TaskFileError(f"{where}: expected a mapping 'tasks:' of task names to tasks")
    names = set(raw["tasks"])
    specs = [_task(where, path.parent, name, body, known_assets, names, known_codes)
             for name, body in raw["tasks"].items()]
    return _in_dependency_order(where, specs)


def _task(where: str, folder: Path, name, body, known_assets: set[str], task_names: set[str],
          known_codes: set[str] | None) -> TaskSpec:
    def fail(field_name: str, problem: str) -> TaskFileError:
        return TaskFileError(f"{where}: task '{name}': {field_name}: {problem}")

    if not isinstance(name, str) or not TASK_NAME.fullmatch(name):
        raise TaskFileError(f"{where}: task '{name}': name: use ASCII letters, digits and _ only, not starting "
                            "with a digit (the name is a Dagster asset name)")
    if name in known_assets:
        raise fail("name", f"'{name}' is already an asset of the code location; rename the task")
    if not isinstance(body, dict):
        raise TaskFileError(f"{where}: task '{name}': expected a mapping of fields")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise fail(unknown[0], f"unknown field; the fields are {', '.join(sorted(FIELDS))}")
    if ("script" in body) == ("command" in body):
        raise fail("script", "give exactly one of 'script' (a Python file) or 'command'")
    if "script" in body:
        script = folder / str(body["script"])
        if not script.is_file():
            raise fail("script", f"{script} does not exist; the path is relative to the task file")
        command = (sys.executable, str(script.resolve()))
    else:
        command = body["command"]
        command = tuple(shlex.split(command) if isinstance(command, str) else map(str, command or ()))
        if not command:
            raise fail("command", "empty; give the program and its arguments")
    deps = body.get("deps") or []
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise fail("deps", "expected a list of asset or task names")
    for dep in deps:
        if dep not in known_assets and dep not in task_names:
            raise fail("deps", f"'{dep}' is neither an asset of the code location nor a task of this file")
    cron, interval, manual, enabled = _trigger(body, fail)
    if cron is not None:
        try:
            dg.ScheduleDefinition(name=f"{name}_cron_check", cron_schedule=str(cron), target=dg.AssetSelection.all())
        except dg.DagsterInvalidDefinitionError:
            raise fail("cron", f"'{cron}' is not a cron expression of 5 fields (e.g. '0 20 * * 1-5')") from None
    retries = body.get("retries", 0)
    if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 10:
        raise fail("retries", f"{retries!r} is not a whole number from 0 to 10")
    if body.get("on_failure", "stop") != "stop":
        raise fail("on_failure", "only 'stop' exists here: Dagster never runs a task whose upstream failed in the "
                                 "same run (see README, 'Workflows'); tasks that do not depend on it run anyway")
    retry_delay = _duration(body.get("retry_delay", DEFAULT_RETRY_DELAY_SECONDS), "retry_delay", fail)
    timeout = body.get("timeout")
    if timeout is not None and not (timeout := _duration(timeout, "timeout", fail)):
        raise fail("timeout", "0s would fail every run at once; give at least 1s, or leave timeout out")
    return TaskSpec(name=name, command=command, deps=tuple(deps), description=str(body.get("description", "")),
                    cron=None if cron is None else str(cron), interval=interval, manual=manual, enabled=enabled,
                    retries=retries, retry_delay=retry_delay, timeout=timeout,
                    params=parse_params(body.get("params"), fail, known_codes), cwd=folder.resolve(),
                    env=_env(body.get("env") or [], fail))


def _trigger(body: dict, fail) -> tuple[object, int | None, bool, bool]:
    """cron, interval (seconds), manual, enabled: at most one trigger, each well formed."""
    manual = body.get("manual", False)
    if not isinstance(manual, bool):
        raise fail("manual", f"{manual!r} is not true or false")
    given = [t for t in TRIGGERS if body.get(t) not in (None, False)]
    if len(given) > 1:
        raise fail(", ".join(given), "give one trigger at most: cron, interval or manual: true (none of them: "
                                     "the task runs when its deps update)")
    interval = None
    if body.get("interval") is not None:
        interval = _duration(body["interval"], "interval", fail)
        if interval < MIN_INTERVAL_SECONDS:
            raise fail("interval", f"{body['interval']!r} is shorter than {MIN_INTERVAL_SECONDS}s, the least an "
                                   "interval may be")
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        raise fail("enabled", f"{enabled!r} is not true or false")
    if manual and "enabled" in body:
        raise fail("enabled", "a manual task has no automation to switch on or off; remove enabled")
    return body.get("cron"), interval, manual, enabled


def _duration(raw, field_name: str, fail) -> int:
    """Seconds of ``90s``, ``15m``, ``2h``, ``1d``, or a bare whole number of seconds."""
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
        return raw
    match = DURATION.fullmatch(raw.strip()) if isinstance(raw, str) else None
    if not match:
        raise fail(field_name, f"{raw!r} is not a duration; write it like 90s, 15m, 2h or 1d")
    return int(match[1]) * UNIT_SECONDS[match[2]]


def _env(names, fail) -> tuple[str, ...]:
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise fail("env", "expected a list of environment variable names, e.g. [REPORT_DIR]")
    for name in names:
        if not VARIABLE_NAME.fullmatch(name):
            raise fail("env", f"'{name}' is not a variable name (letters, digits, _)")
        if name in SECRETS:
            raise fail("env", f"{name} is a secret of the deployment and never reaches a script; remove it "
                              "(scripts read the warehouse through ZQUANT_WAREHOUSE_URL)")
    return tuple(dict.fromkeys(names))


def _in_dependency_order(where: str, specs: list[TaskSpec]) -> list[TaskSpec]:
    by_name = {s.name: s for s in specs}
    ordered: list[TaskSpec] = []
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = path[path.index(name):] + [name]
            raise TaskFileError(f"{where}: task '{name}': deps: a cycle {' -> '.join(cycle)}; remove one of its deps")
        state[name] = "visiting"
        for dep in by_name[name].deps:
            if dep in by_name:
                visit(dep, path + [name])
        state[name] = "done"
        ordered.append(by_name[name])

    for spec in specs:
        visit(spec.name, [])
    return ordered


class _DuplicateKey(Exception):
    def __init__(self, key, line: int, first: int):
        super().__init__(key)
        self.key, self.line, self.first = key, line, first


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key repeated in one mapping (plain YAML keeps the last one,
    which would silently drop a task)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise _DuplicateKey(key, line, seen[key])
                seen[key] = line
            except TypeError:  # an unhashable key: SafeLoader's own error names it
                continue
        return super().construct_mapping(node, deep)

    def construct_yaml_timestamp(self, node):
        # A date YAML cannot build (2024-13-01) stays text, so that the field it is in
        # refuses it in its own words instead of PyYAML's "month must be in 1..12".
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError:
            return self.construct_scalar(node)


_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:timestamp", _UniqueKeyLoader.construct_yaml_timestamp)
