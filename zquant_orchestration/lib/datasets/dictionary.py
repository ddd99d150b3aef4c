"""The data dictionary, ``docs/datasets.md``, written from the declarations:
``python -m zquant_orchestration.lib.datasets.dictionary > docs/datasets.md``
(``test_datasets_dictionary.py`` keeps the file equal to what this prints)."""

from __future__ import annotations

from .declarations import DECLARATIONS, DEFAULT_ENABLED, DEFAULT_INDEX_CODES
from .spec import DatasetSpec, Fetch

PARTITIONS = {
    Fetch.REFERENCE: "none: the whole table, replaced per refresh",
    Fetch.TRADE_DATE: "SSE trading day (`trade_date`)",
    Fetch.EX_DATE: "SSE trading day (`ex_date`)",
    Fetch.PER_CODE: "SSE trading day (`trade_date`), one call per configured code per run",
    Fetch.REPORT_PERIOD: "report period (`end_date`, quarter ends)",
}


def _checks(spec: DatasetSpec) -> str:
    checks = []
    if spec.fetch is not Fetch.REPORT_PERIOD and spec.fetch is not Fetch.REFERENCE:
        checks.append("no_duplicate_keys")
    if spec.name == "daily_bars":
        checks += ["ohlc_sane", "rows_match_listed_universe"]
    if spec.name == "adj_factor":
        checks.append("adj_factor_covers_daily_bars")
    if spec.covers_daily_bars:
        checks.append(f"covers_daily_bars (≥ {spec.covers_daily_bars:.0%})")
    if spec.fetch is Fetch.REFERENCE:
        checks.append("never shrinks unless `allow_removals`")
    if spec.required_values:
        checks.append("refused reply without " + ", ".join(f"`{v}`" for v in spec.required_values))
    return "; ".join(checks) or "—"


def _enabled(spec: DatasetSpec) -> str:
    if spec.core:
        return "always"
    return "default" if spec.name in DEFAULT_ENABLED else "opt-in"


def render() -> str:
    lines = [
        "# Data dictionary",
        "",
        "Written from the dataset catalog (`zquant_orchestration/lib/datasets/declarations.py`) by",
        "`python -m zquant_orchestration.lib.datasets.dictionary > docs/datasets.md`; a test keeps",
        "them equal. Each table is named after its dataset and holds its Tushare API's documented",
        "columns (`zquant_orchestration/lib/tushare/schema_columns.json`).",
        "",
        "**On** says whether a dataset is fetched without being asked for: *always* (the foundation),",
        "*default* (an account of 2,000 points may read it; `ZQUANT_DATASETS` unset), or *opt-in*",
        "(`ZQUANT_DATASETS=all` or its name). Index datasets fetch `ZQUANT_INDEX_CODES`, by default "
        + ", ".join(f"`{c}`" for c in DEFAULT_INDEX_CODES) + ".",
        "",
        "| dataset (table) | on | partitions | source API | points | rows a call | keys | published | "
        "an open day may be empty | checks |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for spec in DECLARATIONS:
        if spec.published:
            published = str(spec.published)
        elif spec.fetch is Fetch.REPORT_PERIOD:
            published = "as each company discloses: the disclosure sensor asks after each announcement"
        else:
            published = "reference: the morning refresh"
        if spec.published and spec.published.note:
            published += f" ({spec.published.note})"
        since = f"; from {spec.available_from}" if spec.available_from else ""
        empty = "yes" if spec.may_be_empty else ("no" if spec.partitioned_by_day else "—")
        lines.append(
            f"| `{spec.name}` | {_enabled(spec)} | {PARTITIONS[spec.fetch]}{since} | [`{spec.api}`]({spec.doc_url}) "
            f"| {spec.points} | {spec.row_limit} | {', '.join(f'`{k}`' for k in spec.keys)} | {published} | "
            f"{empty} | {_checks(spec)} |")
    lines += [
        "",
        "## Derived",
        "",
        "| table | from | what |",
        "|---|---|---|",
        "| `daily_hfq` | `daily_bars`, `adj_factor` | backward-adjusted bars, as Tushare's `pro_bar(adj='hfq')` |",
        "| `daily_qfq` (view) | `daily_bars`, `adj_factor` | forward-adjusted bars, anchored at the latest factor |",
        "| `daily_factors` | `daily_hfq`, `daily_basic` | momentum, volatility, turnover and valuation factors |",
        "| `<statement>_pit` (views) | the statement tables | each version with `known_from` / `known_until` |",
        "| `daily_tradable` | `daily_bars`, `stk_limit`, `suspend_d`, `namechange`, `stock_basic`, `trade_cal` | "
        "per stock and day: `is_st`, `is_suspended`, `traded`, `at_up_limit`, `at_down_limit`, `listed_days` "
        "(rules in `lib/tradable.py`; built when its three optional datasets are on) |",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")
