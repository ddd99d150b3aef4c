"""Shared helpers: drive the `dagster` CLI in a process of its own, as a user's terminal does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

DAGSTER = str(Path(sys.executable).with_name("dagster"))


def cli_env(tmp_path: Path, server, warehouse_url: str, **extra) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TUSHARE_", "ZQUANT_"))}
    env.update(DAGSTER_HOME=str(home), ZQUANT_WAREHOUSE_URL=warehouse_url, TUSHARE_HTTP_URL=server.url, **extra)
    return env


def execute_job(env: dict[str, str], job: str, partition: str | None = None, timeout: int = 300):
    """`dagster job execute` of the code location, as a terminal runs it (one day's partition tag)."""
    command = [DAGSTER, "job", "execute", "-m", "zquant_orchestration.definitions", "-j", job]
    if partition:
        command += ["--tags", json.dumps({"dagster/partition": partition})]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
