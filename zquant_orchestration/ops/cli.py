"""``zquant-ops``: operator commands beside the Dagster CLI.

    zquant-ops run-stats [--json] [--since YYYY-MM-DD] [--job NAME]
    zquant-ops health [--only instance|warehouse|tushare] [--no-daemon]

Both read the deployment from the same environment as the webserver and the daemon
(DAGSTER_HOME, ZQUANT_WAREHOUSE_URL, TUSHARE_TOKEN; README "Configuration").
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, time

from zquant_orchestration.lib.dates import to_date


def _since(text: str) -> datetime:
    try:
        return datetime.combine(to_date(text), time(), tzinfo=UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--since takes a date as YYYY-MM-DD, got {text!r}") from None


def run_stats_command(args: argparse.Namespace) -> int:
    from dagster import DagsterInstance

    from zquant_orchestration.settings import get_settings

    from .run_stats import format_table, run_stats

    if not get_settings().dagster_home:
        print("zquant-ops run-stats: DAGSTER_HOME is not set: point it at the folder holding dagster.yaml",
              file=sys.stderr)
        return 2
    with DagsterInstance.get() as instance:
        jobs, assets = run_stats(instance, since=args.since, job=args.job)
    if args.json:
        print(json.dumps({"jobs": [s.as_dict() for s in jobs], "assets": [s.as_dict() for s in assets]}, indent=2))
    else:
        print(format_table(jobs + assets) if jobs else "no runs" + (f" of job {args.job}" if args.job else ""))
    return 0


def health_command(args: argparse.Namespace) -> int:
    from zquant_orchestration.settings import SettingsError

    from .health import CHECKS, Check, check_instance

    names = args.only or list(CHECKS)
    failed = None
    for name in names:
        try:
            check = check_instance(require_daemon=not args.no_daemon) if name == "instance" else CHECKS[name]()
        except SettingsError as exc:  # a bad variable is a finding, named in one line
            check = Check(name, False, str(exc))
        print(check.line(), flush=True)
        if not check.ok and failed is None:
            failed = check
    if failed is not None:
        print(f"zquant-ops health: {failed.name}: {failed.detail}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="zquant-ops", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    stats = commands.add_parser("run-stats", help="runs, successes, failures, durations per job and asset")
    stats.add_argument("--json", action="store_true", help="JSON instead of a table")
    stats.add_argument("--since", type=_since, help="only runs created on or after this date (UTC)")
    stats.add_argument("--job", help="only this job's runs (assets: those the job's runs planned)")
    stats.set_defaults(handler=run_stats_command)

    health = commands.add_parser("health", help="check the instance, the warehouse and Tushare; exit 1 on a fault")
    health.add_argument("--only", action="append", choices=["instance", "warehouse", "tushare"],
                        help="run only this check (repeatable)")
    health.add_argument("--no-daemon", action="store_true",
                        help="do not require daemon heartbeats (a host without the daemon)")
    health.set_defaults(handler=health_command)

    args = parser.parse_args(argv)
    sys.exit(args.handler(args))


if __name__ == "__main__":
    main()
