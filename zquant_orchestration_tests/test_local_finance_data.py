"""The local server's financial statements (``tushare_server.finance.FinanceBook``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from zquant_orchestration.lib.tushare.catalog import CATALOG_PATH
from zquant_orchestration.lib.tushare_server.finance import FinanceBook

from .finance_book_helpers import AS_OF, DATA_DIR, DELISTED, build_stocks, digest

SCHEMA = json.loads(CATALOG_PATH.read_text())
STATEMENTS = ("income", "balancesheet", "cashflow", "fina_indicator")
REAL_STOCKS = ("000977.SZ", "002050.SZ", "002472.SZ", "601899.SH")


@pytest.fixture(scope="module")
def stocks() -> pd.DataFrame:
    return build_stocks()


@pytest.fixture(scope="module")
def book(stocks) -> FinanceBook:
    return FinanceBook(stocks, DATA_DIR, as_of=AS_OF)


def names(api: str) -> list[str]:
    return [c for c, *_ in SCHEMA[api]]


def close(a, b) -> bool:
    """Equal up to the cent rounding of each figure."""
    return bool(np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=1e-9, atol=0.05))


def test_columns_equal_the_schema(book):
    for api in STATEMENTS:
        assert list(book.query(api, {"ts_code": "600519.SH"}).columns) == names(api)
        assert list(book.query(f"{api}_vip", {"period": "20231231"}).columns) == names(api)
        assert list(book.truth(api, "20231231", "20231231").columns) == names(api)
    assert list(book.query("disclosure_date", {"end_date": "20231231"}).columns) == names("disclosure_date")


def test_types_and_order(book):
    frame = book.query("income", {"ts_code": "600519.SH"})
    assert frame.update_flag.map(type).eq(int).all()
    assert set(book.query("fina_indicator", {"ts_code": "600519.SH"}).update_flag) <= {"0", "1"}
    assert (frame.ann_date.str.len() == 8).all() and (frame.f_ann_date == frame.ann_date).all()
    assert set(frame.report_type) == {"1"} and set(frame.comp_type) == {"1"}
    assert (frame.end_type == frame.end_date.str[4:6].map({"03": "1", "06": "2", "09": "3", "12": "4"})).all()
    assert frame.end_date.is_monotonic_decreasing
    weekdays = pd.to_datetime(frame.ann_date, format="%Y%m%d").dt.day_of_week
    assert (weekdays < 5).all()
    # A column is empty in all or none of a stock's reports; about half the non-key ones are empty.
    floats = frame[[c for c, t, *_ in SCHEMA["income"] if t == "float"]]
    empty = floats.isna().all()
    assert (empty | floats.notna().all()).all()
    assert 0.15 < empty.mean() < 0.6


def test_same_inputs_give_identical_frames(stocks, book):
    other = FinanceBook(stocks, DATA_DIR, as_of=AS_OF)
    for api, params in (("income_vip", {"period": "20231231"}), ("cashflow", {"ts_code": "000001.SZ"}),
                        ("disclosure_date", {"end_date": "20240630"})):
        pd.testing.assert_frame_equal(book.query(api, params), other.query(api, params))


def test_identical_in_another_process(book):
    """No dependence on Python's per-process string hash or on call history."""
    code = ("from zquant_orchestration_tests.finance_book_helpers import *; "
            f"print(digest(FinanceBook(build_stocks(), DATA_DIR, as_of={AS_OF!r})))")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], cwd=DATA_DIR.parents[3], env=env,
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == digest(book)


def test_the_truth_of_some_stocks_equals_the_market_truth_kept_to_them(book):
    """Tests compare a sample universe against ``truth(..., ts_codes=...)``, built for those
    stocks alone: it must hold exactly the rows of the whole market's truth for them."""
    market = book.truth("fina_indicator", "20220331", "20231231")
    restated = sorted(market[market.update_flag.astype(int) == 1].ts_code.unique())[:3]
    codes = [*restated, "600519.SH", "000001.SZ", "NOT.A.CODE"]
    key = ["ts_code", "end_date", "update_flag"]
    want = market[market.ts_code.isin(codes)].sort_values(key).reset_index(drop=True)
    got = book.truth("fina_indicator", "20220331", "20231231", ts_codes=codes)
    assert set(got.ts_code) == set(codes) - {"NOT.A.CODE"}
    pd.testing.assert_frame_equal(got.sort_values(key).reset_index(drop=True), want)
    assert book.truth("income", "20220331", "20231231", ts_codes=["NOT.A.CODE"]).empty


def test_restated_reports_have_two_versions(book):
    income = book.query("income_vip", {"period": "20221231"})
    counts = income.groupby("ts_code").size()
    restated = counts[counts == 2].index
    assert 0.05 < len(restated) / len(counts) < 0.11
    pairs = income[income.ts_code.isin(restated)]
    original, update = pairs[pairs.update_flag == 0].set_index("ts_code"), pairs[pairs.update_flag == 1]
    update = update.set_index("ts_code").loc[original.index]
    assert len(original) == len(update) == len(restated)
    assert (update.ann_date > original.ann_date).all() and (update.f_ann_date == update.ann_date).all()
    assert (update.n_income != original.n_income).all()
    change = (update.n_income / original.n_income - 1).abs()
    assert change.between(0.005, 0.07).all()
    assert (update.revenue == original.revenue).all()
    # The other statements carry the same two versions.
    for api in ("balancesheet", "cashflow", "fina_indicator"):
        rows = book.query(f"{api}_vip", {"period": "20221231"})
        assert set(map(str, rows[rows.ts_code.isin(restated)].update_flag)) == {"0", "1"}
        assert rows.groupby("ts_code").size().loc[restated].eq(2).all()


def test_as_of_hides_later_announcements_and_moving_it_reveals_them(stocks):
    before, after = "20240415", "20240510"
    book = FinanceBook(stocks, DATA_DIR, as_of=after)
    later = book.truth("income", "20220331", "20240331")
    revealed = later[later.ann_date > before]
    assert (revealed.update_flag == 0).any(), "a new report comes out in the window"
    assert (revealed.update_flag == 1).any(), "a restatement comes out in the window"
    assert (later.ann_date <= after).all()

    book.set_as_of(before)
    earlier = book.truth("income", "20220331", "20240331")
    assert (earlier.ann_date <= before).all()
    key = ["ts_code", "end_date", "update_flag"]
    seen = earlier.set_index(key).index
    assert not revealed.set_index(key).index.isin(seen).any()
    # A restated report's original stays visible while its correction is hidden.
    update = revealed[(revealed.update_flag == 1) & (revealed.end_date < "20231231")].iloc[0]
    stock_rows = book.query("income", {"ts_code": update.ts_code, "period": update.end_date})
    assert list(stock_rows.update_flag) == [0]

    book.set_as_of(after)
    stock_rows = book.query("income", {"ts_code": update.ts_code, "period": update.end_date})
    assert list(stock_rows.update_flag) == [1, 0]
    q1_reports = book.query("income_vip", {"period": "20240331"})
    assert len(q1_reports) > len(earlier[earlier.end_date == "20240331"])


def test_per_stock_rows_equal_vip_rows(book):
    restated = book.query("income_vip", {"period": "20221231"}).pipe(lambda f: f[f.update_flag == 1]).ts_code
    codes = ("600519.SH", restated.iloc[0], "002472.SZ", "600002.SH")  # plain, restated, real rows, delisted
    for api in STATEMENTS:
        own = {code: book.query(api, {"ts_code": code}) for code in codes}
        for period in ("20101231", "20221231", "20250630", "20251231"):
            market = book.query(f"{api}_vip", {"period": period})
            for code in codes:
                rows = own[code][own[code].end_date == period].reset_index(drop=True)
                pd.testing.assert_frame_equal(rows, market[market.ts_code == code].reset_index(drop=True))


def test_statements_are_internally_consistent(book):
    period = "20231231"
    inc = book.query("income_vip", {"period": period}).set_index(["ts_code", "ann_date"])
    bal = book.query("balancesheet_vip", {"period": period}).set_index(["ts_code", "ann_date"])
    cf = book.query("cashflow_vip", {"period": period}).set_index(["ts_code", "ann_date"])
    fi = book.query("fina_indicator_vip", {"period": period}).set_index(["ts_code", "ann_date"])
    assert (inc.total_revenue >= inc.revenue).all() and (inc.revenue > 0).all()
    assert close(inc.total_profit, inc.operate_profit + inc.non_oper_income - inc.non_oper_exp)
    assert close(inc.n_income, inc.total_profit - inc.income_tax)
    assert close(inc.n_income_attr_p, inc.n_income - inc.minority_gain)
    gains = inc[["invest_income", "fv_value_chg_gain", "oth_income", "asset_disp_income"]].sum(axis=1)
    assert close(inc.operate_profit, inc.total_revenue - inc.total_cogs + gains)
    assert close(bal.total_assets, bal.total_liab + bal.total_hldr_eqy_inc_min_int)
    assert close(bal.total_hldr_eqy_inc_min_int, bal.total_hldr_eqy_exc_min_int + bal.minority_int)
    assert close(bal.total_liab_hldr_eqy, bal.total_assets)
    assert close(inc.basic_eps, (inc.n_income_attr_p / bal.total_share).round(4))
    assert close(cf.free_cashflow, cf.n_cashflow_act - cf.c_pay_acq_const_fiolta)
    assert close(cf.n_incr_cash_cash_equ,
                 cf.n_cashflow_act + cf.n_cashflow_inv_act + cf.n_cash_flows_fnc_act + cf.eff_fx_flu_cash)
    assert close(cf.c_cash_equ_end_period, bal.money_cap) and close(cf.net_profit, inc.n_income)
    assert (fi.eps == inc.basic_eps).all()
    assert close(fi.roe, (inc.n_income_attr_p / bal.total_hldr_eqy_exc_min_int * 100).round(4))
    assert close(fi.debt_to_assets, (bal.total_liab / bal.total_assets * 100).round(4))
    assert close(fi.bps, (bal.total_hldr_eqy_exc_min_int / bal.total_share).round(4))
    assert close(fi.grossprofit_margin, ((inc.revenue - inc.oper_cost) / inc.revenue * 100).round(4))
    # Opening cash is the prior year end's closing cash.
    prior = book.query("balancesheet_vip", {"period": "20221231"})
    prior = prior[prior.update_flag == 0].set_index("ts_code").money_cap
    opening = cf.reset_index("ann_date").c_cash_equ_beg_period
    opening = opening[opening.index.isin(prior.index)]
    assert close(opening, prior.loc[opening.index])


def test_year_to_date_figures_grow_through_the_year(book):
    for code in ("600519.SH", "000001.SZ", "300750.SZ"):
        frame = book.query("income", {"ts_code": code})
        frame = frame[frame.update_flag == 0].sort_values("end_date")
        for _, year in frame.groupby(frame.end_date.str[:4]):
            if len(year) == 4:
                assert year.revenue.is_monotonic_increasing
                assert year.n_income.abs().is_monotonic_increasing


def test_real_fixture_rows_are_reproduced(book):
    for api in STATEMENTS:
        real = pd.read_csv(DATA_DIR / "fundamentals" / f"{api}.csv", dtype={"ann_date": str, "end_date": str})
        for code, rows in real.groupby("ts_code", sort=False):
            served = book.query(api, {"ts_code": code})
            served = served[served.end_date.isin(rows.end_date)].reset_index(drop=True)
            expected = rows.reset_index(drop=True)
            pd.testing.assert_frame_equal(served[list(real.columns)], expected, check_dtype=False)
            others = [c for c, t, *_ in SCHEMA[api] if t == "float" and c not in real.columns]
            assert served[others].isna().all().all()
            # Repeated rows: the first is the update (flag 1), the rest originals (flag 0).
            repeated = expected.duplicated(["end_date"], keep=False)
            first = ~expected.duplicated(["end_date"])
            assert (served.update_flag.astype(int) == (repeated & first).astype(int)).all()


def test_real_announcement_dates_are_shared_by_all_apis(book):
    # 601899.SH's 20250630 report is in the real fina_indicator file only.
    for api in STATEMENTS:
        rows = book.query(api, {"ts_code": "601899.SH", "period": "20250630"})
        assert list(rows.ann_date) == ["20250827"]
    schedule = book.query("disclosure_date", {"ts_code": "601899.SH", "end_date": "20250630"})
    assert list(schedule.actual_date) == ["20250827"]


def test_disclosure_dates_match_the_reports(book):
    schedule = book.query("disclosure_date", {"end_date": "20231231"}).set_index("ts_code")
    reports = book.query("income_vip", {"period": "20231231"})
    first = reports[reports.update_flag == 0].set_index("ts_code")
    assert sorted(schedule.index) == sorted(first.index)
    assert (schedule.actual_date == first.ann_date.loc[schedule.index]).all()
    assert (schedule.ann_date < schedule.pre_date).all()
    moved = schedule.modify_date.notna()
    assert 0.03 < moved.mean() < 0.13
    assert (schedule.pre_date[~moved] == schedule.actual_date[~moved]).all()
    assert (schedule.pre_date[moved] != schedule.actual_date[moved]).all()


def test_disclosure_schedule_looks_ahead_of_as_of(book):
    upcoming = book.query("disclosure_date", {"end_date": "20260630"})
    assert len(upcoming) > 0 and upcoming.actual_date.isna().all()
    assert (upcoming.pre_date <= "20260830").all() and (upcoming.ann_date <= AS_OF).all()
    assert book.query("disclosure_date", {"end_date": "20261231"}).empty


def test_delisted_stocks_stop_reporting(book):
    for code, (listed, gone) in DELISTED.items():
        frame = book.query("income", {"ts_code": code})
        assert len(frame) > 0
        assert (frame.ann_date <= gone).all() and (frame.end_date >= listed).all()
        schedule = book.query("disclosure_date", {"ts_code": code})
        assert set(schedule.end_date) == set(frame.end_date)


def test_filters(book):
    frame = book.query("income", {"ts_code": "600519.SH", "start_date": "20230101", "end_date": "20231231"})
    assert len(frame) >= 4 and frame.ann_date.between("20230101", "20231231").all()
    assert book.query("income", {"ts_code": "600519.SH", "report_type": "2"}).empty
    on_day = book.query("income_vip", {"ann_date": "20240430"})
    assert len(on_day) > 100 and (on_day.ann_date == "20240430").all()
    assert book.query("income", {"ts_code": "NOPE.SZ"}).empty


def test_bad_parameters_raise_one_line_messages(book):
    with pytest.raises(ValueError) as error:
        book.query("income", {"period": "20231231"})
    assert str(error.value) == ("income needs ts_code (one stock per call); "
                                "use income_vip with period for the whole market")
    with pytest.raises(ValueError, match="period must be a quarter end"):
        book.query("income_vip", {"period": "20231230"})
    with pytest.raises(ValueError, match="needs period"):
        book.query("cashflow_vip", {})
