"""Shared helpers: the local server's FinanceBook on the real stock list, and a fingerprint of
its answers that another process can compute too."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from zquant_orchestration.lib.tushare_server.finance import FinanceBook
from zquant_orchestration.reference_data import STOCK_LIST

DATA_DIR = Path(__file__).resolve().parents[1] / "zquant_orchestration" / "lib" / "tushare_server" / "data"
AS_OF = "20260601"  # after every real fixture row (the last is announced 20260430)
DELISTED = {"600002.SH": ("20050315", "20120706"), "000003.SZ": ("20100104", "20200415")}


def build_stocks() -> pd.DataFrame:
    """The real stock list plus two made-up delisted stocks."""
    real = pd.read_csv(STOCK_LIST, dtype=str, keep_default_na=False)
    real = real[["ts_code", "list_date", "delist_date", "list_status"]].replace({"": None})
    assert not real.ts_code.isin(list(DELISTED)).any()
    made_up = pd.DataFrame([{"ts_code": code, "list_date": listed, "delist_date": gone, "list_status": "D"}
                            for code, (listed, gone) in DELISTED.items()])
    return pd.concat([real, made_up], ignore_index=True)


def digest(book: FinanceBook) -> str:
    """A fingerprint of a few answers, to compare across processes."""
    frames = [book.query("income_vip", {"period": "20231231"}),
              book.query("fina_indicator", {"ts_code": "600519.SH"}),
              book.query("disclosure_date", {"end_date": "20251231"})]
    return hashlib.sha256("".join(f.to_csv(index=False) for f in frames).encode()).hexdigest()
