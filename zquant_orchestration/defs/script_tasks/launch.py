"""Starts a script task's command with an allow-list environment.

A subprocess inherits its parent's whole environment: ``DAGSTER_PG_PASSWORD``, the webhook
URL, the Tushare token, anything the unit file sets. The step (run.py) therefore starts a
task's command through this launcher with ``allowed_env``: only the variables below and
those the task names in ``env:``. The launcher replaces itself with the command (the same
process, so Dagster's signals reach the script), and a command that cannot start is one
line in the run's log::

    python -I launch.py -- program args...

It imports nothing of the project: it runs before the script, on every task run.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping

# What any program expects: where programs are, a home, the locale and the time zone.
BASE = frozenset({"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR"})
# Locale categories, and what Pipes adds itself (DAGSTER_PIPES_CONTEXT, _MESSAGES).
BASE_PREFIXES = ("LC_", "DAGSTER_PIPES_")
WAREHOUSE = "ZQUANT_WAREHOUSE_URL"
# Never handed to a script, even when a task names them.
SECRETS = frozenset({"TUSHARE_TOKEN", "DAGSTER_PG_PASSWORD", "ZQUANT_WEBHOOK_URL"})


def allowed_env(environ: Mapping[str, str], named: Iterable[str]) -> dict[str, str]:
    keep = BASE | {WAREHOUSE} | set(named)
    return {k: v for k, v in environ.items()
            if (k in keep or k.startswith(BASE_PREFIXES)) and k not in SECRETS}


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[0] != "--":
        sys.exit("usage: launch.py -- program args...")
    command = argv[1:]
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        print(f"script task: cannot start {command[0]!r}: {exc.strerror}", file=sys.stderr)
        sys.exit(127)


if __name__ == "__main__":
    main(sys.argv[1:])
