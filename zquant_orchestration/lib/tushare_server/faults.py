"""The faults the local server injects, from a seeded random stream.

Transport faults (``FAULT_KINDS``, on by default when a rate is set) break the reply on
its way. Data faults (``DATA_FAULT_KINDS``, opt-in) send a well-formed, successful reply
whose content is wrong, as a faulty source would:

- ``missing_column``: one requested (or, without ``fields``, default) column other than a
  key column is absent;
- ``extra_column``: a column nobody asked for is added, somewhere among the others;
- ``empty``: the fields are there, the rows are not (``items`` empty, ``has_more`` false).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

FAULT_KINDS = ("http_5xx", "truncated_json", "drop", "slow", "error_code")
DATA_FAULT_KINDS = ("missing_column", "extra_column", "empty")
ALL_FAULT_KINDS = FAULT_KINDS + DATA_FAULT_KINDS

EXTRA_COLUMN = "zq_unrequested"

_STATEMENT_KEYS = ("ts_code", "ann_date", "f_ann_date", "end_date", "report_type", "comp_type", "update_flag")
# The columns a row is found by: a reply without one is not "missing a value", it is unreadable.
KEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "trade_cal": ("exchange", "cal_date"),
    "stock_basic": ("ts_code",),
    "daily": ("ts_code", "trade_date"),
    "adj_factor": ("ts_code", "trade_date"),
    "daily_basic": ("ts_code", "trade_date"),
    "income": _STATEMENT_KEYS,
    "balancesheet": _STATEMENT_KEYS,
    "cashflow": _STATEMENT_KEYS,
    "fina_indicator": _STATEMENT_KEYS,
    "disclosure_date": ("ts_code", "end_date"),
}


@dataclass
class FaultPlan:
    """Which share of data requests fail, and how. The same seed gives the same faults."""

    rate: float = 0.0
    seed: int = 0
    kinds: tuple[str, ...] = FAULT_KINDS
    slow_seconds: float = 5.0
    # Calls about these stocks (params ts_code) always fail with a server error: a stock
    # that "keeps failing", as one broken record at Tushare does.
    failing_stocks: tuple[str, ...] = ()
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self):
        unknown = set(self.kinds) - set(ALL_FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {', '.join(ALL_FAULT_KINDS)}")
        if not 0 <= self.rate <= 1:
            raise ValueError(f"fault rate must be within 0..1, got {self.rate}")
        self._rng = random.Random(self.seed)

    def draw(self) -> str | None:
        with self._lock:
            if self.rate and self._rng.random() < self.rate:
                return self._rng.choice(self.kinds)
            return None

    def spoil(self, kind: str, api_name: str, fields: list[str], items: list[list]
              ) -> tuple[list[str], list[list]] | None:
        """The reply's (fields, items) as data fault ``kind`` turns them, or None when the
        fault cannot apply (no column but key columns to drop)."""
        if kind == "empty":
            return fields, []
        with self._lock:
            if kind == "missing_column":
                keys = KEY_COLUMNS.get(api_name.removesuffix("_vip"), ())
                candidates = [i for i, name in enumerate(fields) if name not in keys]
                if not candidates:
                    return None
                drop = self._rng.choice(candidates)
                return fields[:drop] + fields[drop + 1:], [row[:drop] + row[drop + 1:] for row in items]
            if kind == "extra_column":
                at = self._rng.randint(0, len(fields))
                return fields[:at] + [EXTRA_COLUMN] + fields[at:], [row[:at] + [1.0] + row[at:] for row in items]
        raise ValueError(f"{kind!r} is not a data fault; known: {', '.join(DATA_FAULT_KINDS)}")
