"""The accounting model of the synthetic statements: per-stock traits, then the key figures
of all four statements for a batch of report versions.

Flows are year-to-date sums of quarterly figures; the key lines of each statement obey
the accounting identities and agree across statements (eps, roe, bps, debt_to_assets,
margins, net profit, cash). A correction (version 1) changes the profit lines by 1..6%,
in all four statements. Other float columns are empty for about half the stocks and
small plausible numbers otherwise.

Every figure is a pure function of (ts_code, report period, version, column), so a row's
value never depends on which other rows are built with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..hashing import keyed_normal, keyed_uniform, tag
from .quarters import quarter_of

NULL_SHARE = 0.5  # share of (stock, non-key column) left empty, as in real Tushare

EXPENSES = ("biz_tax_surchg", "sell_exp", "admin_exp", "rd_exp", "fin_exp", "assets_impair_loss",
            "credit_impa_loss")


def r2(x: np.ndarray) -> np.ndarray:
    return np.round(x, 2)


def r4(x: np.ndarray) -> np.ndarray:
    return np.round(x, 4)


@dataclass(frozen=True)
class Rows:
    """The report versions to build: parallel arrays, one element per output row."""

    sidx: np.ndarray  # stock position in the universe
    sk: np.ndarray  # stock hash key (uint64)
    period: np.ndarray  # YYYYMMDD quarter end
    version: np.ndarray  # 0 original, 1 correction
    ann: np.ndarray  # announcement day (days since epoch)

    @property
    def year(self) -> np.ndarray:
        return self.period // 10000

    @property
    def quarter(self) -> np.ndarray:
        return quarter_of(self.period)


def stock_params(sk: np.ndarray) -> dict[str, np.ndarray]:
    """Per-stock traits, stable over time, so a stock's reports look like one company."""

    def u(name: str) -> np.ndarray:
        return keyed_uniform(sk, tag(name))

    def n(name: str) -> np.ndarray:
        return keyed_normal(sk, tag(name))

    level = np.exp(np.log(3e8) + u("p.level") * np.log(300.0))  # 2020 revenue, 3e8..9e10
    return {
        "level": level,
        "growth": np.clip(0.07 + 0.05 * n("p.growth"), -0.05, 0.18),
        "margin": np.clip(0.08 + 0.07 * n("p.margin"), -0.15, 0.45),  # ~13% loss makers
        "tax": np.where(u("p.tax") < 0.4, 0.15, 0.25),
        "minority": 0.15 * u("p.minority") ** 2,
        "cost": 0.45 + 0.45 * u("p.cost"),
        "assets": np.exp(np.log(0.6) + u("p.assets") * np.log(4.0 / 0.6)),
        "debt": 0.15 + 0.7 * u("p.debt"),
        "cur_assets": 0.2 + 0.55 * u("p.cur_assets"),
        "cash": 0.1 + 0.35 * u("p.cash"),
        "cur_liab": 0.4 + 0.55 * u("p.cur_liab"),
        "capex": 0.02 + 0.13 * u("p.capex"),
        # shares follow size, so EPS lands in a plausible -2..7 yuan
        "shares": np.round(level * (0.05 + 0.55 * u("p.shares"))),
        "int_income": (u("p.int_income") < 0.15).astype(np.float64),
    }


def expense_shares(sk: np.ndarray) -> np.ndarray:
    """Each stock's split of its costs over the expense lines (expense line x stock)."""
    weights = np.stack([keyed_uniform(sk, tag(f"p.w.{e}")) + 0.1 for e in EXPENSES])
    return weights / weights.sum(axis=0)


def figures(rows: Rows, params: dict, expense_split: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """The key figures of all four statements, so the APIs agree with each other."""
    p = {k: v[rows.sidx] for k, v in params.items()}
    flows = _quarterly_flows(rows, p)
    delta = _restatement_delta(rows)
    original = _profit_chain(flows, p["minority"], np.ones(len(rows.sidx)))
    profit = _profit_chain(flows, p["minority"], 1.0 + delta)
    balance = _balance(rows, p, profit, original)
    income = _income(rows, p, flows["revenue"], profit, balance, expense_split[:, rows.sidx])
    cash = _cashflow(rows, p, income, original, balance)
    indicator = _indicator(rows, p, income, balance, cash)
    return {"income": income, "balancesheet": balance, "cashflow": cash, "fina_indicator": indicator}


def annual_level(sk: np.ndarray, year: np.ndarray, p: dict) -> np.ndarray:
    """Annual revenue of a stock in a year: a growth trend plus yearly noise."""
    return p["level"] * np.exp(p["growth"] * (year - 2020) + 0.1 * keyed_normal(sk, year, tag("level")))


def _quarterly_flows(rows: Rows, p: dict) -> dict[str, np.ndarray]:
    """Year-to-date sums of single-quarter flows, so Q1 < H1 < Q3 < annual.

    Each quarter's margin keeps the stock's sign, so |profit| grows through the year too.
    Sums are spelled out (no axis reductions) so a row's value does not depend on the batch.
    """
    sk, year, quarter = rows.sk, rows.year, rows.quarter
    level = annual_level(sk, year, p)
    weights = [np.exp(0.15 * keyed_normal(sk, year, tag(f"season{j}"))) for j in range(4)]
    total_weight = weights[0] + weights[1] + weights[2] + weights[3]
    ytd = {name: np.zeros(len(sk)) for name in ("revenue", "op", "noi", "noe", "tax")}
    for j in range(4):
        included = quarter > j
        revenue = level * weights[j] / total_weight
        margin = np.clip(p["margin"] * np.exp(0.25 * keyed_normal(sk, year, tag(f"margin{j}"))), -0.6, 0.6)
        op = revenue * margin
        noi = np.abs(op) * 0.08 * keyed_uniform(sk, year, tag(f"noi{j}"))
        noe = np.abs(op) * 0.08 * keyed_uniform(sk, year, tag(f"noe{j}"))
        tax = np.maximum(op + noi - noe, 0.0) * p["tax"]
        for name, value in (("revenue", revenue), ("op", op), ("noi", noi), ("noe", noe), ("tax", tax)):
            ytd[name] = ytd[name] + np.where(included, value, 0.0)
    ytd["revenue"] = r2(ytd["revenue"])
    return ytd


def _income(rows: Rows, p: dict, revenue: np.ndarray, profit: dict, balance: dict,
            expense_split: np.ndarray) -> dict:
    sk, period = rows.sk, rows.period

    def ratio(name: str, scale: float) -> np.ndarray:
        return r2(revenue * scale * keyed_normal(sk, period, tag(name)))

    int_share = 0.002 + 0.028 * keyed_uniform(sk, period, tag("int_income"))
    int_income = np.where(p["int_income"] > 0, r2(revenue * int_share), np.nan)
    total_revenue = r2(revenue + np.nan_to_num(int_income))
    gains = {
        "invest_income": ratio("invest_income", 0.01),
        "fv_value_chg_gain": ratio("fv_value_chg_gain", 0.003),
        "oth_income": r2(revenue * 0.005 * keyed_uniform(sk, period, tag("oth_income"))),
        "asset_disp_income": ratio("asset_disp_income", 0.001),
    }
    # operate_profit = total_revenue - total_cogs + gains, with total_cogs the balancing item.
    total_cogs = r2(total_revenue + sum(gains.values()) - profit["operate_profit"])
    cost_noise = np.exp(0.03 * keyed_normal(sk, period, tag("oper_cost")))
    oper_cost = r2(np.minimum(revenue * p["cost"] * cost_noise, 0.85 * total_cogs))
    expenses = _split(total_cogs - oper_cost, expense_split)
    fin_exp_int_inc = r2(expenses["fin_exp"] * 0.3 * keyed_uniform(sk, period, tag("fin_exp_int_inc")))
    fin_exp_int_exp = r2(expenses["fin_exp"] + fin_exp_int_inc)
    ebit = r2(profit["total_profit"] + fin_exp_int_exp)
    oci = r2(profit["n_income"] * 0.02 * keyed_normal(sk, period, tag("oci")))
    oci_minority = r2(oci * p["minority"])
    basic_eps = r4(profit["n_income_attr_p"] / p["shares"])
    diluted = keyed_uniform(sk, tag("diluted")) < 0.2
    return {
        **profit, **gains, **expenses,
        "revenue": revenue, "int_income": int_income, "total_revenue": total_revenue,
        "total_cogs": total_cogs, "oper_cost": oper_cost,
        "fin_exp_int_inc": fin_exp_int_inc, "fin_exp_int_exp": fin_exp_int_exp,
        "ebit": ebit, "ebitda": r2(ebit + balance["_depreciation"] + balance["_amortisation"]),
        "oth_compr_income": oci, "t_compr_income": r2(profit["n_income"] + oci),
        "compr_inc_attr_p": r2(profit["n_income_attr_p"] + oci - oci_minority),
        "compr_inc_attr_m_s": r2(profit["minority_gain"] + oci_minority),
        "continued_net_profit": profit["n_income"],
        "basic_eps": basic_eps, "diluted_eps": np.where(diluted, r4(basic_eps * 0.98), basic_eps),
    }


def _assets(sk: np.ndarray, period: np.ndarray, p: dict) -> dict[str, np.ndarray]:
    """Original (unrestated) asset side at a period end; also used for the prior year end."""
    level = annual_level(sk, period // 10000, p)
    total_assets = r2(level * p["assets"] * np.exp(0.04 * keyed_normal(sk, period, tag("total_assets"))))
    cur_noise = np.exp(0.03 * keyed_normal(sk, period, tag("cur_assets")))
    cur_share = np.clip(p["cur_assets"] * cur_noise, 0.05, 0.95)
    cur_assets = r2(total_assets * cur_share)
    money_cap = r2(cur_assets * p["cash"] * np.exp(0.1 * keyed_normal(sk, period, tag("money_cap"))))
    return {"total_assets": total_assets, "total_cur_assets": cur_assets, "money_cap": money_cap}


def _balance(rows: Rows, p: dict, profit: dict, original: dict) -> dict:
    sk, period = rows.sk, rows.period
    assets = _assets(sk, period, p)
    debt = np.clip(p["debt"] + 0.02 * keyed_normal(sk, period, tag("debt")), 0.03, 0.97)
    total_liab = r2(assets["total_assets"] * debt)
    equity0 = assets["total_assets"] - total_liab
    minority0 = r2(equity0 * p["minority"])
    parent0 = r2(equity0 - minority0)
    # A correction flows into retained earnings; liabilities stay, assets follow the identity.
    parent = r2(parent0 + profit["n_income_attr_p"] - original["n_income_attr_p"])
    minority = r2(minority0 + profit["minority_gain"] - original["minority_gain"])
    equity = r2(parent + minority)
    total_assets = r2(total_liab + equity)
    cur_liab_share = np.clip(p["cur_liab"] + 0.03 * keyed_normal(sk, period, tag("cur_liab")), 0.1, 1.0)
    cur_liab = r2(total_liab * cur_liab_share)
    reserves = np.maximum(parent0 - p["shares"], 0.0)
    cap_rese, surplus_rese = r2(reserves * 0.4), r2(reserves * 0.1)
    non_current0 = assets["total_assets"] - assets["total_cur_assets"]
    return {
        "total_assets": total_assets, "total_cur_assets": assets["total_cur_assets"],
        "total_nca": r2(total_assets - assets["total_cur_assets"]), "money_cap": assets["money_cap"],
        "total_liab": total_liab, "total_cur_liab": cur_liab, "total_ncl": r2(total_liab - cur_liab),
        "total_share": p["shares"], "cap_rese": cap_rese, "surplus_rese": surplus_rese,
        "undistr_porfit": r2(parent - p["shares"] - cap_rese - surplus_rese),
        "minority_int": minority, "total_hldr_eqy_exc_min_int": parent,
        "total_hldr_eqy_inc_min_int": equity, "total_liab_hldr_eqy": total_assets,
        # year-to-date D&A for income's ebitda and cashflow; not balance-sheet columns
        "_depreciation": r2(non_current0 * 0.05 * rows.quarter / 4),
        "_amortisation": r2(non_current0 * 0.01 * rows.quarter / 4),
    }


def _cashflow(rows: Rows, p: dict, income: dict, original: dict, balance: dict) -> dict:
    sk, period, revenue = rows.sk, rows.period, income["revenue"]
    # Operating cash follows the original profit: a restatement is an accounting correction.
    ocf = r2(original["n_income"] * (1 + 0.4 * keyed_normal(sk, period, tag("ocf")))
              + revenue * 0.03 * keyed_normal(sk, period, tag("ocf.rev")))
    capex = r2(revenue * p["capex"] * np.exp(0.2 * keyed_normal(sk, period, tag("capex"))))
    invest = r2(-capex + revenue * 0.02 * keyed_normal(sk, period, tag("invest")))
    end_cash = balance["money_cap"]
    # Statements are year-to-date, so the opening cash is that of the prior year end.
    begin_cash = _assets(sk, (period // 10000 - 1) * 10000 + 1231, p)["money_cap"]
    increase = r2(end_cash - begin_cash)
    fx = r2(revenue * 0.001 * keyed_normal(sk, period, tag("fx")))
    return {
        "net_profit": income["n_income"], "finan_exp": income["fin_exp"],
        "credit_impa_loss": income["credit_impa_loss"],
        "n_cashflow_act": ocf, "im_net_cashflow_oper_act": ocf,
        "c_pay_acq_const_fiolta": capex, "n_cashflow_inv_act": invest,
        "free_cashflow": r2(ocf - capex),
        # financing is the balancing item of the cash reconciliation
        "n_cash_flows_fnc_act": r2(increase - ocf - invest - fx), "eff_fx_flu_cash": fx,
        "n_incr_cash_cash_equ": increase, "im_n_incr_cash_equ": increase,
        "c_cash_equ_end_period": end_cash, "c_cash_equ_beg_period": begin_cash,
        "end_bal_cash": end_cash, "beg_bal_cash": begin_cash,
        "c_fr_sale_sg": r2(revenue * (1.0 + 0.13 * keyed_uniform(sk, period, tag("c_fr_sale_sg")))),
        "depr_fa_coga_dpba": balance["_depreciation"], "amort_intang_assets": balance["_amortisation"],
    }


def _restatement_delta(rows: Rows) -> np.ndarray:
    """Relative change of the profit lines in a correction: +-1..6%, zero for originals."""
    size = 0.01 + 0.05 * keyed_uniform(rows.sk, rows.period, tag("restate.size"))
    sign = np.where(keyed_uniform(rows.sk, rows.period, tag("restate.sign")) < 0.5, -1.0, 1.0)
    return np.where(rows.version == 1, size * sign, 0.0)


def _profit_chain(flows: dict, minority_share: np.ndarray, factor: np.ndarray) -> dict:
    """Operating profit down to the parent's net income; a correction scales the whole chain."""
    operate_profit = r2(flows["op"] * factor)
    non_oper_income = r2(flows["noi"] * factor)
    non_oper_exp = r2(flows["noe"] * factor)
    total_profit = r2(operate_profit + non_oper_income - non_oper_exp)
    income_tax = r2(flows["tax"] * factor)
    n_income = r2(total_profit - income_tax)
    minority_gain = r2(n_income * minority_share)
    return {
        "operate_profit": operate_profit, "non_oper_income": non_oper_income,
        "non_oper_exp": non_oper_exp, "total_profit": total_profit, "income_tax": income_tax,
        "n_income": n_income, "minority_gain": minority_gain,
        "n_income_attr_p": r2(n_income - minority_gain),
    }


def _split(total: np.ndarray, shares: np.ndarray) -> dict[str, np.ndarray]:
    """Split a total over the expense lines; the last line takes the rounding rest."""
    parts = {name: r2(total * share) for name, share in zip(EXPENSES[:-1], shares[:-1], strict=True)}
    parts[EXPENSES[-1]] = r2(total - sum(parts.values()))
    return parts


def _indicator(rows: Rows, p: dict, income: dict, balance: dict, cash: dict) -> dict:
    shares, revenue = p["shares"], income["revenue"]
    parent = balance["total_hldr_eqy_exc_min_int"]
    equity, assets = balance["total_hldr_eqy_inc_min_int"], balance["total_assets"]
    gross = r2(revenue - income["oper_cost"])
    extra_item = r2(income["non_oper_income"] - income["non_oper_exp"])
    roe = r4(income["n_income_attr_p"] / parent * 100)
    return {
        "eps": income["basic_eps"], "dt_eps": income["diluted_eps"],
        "total_revenue_ps": r4(income["total_revenue"] / shares), "revenue_ps": r4(revenue / shares),
        "extra_item": extra_item, "profit_dedt": r2(income["n_income_attr_p"] - extra_item),
        "gross_margin": gross, "current_ratio": r4(balance["total_cur_assets"] / balance["total_cur_liab"]),
        "ebit": income["ebit"], "ebitda": income["ebitda"],
        "working_capital": r2(balance["total_cur_assets"] - balance["total_cur_liab"]),
        "bps": r4(parent / shares), "ocfps": r4(cash["n_cashflow_act"] / shares),
        "cfps": r4(cash["n_incr_cash_cash_equ"] / shares),
        "netprofit_margin": r4(income["n_income"] / revenue * 100),
        "grossprofit_margin": r4(gross / revenue * 100),
        "roe": roe, "roe_yearly": r4(roe * 4 / rows.quarter),
        "roa": r4(income["n_income"] / assets * 100),
        "debt_to_assets": r4(balance["total_liab"] / assets * 100),
        "assets_to_eqt": r4(assets / equity), "debt_to_eqt": r4(balance["total_liab"] / equity),
        "ca_to_assets": r4(balance["total_cur_assets"] / assets * 100),
        "nca_to_assets": r4(balance["total_nca"] / assets * 100),
        "rd_exp": income["rd_exp"],
    }


def generic_block(api: str, columns: list[str], rows: Rows, scale: np.ndarray | None) -> np.ndarray:
    """Non-key columns (rows x columns): each empty for about half the stocks (always the same
    ones), else plausible: amounts a small share of revenue or assets, indicators ratios."""
    tags = np.array([tag(f"{api}.{c}") for c in columns], dtype=np.uint64)[None, :]
    sk, period = rows.sk[:, None], rows.period[:, None]
    u = keyed_uniform(sk, period, tags)
    value = r4((u - 0.3) * 50.0) if scale is None else r2(scale[:, None] * 0.05 * u)
    return np.where(keyed_uniform(sk, tags) < NULL_SHARE, np.nan, value)

