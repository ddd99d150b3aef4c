"""The code location loads, validates, and references the token only by name.

One process: the definitions are a ``@dg.definitions`` function that reads the environment,
the calendar and the stock list when called, so each test calls it under its own settings.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import dagster as dg
import pytest
from click.testing import CliRunner
from dagster._cli.definitions import definitions_validate_command

from zquant_orchestration.definitions import defs


@pytest.fixture(autouse=True)
def clean_settings(tmp_path, monkeypatch):
    """No TUSHARE_/ZQUANT_ variable of the caller's; the default SQLite warehouse in tmp_path."""
    for name in list(os.environ):
        if name.startswith(("TUSHARE_", "ZQUANT_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ZQUANT_DATA_DIR", str(tmp_path / ".zquant"))


@pytest.mark.slow  # the `dagster` CLI loads the code location anew
def test_dagster_definitions_validate_passes():
    result = CliRunner().invoke(definitions_validate_command, ["-m", "zquant_orchestration.definitions"])
    assert result.exit_code == 0, result.output
    assert "Validation successful" in result.output


def test_the_token_is_an_env_var_reference_never_a_value(monkeypatch, capsys, caplog):
    monkeypatch.setenv("TUSHARE_TOKEN", "tok-visible-nowhere")
    built = defs()
    token = built.resources["tushare"].token
    assert isinstance(token, dg.EnvVar) and token.env_var_name == "TUSHARE_TOKEN", repr(token)
    keys = sorted(built.resolve_all_asset_keys())
    out, err = capsys.readouterr()
    assert "tok-visible-nowhere" not in out + err + caplog.text + repr(built.resources)
    for asset in ("trade_cal", "stock_basic", "daily_bars", "adj_factor", "daily_basic"):
        assert dg.AssetKey([asset]) in keys


def test_without_a_token_the_resource_uses_the_embedded_server():
    assert defs().resources["tushare"].token is None


def test_the_finance_sensor_is_on_by_default_only_with_a_token(monkeypatch):
    monkeypatch.setenv("TUSHARE_TOKEN", "t")
    assert defs().get_sensor_def("finance_disclosure_sensor").default_status.value == "RUNNING"
    monkeypatch.delenv("TUSHARE_TOKEN")
    assert defs().get_sensor_def("finance_disclosure_sensor").default_status.value == "STOPPED"


@pytest.mark.slow  # a Python process of its own that imports the definitions
def test_steps_allocate_arrow_memory_with_the_c_library_unless_told_otherwise(tmp_path):
    # Arrow's mimalloc keeps day frames freed by the writing thread, so a step's peak memory
    # grows with it (docs/benchmarks.md). Forked steps inherit the choice.
    # Arrow reads ARROW_DEFAULT_MEMORY_POOL when it starts, so this one takes new processes.
    # A step builds the definitions before it runs, and that is where the choice is made.
    probe = ("import os, pyarrow as pa\n"
             "from zquant_orchestration.definitions import defs\n"
             "defs()\n"
             "pid = os.fork()\n"
             "if pid == 0:\n"
             "    print(pa.default_memory_pool().backend_name, flush=True)\n"
             "    os._exit(0)\n"
             "os.waitpid(pid, 0)\n")
    clean = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}

    def run(**env):
        return subprocess.run([sys.executable, "-c", probe], env={**clean, "ZQUANT_DATA_DIR": str(tmp_path), **env},
                              cwd=tmp_path, capture_output=True, text=True, timeout=120).stdout.split()[-1]

    assert run() == "system"
    assert run(ARROW_DEFAULT_MEMORY_POOL="mimalloc") == "mimalloc"


def test_an_unreachable_warehouse_is_one_load_warning_without_its_password(monkeypatch, caplog, capsys):
    # '@' and '#' in the password: SQLAlchemy ends the password at the first '@', and the
    # driver then names the rest ("ss#S3cret@nohost.invalid") as the host it cannot find.
    url = "postgresql://u:p@ss#S3cret@nohost.invalid:5432/db"
    monkeypatch.setenv("ZQUANT_WAREHOUSE_URL", url)
    with caplog.at_level(logging.WARNING):
        defs()
    out, err = capsys.readouterr()
    assert "S3cret" not in out + err + caplog.text
    warnings = [r.getMessage() for r in caplog.records if "warehouse" in r.getMessage()]
    assert len(warnings) == 1, caplog.text
    assert warnings[0].startswith("The warehouse postgresql://u:***@nohost.invalid:5432/db is unreachable (")
    assert "uses the shipped trading calendar (through 2026-12-31) and stock list" in warnings[0]
