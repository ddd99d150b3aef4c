"""Every dataset the warehouse holds, one declaration each (spec.py says what each field means).

Points and publication times come from Tushare's API pages (``doc_id``) and Tushare's own
"Tushare接口文档" articles; where neither gives a time, ``Published.note`` says what the
time rests on. Row limits live with the wire protocol (``lib/tushare/protocol.py``).
"""

from __future__ import annotations

from datetime import date, time

from .spec import DatasetSpec, Fetch, Published

_DAILY = ("ts_code", "trade_date")
# A statement version: a restatement adds a row with its own dates and flag.
_STATEMENT = ("ts_code", "end_date", "report_type", "comp_type", "ann_date", "f_ann_date", "update_flag")
_EVENING = "not documented; the exchanges publish it after the close, so the evening run asks for it"

DECLARATIONS: tuple[DatasetSpec, ...] = (
    # --- the foundation: always on -------------------------------------------------------
    DatasetSpec("trade_cal", "trade_cal", Fetch.REFERENCE, ("exchange", "cal_date"), 2000, None,
                "Trading calendars of every exchange Tushare knows.", 26, core=True),
    DatasetSpec("stock_basic", "stock_basic", Fetch.REFERENCE, ("ts_code",), 2000, None,
                "Every stock in each list status (listed, delisted, paused).", 25, core=True),
    # Not daily's `amount` among the values every bar has: some bars of the early 1990s have
    # none at Tushare, for good (waditu/tushare#915), and those days must still land. Nor
    # change / pct_chg, which follow from close and pre_close.
    DatasetSpec("daily_bars", "daily", Fetch.TRADE_DATE, _DAILY, 120,
                Published(time(16, 0), note="doc 27: 15:00-16:00"),
                "Unadjusted daily OHLCV of every stock that traded (Tushare `daily`).", 27,
                date_column="trade_date", required_values=("open", "high", "low", "close", "pre_close", "vol"),
                core=True),
    DatasetSpec("adj_factor", "adj_factor", Fetch.TRADE_DATE, _DAILY, 2000,
                Published(time(9, 30), note="doc 28: before the open, 09:15-09:20"),
                "Adjustment factors of every listed stock (Tushare `adj_factor`).", 28,
                date_column="trade_date", required_values=("adj_factor",), core=True),
    DatasetSpec("daily_basic", "daily_basic", Fetch.TRADE_DATE, _DAILY, 2000,
                Published(time(17, 0), note="doc 32: 15:00-17:00"),
                "Daily valuation and turnover (Tushare `daily_basic`).", 32, date_column="trade_date",
                required_values=("close", "total_share", "float_share", "total_mv", "circ_mv"), core=True),
    *(DatasetSpec(api, api, Fetch.REPORT_PERIOD, keys, 2000, None,
                  f"Every reported version of `{api}`, restatements included (the `_vip` API needs 5000 points).",
                  doc_id, date_column="end_date", core=True)
      for api, doc_id, keys in (("income", 33, _STATEMENT), ("balancesheet", 36, _STATEMENT),
                                ("cashflow", 44, _STATEMENT),
                                ("fina_indicator", 79, ("ts_code", "end_date", "ann_date", "update_flag")))),
    # --- chosen by ZQUANT_DATASETS ------------------------------------------------------------
    DatasetSpec("stk_limit", "stk_limit", Fetch.TRADE_DATE, _DAILY, 2000,
                Published(time(8, 40), note="doc 183: 每个交易日8点40左右更新当日"),
                "Each stock's and fund's limit-up and limit-down price of the day.", 183,
                date_column="trade_date", required_values=("up_limit", "down_limit"),
                available_from=date(2007, 1, 4), covers_daily_bars=0.99, group="tradability"),
    DatasetSpec("suspend_d", "suspend_d", Fetch.TRADE_DATE, ("ts_code", "trade_date", "suspend_type"), 2000,
                Published(time(9, 0), note="doc 214: updated irregularly; suspensions are announced before the open"),
                "Suspensions (S) and resumptions (R) of the day; most days hold few or none.", 214,
                date_column="trade_date", may_be_empty=True, required_values=("suspend_type",), group="tradability"),
    DatasetSpec("moneyflow", "moneyflow", Fetch.TRADE_DATE, _DAILY, 2000,
                Published(time(19, 0), note="doc 170 article: 每日18点~19点更新"),
                "Money flow by order size (small, medium, large, extra large) per stock and day.", 170,
                date_column="trade_date", available_from=date(2010, 1, 4), covers_daily_bars=0.9, group="flows"),
    DatasetSpec("top_list", "top_list", Fetch.TRADE_DATE, ("trade_date", "ts_code", "reason"), 2000,
                Published(time(20, 0), note=_EVENING),
                "The dragon-tiger list: stocks with unusual moves, once per listing reason.", 106,
                date_column="trade_date", may_be_empty=True, available_from=date(2005, 1, 4), group="flows"),
    DatasetSpec("margin_detail", "margin_detail", Fetch.TRADE_DATE, _DAILY, 2000,
                Published(time(9, 0), trading_days_later=1,
                          note="not documented; brokers report day T's balances, published the next morning"),
                "Margin financing and securities lending per stock and day.", 59,
                date_column="trade_date", available_from=date(2010, 3, 31), group="flows"),
    DatasetSpec("stk_factor_pro", "stk_factor_pro", Fetch.TRADE_DATE, _DAILY, 5000,
                Published(time(20, 0), note=_EVENING),
                "Technical factors per stock and day (bars, hfq/qfq prices, indicators).", 328,
                date_column="trade_date", required_values=("close",), available_from=date(2005, 1, 4),
                covers_daily_bars=0.99, group="flows"),
    DatasetSpec("index_dailybasic", "index_dailybasic", Fetch.TRADE_DATE, _DAILY, 400,
                Published(time(19, 0), note=_EVENING),
                "Valuation and turnover of the major indices.", 128, date_column="trade_date",
                available_from=date(2004, 1, 2), group="indices"),
    DatasetSpec("dividend", "dividend", Fetch.EX_DATE, ("ts_code", "end_date", "ex_date"), 2000,
                Published(time(9, 0), note="ex-dates are announced before they come"),
                "Implemented dividends and bonus shares by ex-date.", 103, date_column="ex_date",
                may_be_empty=True, group="tradability"),
    DatasetSpec("namechange", "namechange", Fetch.REFERENCE, ("ts_code", "start_date", "name"), 2000, None,
                "Every name a stock has had, with its dates: the ST and *ST history.", 100),
    DatasetSpec("index_basic", "index_basic", Fetch.REFERENCE, ("ts_code",), 2000, None,
                "Index reference data: name, publisher, base date and point.", 94,
                split_by=tuple(("market", m) for m in ("SSE", "SZSE", "CSI", "CICC", "SW", "MSCI", "OTH"))),
    DatasetSpec("index_daily", "index_daily", Fetch.PER_CODE, _DAILY, 2000,
                Published(time(19, 0), note="doc 95 article: 每天9:00和19:00更新"),
                "Daily bars of the configured indices (ZQUANT_INDEX_CODES).", 95, date_column="trade_date",
                required_values=("close",), codes_setting="index_codes", group="indices"),
    DatasetSpec("index_weight", "index_weight", Fetch.PER_CODE, ("index_code", "con_code", "trade_date"), 2000,
                Published(time(20, 0), note="monthly, on irregular days; " + _EVENING),
                "Constituents and weights of the configured indices, on the days Tushare publishes them.", 96,
                date_column="trade_date", may_be_empty=True, required_values=("weight",), code_param="index_code",
                codes_setting="index_codes", group="indices"),
)

DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in DECLARATIONS}

# The points of a basic paid account: what is on unless ZQUANT_DATASETS says otherwise.
DEFAULT_POINTS = 2000
OPTIONAL = tuple(s.name for s in DECLARATIONS if not s.core)
DEFAULT_ENABLED = tuple(s.name for s in DECLARATIONS if not s.core and s.points <= DEFAULT_POINTS)

# SSE Composite, SZSE Component, ChiNext, SSE 50, CSI 300, CSI 500, CSI 1000, STAR 50.
DEFAULT_INDEX_CODES = ("000001.SH", "399001.SZ", "399006.SZ", "000016.SH", "000300.SH", "000905.SH", "000852.SH",
                       "000688.SH")
