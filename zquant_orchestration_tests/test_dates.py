"""The one module that converts days between ``date``, ISO text and Tushare's YYYYMMDD."""

from datetime import date, datetime

import pandas as pd
import pytest

from zquant_orchestration.lib import dates


@pytest.mark.parametrize("value", [date(2024, 1, 2), datetime(2024, 1, 2, 15, 30), pd.Timestamp("2024-01-02"),
                                   "2024-01-02", "20240102", " 20240102 ", "2024-01-02 00:00:00"])
def test_every_spelling_of_a_day_is_that_day(value):
    assert dates.to_date(value) == date(2024, 1, 2)
    assert dates.iso(value) == "2024-01-02"
    assert dates.compact(value) == "20240102"


@pytest.mark.parametrize("value", ["2024013", "2024-13-01", "20241301", "yesterday", "", "2024/01/02", 20240102.5])
def test_what_is_no_day_is_refused_naming_the_value(value):
    with pytest.raises(ValueError, match="not a day .*YYYY-MM-DD or YYYYMMDD"):
        dates.to_date(value)


@pytest.mark.parametrize("missing", [None, float("nan"), pd.NA, pd.NaT])
def test_a_missing_value_stays_missing(missing):
    assert dates.iso_or_none(missing) is None


def test_a_span_and_a_column_of_tushare_days():
    assert dates.span(["2024-01-02", "2024-01-03", "2024-01-05"]) == (date(2024, 1, 2), date(2024, 1, 5))
    column = pd.Series(["20240102", "20240102", "20240103"])
    assert dates.compact_to_iso(column).tolist() == ["2024-01-02", "2024-01-02", "2024-01-03"]
