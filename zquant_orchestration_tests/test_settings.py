"""One settings module: every variable it reads is in the README's table, and a bad value is one line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from zquant_orchestration.settings import SettingsError, get_settings, variables

ROOT = Path(__file__).resolve().parents[1]


def readme_variables() -> set[str]:
    section = ROOT.joinpath("README.md").read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split(" | ")[0])}


def test_the_readme_table_lists_exactly_the_variables_the_settings_read():
    assert readme_variables() == set(variables())


def test_only_the_settings_module_reads_the_environment():
    readers = sorted(str(p.relative_to(ROOT)) for p in ROOT.joinpath("zquant_orchestration").rglob("*.py")
                     if re.search(r"os\.environ|os\.getenv", p.read_text()))
    assert readers == ["zquant_orchestration/settings.py"]


@pytest.mark.parametrize(("name", "value", "message"), [
    ("TUSHARE_CALLS_PER_MINUTE", "lots", "TUSHARE_CALLS_PER_MINUTE must be a whole number above 0, got 'lots'"),
    ("TUSHARE_RATE_WINDOW_SECONDS", "0", "TUSHARE_RATE_WINDOW_SECONDS must be a number of seconds above 0, got '0'"),
    ("ZQUANT_FINANCE_MODE", "all", "ZQUANT_FINANCE_MODE must be one of per_stock, vip, got 'all'"),
    ("ZQUANT_FINANCE_START", "2010-13-01", "ZQUANT_FINANCE_START must be a date like 2010-01-01, got '2010-13-01'"),
    ("ZQUANT_AUTOMATION_INTERVAL_SECONDS", "0",
     "ZQUANT_AUTOMATION_INTERVAL_SECONDS must be a whole number of seconds above 0, got '0'"),
    ("ZQUANT_GAP_LOOKBACK_DAYS", "-3", "ZQUANT_GAP_LOOKBACK_DAYS must be a whole number above 0, got '-3'"),
    ("ZQUANT_TODAY", "2024/01/05", "ZQUANT_TODAY must be a date like 2024-01-31 (YYYY-MM-DD), got '2024/01/05'"),
    ("DAGSTER_PG_PORT", "pg", "DAGSTER_PG_PORT must be a port number (1 to 65535), got 'pg'"),
    ("ZQUANT_DATASETS", "stk_limit,moneyflows",
     "ZQUANT_DATASETS must be 'all', 'none' or dataset names separated by commas, of: stk_limit, suspend_d, "
     "moneyflow, top_list, margin_detail, stk_factor_pro, index_dailybasic, dividend, namechange, index_basic, "
     "index_daily, index_weight, got 'stk_limit,moneyflows'"),
    ("ZQUANT_INDEX_CODES", "000300.SH,CSI300",
     "ZQUANT_INDEX_CODES must be index ts_codes separated by commas, e.g. 000300.SH,399006.SZ, got "
     "'000300.SH,CSI300'"),
    ("ZQUANT_QUOTA_URL", "mysql://quota:s3cret@db/quota",  # a secret: its value is not repeated
     "ZQUANT_QUOTA_URL must be a PostgreSQL URL like postgresql://user:password@host:5432/dbname"),
    ("ZQUANT_EXECUTOR", "k8s", "ZQUANT_EXECUTOR must be one of multiprocess, celery, got 'k8s'"),
    ("ZQUANT_CELERY_QUEUE", "my queue", "ZQUANT_CELERY_QUEUE must be a queue name of letters, digits, '-' and '_', "
     "got 'my queue'"),
])
def test_a_bad_value_is_one_line_naming_the_variable_and_what_it_takes(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as raised:
        get_settings()
    assert str(raised.value) == message


def test_settings_are_read_when_asked(monkeypatch):
    monkeypatch.setenv("ZQUANT_GAP_LOOKBACK_DAYS", "7")
    assert get_settings().gap_lookback_days == 7
    monkeypatch.delenv("ZQUANT_GAP_LOOKBACK_DAYS")
    assert get_settings().gap_lookback_days == 30


def test_importing_the_definitions_creates_no_file(tmp_path):
    # The calendar, the stock list and the task file are read when Dagster builds the
    # definitions, not at import: an import opens no warehouse (no ./.zquant/warehouse.sqlite).
    result = subprocess.run([sys.executable, "-c", "import zquant_orchestration.definitions"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert list(tmp_path.iterdir()) == []
