"""The code location loads, validates, and references the token only by name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DAGSTER = str(Path(sys.executable).with_name("dagster"))


def run(code_or_args: list[str], **env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TUSHARE_", "ZQUANT_"))}
    return subprocess.run(code_or_args, env={**clean, **env}, capture_output=True, text=True, timeout=120)


@pytest.mark.slow  # the `dagster` CLI in a process of its own
def test_dagster_definitions_validate_passes():
    result = run([DAGSTER, "definitions", "validate", "-m", "zquant_orchestration.definitions"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation successful" in result.stdout + result.stderr


@pytest.mark.slow  # a Python process of its own that imports the definitions
def test_the_token_is_an_env_var_reference_never_a_value():
    probe = (
        "import dagster as dg\n"
        "from zquant_orchestration.definitions import defs\n"
        "token = defs.resources['tushare'].token\n"
        "assert isinstance(token, dg.EnvVar) and token.env_var_name == 'TUSHARE_TOKEN', repr(token)\n"
        "print(sorted(defs.resolve_all_asset_keys()))\n"
    )
    result = run([sys.executable, "-c", probe], TUSHARE_TOKEN="tok-visible-nowhere")
    assert result.returncode == 0, result.stderr
    assert "tok-visible-nowhere" not in result.stdout + result.stderr
    for asset in ("trade_cal", "stock_basic", "daily_bars", "adj_factor", "daily_basic"):
        assert f"AssetKey(['{asset}'])" in result.stdout


@pytest.mark.slow  # a Python process of its own that imports the definitions
def test_without_a_token_the_resource_uses_the_embedded_server():
    probe = (
        "from zquant_orchestration.definitions import defs\n"
        "assert defs.resources['tushare'].token is None\n"
    )
    result = run([sys.executable, "-c", probe])
    assert result.returncode == 0, result.stderr


@pytest.mark.slow  # a Python process of its own that imports the definitions
def test_the_finance_sensor_is_on_by_default_only_with_a_token():
    probe = ("from zquant_orchestration.definitions import defs\n"
             "print(defs.get_sensor_def('finance_disclosure_sensor').default_status.value)\n")
    assert run([sys.executable, "-c", probe], TUSHARE_TOKEN="t").stdout.split()[-1] == "RUNNING"
    assert run([sys.executable, "-c", probe]).stdout.split()[-1] == "STOPPED"


@pytest.mark.slow  # a Python process of its own that imports the definitions
def test_steps_allocate_arrow_memory_with_the_c_library_unless_told_otherwise():
    # Arrow's mimalloc keeps day frames freed by the writing thread, so a long sync step's
    # memory keeps growing with it (docs/benchmarks.md). Forked steps inherit the choice.
    probe = ("import os, pyarrow as pa\n"
             "from zquant_orchestration.definitions import defs\n"
             "pid = os.fork()\n"
             "if pid == 0:\n"
             "    print(pa.default_memory_pool().backend_name, flush=True)\n"
             "    os._exit(0)\n"
             "os.waitpid(pid, 0)\n")
    assert run([sys.executable, "-c", probe]).stdout.split()[-1] == "system"
    assert run([sys.executable, "-c", probe], ARROW_DEFAULT_MEMORY_POOL="mimalloc").stdout.split()[-1] == "mimalloc"


@pytest.mark.slow  # a Python process of its own that imports the definitions
def test_an_unreachable_warehouse_is_one_load_warning_without_its_password():
    # '@' and '#' in the password: SQLAlchemy ends the password at the first '@', and the
    # driver then names the rest ("ss#S3cret@nohost.invalid") as the host it cannot find.
    url = "postgresql://u:p@ss#S3cret@nohost.invalid:5432/db"
    result = run([sys.executable, "-c", "from zquant_orchestration.definitions import defs"], ZQUANT_WAREHOUSE_URL=url)
    assert result.returncode == 0, result.stderr
    assert "S3cret" not in result.stdout + result.stderr
    warnings = [line for line in result.stderr.splitlines() if "warehouse" in line]
    assert len(warnings) == 1, result.stderr
    assert warnings[0].startswith("The warehouse postgresql://u:***@nohost.invalid:5432/db is unreachable (")
    assert "uses the shipped trading calendar (through 2026-12-31) and stock list" in warnings[0]
