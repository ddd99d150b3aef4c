"""The warehouse in qlib's binary format, appended a trading day at a time.

The layout is the one qlib's ``FileCalendarStorage``, ``FileInstrumentStorage`` and
``FileFeatureStorage`` read and its ``scripts/dump_bin.py`` writes:

- ``calendars/day.txt``: one trading day per line, ``YYYY-MM-DD``;
- ``instruments/all.txt``: ``<instrument>\\t<start>\\t<end>`` per stock, qlib's names
  (``600519.SH`` is ``SH600519``);
- ``features/<instrument lowercase>/<field>.day.bin``: little-endian float32; the first value
  is the calendar index of the file's first day, then one value per calendar day.

Prices are backward-adjusted (``daily_hfq``: the raw price times that day's ``adj_factor``)
and ``factor`` is the ``adj_factor``, qlib's convention (``$close / $factor`` is the raw
price the backtest's exchange rounds lots with). Backward adjustment fixes every exported
day for good: a new dividend changes only the days after it, so a day is appended once and
never rewritten. Forward-adjusted prices would move the whole history at each dividend,
and qlib's community data's division by the first close would move it whenever history is
extended backward; neither is done.

Fields, as qlib's cn data has them: ``open``, ``high``, ``low``, ``close`` (hfq);
``volume`` in adjusted shares (Tushare's lots x 100 / factor, so volume x price stays the
traded value); ``amount`` in yuan (Tushare's thousands x 1000); ``vwap`` = amount / volume,
an adjusted price; ``change`` = close / pre_close - 1 (the day's return across a dividend,
from the day's own row); ``factor``.

How the files change:

- A stock is an instrument from the first exported day it is listed on (or has a bar):
  a stock listed later starts its own files at its first day. Every day it is listed it
  gets a value, NaN when it did not trade (suspended), so its files stay aligned with the
  calendar. It gets no more values once delisted (the day before ``delist_date``).
- Appending a day appends 4 bytes to each listed stock's files and a line to the calendar;
  nothing already written is rewritten. ``instruments/all.txt`` is rewritten whole each time
  (about 170 KB for 5,500 stocks): its end dates move with every day, and qlib reads it whole anyway.
- Re-exporting a day already in the calendar (a day landed again) overwrites that day's
  4 bytes in place at its offset. Only when a re-exported day puts a stock before the start
  of its existing files (it was not listed there before) is that one stock's file rewritten
  with the earlier start; ``files_rewritten`` counts those.
- A day that is neither in the calendar nor the trading day right after its last is
  refused with one line naming the trading days missing: the export never has holes, and
  grows forward only.
- Feature files are written before the calendar line: a run that dies halfway leaves the
  calendar as it was, and the next export of the same days writes the same offsets again.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from zquant_orchestration.lib import dates

FIELDS = ("open", "close", "high", "low", "volume", "factor", "change", "amount", "vwap")
FREQ = "day"
# The field whose file tells an instrument's span: every field is written with it.
SPAN_FIELD = "close"
VALUE = np.dtype("<f4")


class ExportRefused(ValueError):
    """A day the export cannot take without a hole or a rewrite."""


def instrument(ts_code: str) -> str:
    """qlib's name of a Tushare code: ``600519.SH`` is ``SH600519``."""
    code, exchange = ts_code.split(".")
    return f"{exchange}{code}"


def qlib_fields(hfq: pd.DataFrame) -> pd.DataFrame:
    """``daily_hfq`` rows as qlib's fields: columns ``instrument``, ``day`` (ISO) and FIELDS."""
    factor = hfq["adj_factor"].astype(float)
    volume = hfq["vol"].astype(float) * 100 / factor
    amount = hfq["amount"].astype(float) * 1000
    with np.errstate(divide="ignore", invalid="ignore"):
        vwap = (amount / volume).where(volume > 0)
        change = hfq["close"].astype(float) / hfq["pre_close"].astype(float) - 1
    return pd.DataFrame({
        "instrument": hfq["ts_code"].map(instrument), "day": hfq["trade_date"].map(dates.iso),
        "open": hfq["open"], "close": hfq["close"], "high": hfq["high"], "low": hfq["low"],
        "volume": volume, "factor": factor, "change": change, "amount": amount, "vwap": vwap,
    })


@dataclass
class WriteStats:
    days_written: int = 0
    days_appended: int = 0
    bytes_appended: int = 0
    bytes_overwritten: int = 0
    files_created: int = 0
    files_rewritten: int = 0
    instruments: int = 0
    first_day: str | None = None
    last_day: str | None = None
    spans: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)


class QlibBinExport:
    """A qlib data folder (``provider_uri``) that trading days are written into."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.calendar_path = self.root / "calendars" / f"{FREQ}.txt"
        self.instruments_path = self.root / "instruments" / "all.txt"
        self.features = self.root / "features"

    def feature_path(self, name: str, field_name: str) -> Path:
        return self.features / name.lower() / f"{field_name}.{FREQ}.bin"

    def calendar(self) -> list[str]:
        if not self.calendar_path.exists():
            return []
        return [line.strip() for line in self.calendar_path.read_text().splitlines() if line.strip()]

    def spans(self) -> dict[str, tuple[int, int]]:
        """Instrument -> (first, last) calendar index its files hold."""
        found = {}
        if not self.features.exists():
            return found
        for folder in self.features.iterdir():
            path = folder / f"{SPAN_FIELD}.{FREQ}.bin"
            if path.exists():
                span = _span(path)
                if span is not None:
                    found[folder.name.upper()] = span
        return found

    def plan(self, days: Sequence[str], trading_days: Sequence[str]) -> tuple[list[str], int]:
        """The calendar once ``days`` are written, and the index of the first of them; an
        ``ExportRefused`` for a day that would leave a hole or need history to move."""
        calendar = self.calendar()
        known = {day: i for i, day in enumerate(calendar)}
        position = {day: i for i, day in enumerate(trading_days)}
        days = sorted(dates.iso(d) for d in days)
        for day in days:
            if day not in position:
                raise ExportRefused(f"{day} is not a trading day of the calendar the export follows")
        grown = list(calendar)
        for day in days:
            if day in known or (grown and day == grown[-1]):
                continue
            if calendar and day < calendar[0]:
                raise ExportRefused(
                    f"qlib export at {self.root} starts at {calendar[0]}; {day} is earlier, and its files only "
                    "grow forward: export into an empty folder to start before it")
            if grown:
                missing = trading_days[position[grown[-1]] + 1:position[day]]
                if missing:
                    out = missing[0] if len(missing) == 1 else f"{missing[0]}..{missing[-1]}"
                    raise ExportRefused(
                        f"qlib export at {self.root} ends at {grown[-1]}; {day} would leave {len(missing)} trading "
                        f"day(s) out ({out}): export those first")
            grown.append(day)
        first = grown.index(days[0])
        if grown[first:first + len(days)] != days:
            raise ExportRefused(f"the days to export are not consecutive trading days: {days[0]}..{days[-1]}")
        return grown, first

    def write(self, days: Sequence[str], values: pd.DataFrame, listings: pd.DataFrame,
              trading_days: Sequence[str]) -> WriteStats:
        """Write consecutive trading ``days``: ``values`` as ``qlib_fields`` gives them,
        ``listings`` the stocks' ``ts_code``, ``list_date`` and ``delist_date``."""
        grown, first = self.plan(days, trading_days)
        days = grown[first:first + len(days)]
        calendar_before = len(self.calendar())
        stats = WriteStats(days_written=len(days), first_day=days[0], last_day=days[-1])
        spans = self.spans()
        listed = _listed(listings, days)
        values = values[values.day.isin(days)]
        names = sorted(set(listed.index) | set(values.instrument)
                       | {n for n, (s, e) in spans.items() if s <= first + len(days) - 1 and e >= first})
        row = {name: i for i, name in enumerate(names)}
        col = {day: j for j, day in enumerate(days)}
        panel = np.full((len(names), len(days), len(FIELDS)), np.nan, dtype=VALUE)
        r = values.instrument.map(row).to_numpy(dtype=np.int64)
        c = values.day.map(col).to_numpy(dtype=np.int64)
        panel[r, c, :] = values[list(FIELDS)].to_numpy(dtype=float)
        present = np.zeros((len(names), len(days)), dtype=bool)
        present[r, c] = True
        listed = listed.reindex(names, fill_value=False)
        present |= listed.to_numpy(dtype=bool)
        for name, (start, end) in spans.items():
            if name in row:
                lo, hi = max(start, first) - first, min(end, first + len(days) - 1) - first
                if lo <= hi:
                    present[row[name], lo:hi + 1] = True
        for name, i in row.items():
            columns = np.flatnonzero(present[i])
            if not len(columns):
                continue
            lo, hi = columns[0], columns[-1]
            for k, field_name in enumerate(FIELDS):
                _put(self.feature_path(name, field_name), first + lo, panel[i, lo:hi + 1, k], stats)
            old = spans.get(name)
            spans[name] = (min(first + lo, old[0]), max(first + hi, old[1])) if old else (first + lo, first + hi)
        new_days = grown[calendar_before:]
        if new_days:
            self.calendar_path.parent.mkdir(parents=True, exist_ok=True)
            text = "".join(f"{day}\n" for day in new_days).encode()
            with self.calendar_path.open("ab") as fp:
                fp.write(text)
            stats.bytes_appended += len(text)
        stats.days_appended = len(new_days)
        self._write_instruments(grown, spans, listings)
        stats.instruments, stats.spans = len(spans), spans
        return stats

    def _write_instruments(self, calendar: list[str], spans: dict[str, tuple[int, int]],
                           listings: pd.DataFrame) -> None:
        # A stock's last day is its files' last, or the day before its delisting when the
        # delisting became known after NaNs were already appended for it.
        gone = listings[listings.delist_date.notna()]
        delisted = dict(zip(gone.ts_code.map(instrument), gone.delist_date.map(dates.iso), strict=True))
        lines = []
        for name in sorted(spans):
            start, end = spans[name]
            end = min(end, len(calendar) - 1)
            if name in delisted:
                while end > start and calendar[end] >= delisted[name]:
                    end -= 1
            lines.append(f"{name}\t{calendar[start]}\t{calendar[end]}\n")
        self.instruments_path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.instruments_path.with_suffix(".txt.partial")
        partial.write_text("".join(lines))
        os.replace(partial, self.instruments_path)


def _listed(listings: pd.DataFrame, days: list[str]) -> pd.DataFrame:
    """Instrument x day: listed that day (list_date <= day < delist_date)."""
    list_day = listings.list_date.map(dates.iso_or_none)
    delist_day = listings.delist_date.map(dates.iso_or_none)
    day = np.array(days, dtype=object)
    listed_from = list_day.fillna("9999-12-31").to_numpy(dtype=object)[:, None]
    listed_until = delist_day.fillna("9999-12-31").to_numpy(dtype=object)[:, None]
    mask = (listed_from <= day[None, :]) & (day[None, :] < listed_until) & list_day.notna().to_numpy()[:, None]
    frame = pd.DataFrame(mask, index=listings.ts_code.map(instrument).to_numpy(), columns=days)
    return frame[frame.any(axis=1)]


def _span(path: Path) -> tuple[int, int] | None:
    size = path.stat().st_size
    if size < 2 * VALUE.itemsize:
        return None
    with path.open("rb") as fp:
        start = int(np.frombuffer(fp.read(VALUE.itemsize), dtype=VALUE)[0])
    return start, start + size // VALUE.itemsize - 2


def _put(path: Path, index: int, block: np.ndarray, stats: WriteStats) -> None:
    """``block`` at calendar ``index`` of a feature file: appended past its end (NaN between),
    written in place over days it holds, the file created or (before its start) rewritten."""
    block = np.asarray(block, dtype=VALUE)
    span = _span(path) if path.exists() else None
    if span is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = np.concatenate([np.array([index], dtype=VALUE), block]).tobytes()
        path.write_bytes(data)
        stats.files_created += 1
        stats.bytes_appended += len(data)
        return
    start, end = span
    if index < start:
        old = np.fromfile(path, dtype=VALUE)[1:]
        last = max(end, index + len(block) - 1)
        merged = np.full(last - index + 1, np.nan, dtype=VALUE)
        merged[start - index:start - index + len(old)] = old
        merged[:len(block)] = block
        partial = path.with_suffix(".bin.partial")
        partial.write_bytes(np.concatenate([np.array([index], dtype=VALUE), merged]).tobytes())
        os.replace(partial, path)
        stats.files_rewritten += 1
        return
    gap = max(index - end - 1, 0)
    overlap = max(min(end, index + len(block) - 1) - index + 1, 0)
    with path.open("r+b") as fp:
        fp.seek(VALUE.itemsize * (1 + min(index, end + 1) - start))
        if gap:
            fp.write(np.full(gap, np.nan, dtype=VALUE).tobytes())
        fp.write(block.tobytes())
    stats.bytes_overwritten += int(overlap) * VALUE.itemsize
    stats.bytes_appended += int(gap + len(block) - overlap) * VALUE.itemsize
