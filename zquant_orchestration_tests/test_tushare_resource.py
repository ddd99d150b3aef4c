"""The Tushare resource against the local server: complete results or a clear failure."""

from __future__ import annotations

import json
import logging
import math
import threading

import pandas as pd
import pytest

from zquant_orchestration.lib.tushare import (
    TushareAuthError,
    TushareEmptyReplyError,
    TusharePermissionError,
    TushareUnavailableError,
    protocol,
)
from zquant_orchestration.lib.tushare_server import FAULT_KINDS, LOCAL_TOKEN, FaultPlan

from .tushare_helpers import max_calls_in_window, resource_for


def same_rows(got: pd.DataFrame, truth: pd.DataFrame, keys: list[str]) -> None:
    got = got.sort_values(keys).reset_index(drop=True)
    truth = truth.sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, truth[list(got.columns)], check_dtype=False)
    assert not got.duplicated(keys).any()


def data_requests(server, api=None) -> list[dict]:
    return [r for r in server.requests if r.get("api") and (api is None or r["api"] == api)]


def test_paging_past_the_row_limit_returns_every_row_once(local_server):
    server = local_server(row_limits={"daily": 1000})
    resource = resource_for(server, row_limits={"daily": 1000})
    got = resource.query("daily", {"trade_date": "20240102"})
    same_rows(got, server.truth("daily", "20240102", "20240102"), ["ts_code", "trade_date"])
    offsets = [r["params"]["offset"] for r in data_requests(server, "daily")]
    assert offsets == [0, 1000, 2000, 3000, 4000, 5000]
    assert resource.metadata_since(0)["pages"] == 6


def test_a_full_last_page_ends_the_call_when_has_more_says_so(local_server, dataset):
    rows = len(dataset.query("daily", {"trade_date": "20240102"}))
    server = local_server(row_limits={"daily": rows // 2})
    resource = resource_for(server, row_limits={"daily": rows // 2})
    assert rows % 2 == 0, "the day was chosen for an even row count"
    got = resource.query("daily", {"trade_date": "20240102"})
    assert len(got) == rows
    # has_more is false on the second page: no third call to find out (test_source_faithful
    # covers a service that sends no has_more).
    assert [r["rows"] for r in data_requests(server)] == [rows // 2, rows // 2]


def test_the_quota_holds_across_threads_counted_by_the_server(local_server):
    # Tushare's window is 60 s; the same logic is tested on a 2 s window to keep the suite fast.
    server = local_server(calls_per_minute=8, window_seconds=2.0)
    resource = resource_for(server, calls_per_minute=8, rate_window_seconds=2.0)
    days = ["20240102", "20240103", "20240104", "20240105", "20240108"]
    errors: list[Exception] = []

    def work(day):
        try:
            for _ in range(4):
                resource.query("trade_cal", {"start_date": day, "end_date": day})
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(d,)) for d in days]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    arrivals = [r["t"] for r in data_requests(server)]
    assert len(arrivals) == 20
    assert max_calls_in_window(arrivals, 2.0) <= 8
    assert resource.metadata_since(0)["rate_limit_waits"] == 0


def test_a_rate_limit_reply_waits_for_the_window_instead_of_hammering(local_server):
    # The account's real quota (4 per window) is below what we configured (50).
    server = local_server(calls_per_minute=4, window_seconds=1.0)
    resource = resource_for(server, calls_per_minute=50, rate_window_seconds=1.0)
    for day in ["20240102", "20240103", "20240104", "20240105", "20240108", "20240109"]:
        assert len(resource.query("trade_cal", {"start_date": day, "end_date": day})) == 1
    limited = [r for r in data_requests(server) if r["code"] == 40203]
    assert 1 <= len(limited) <= 2, "after the first 40203 the client keeps to the server's number"
    assert resource.metadata_since(0)["rate_limit_waits"] == len(limited)


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_each_fault_kind_is_retried_to_the_exact_result(local_server, kind):
    server = local_server(faults=FaultPlan(rate=0.5, seed=3, kinds=(kind,), slow_seconds=1.5))
    resource = resource_for(server)
    for day in ["20240102", "20240103", "20240104"]:
        got = resource.query("daily", {"trade_date": day}, require_rows=True)
        same_rows(got, server.truth("daily", day, day), ["ts_code", "trade_date"])
    assert any(r.get("fault") == kind for r in server.requests), "the fault was injected"
    assert resource.metadata_since(0)["retries"] >= 1


def test_faults_that_never_end_fail_the_call_with_the_last_error(local_server):
    server = local_server(faults=FaultPlan(rate=1.0, seed=1, kinds=("http_5xx",)))
    resource = resource_for(server, max_attempts=3)
    with pytest.raises(TushareUnavailableError, match=r"daily\(trade_date=20240102\) failed 3 times, last: HTTP 5"):
        resource.query("daily", {"trade_date": "20240102"})
    assert len(data_requests(server)) == 3


def test_a_wrong_token_fails_after_one_call_naming_tushare_token(local_server):
    server = local_server()
    resource = resource_for(server, token="not-the-token")
    with pytest.raises(TushareAuthError, match="TUSHARE_TOKEN") as failure:
        resource.query("daily", {"trade_date": "20240102"})
    assert "daily" in str(failure.value) and "\n" not in str(failure.value)
    assert len(server.requests) == 1


def test_missing_permission_fails_after_one_call_naming_the_api_and_points(local_server):
    server = local_server(denied_apis=("income_vip",))
    resource = resource_for(server)
    with pytest.raises(TusharePermissionError, match=r"income_vip.*points"):
        resource.query("income_vip", {"period": "20231231"})
    assert len(server.requests) == 1


def test_an_empty_reply_where_rows_must_exist_is_an_error(local_server):
    server = local_server()
    resource = resource_for(server)
    # 2024-02-12 is a Spring Festival holiday: the source has nothing; a caller that says
    # rows must exist gets an error, never an empty success.
    with pytest.raises(TushareEmptyReplyError, match="returned no rows where rows must exist"):
        resource.query("daily", {"trade_date": "20240212"}, require_rows=True)
    assert resource.query("daily", {"trade_date": "20240212"}).empty


def test_the_token_never_reaches_logs_stats_or_errors(local_server, caplog):
    secret = "tok-5e3cr3t-d0-not-print"
    server = local_server(token=secret, faults=FaultPlan(rate=0.5, seed=9), denied_apis=("cashflow_vip",))
    resource = resource_for(server, token=secret)
    caplog.set_level(logging.DEBUG)
    resource.query("daily", {"trade_date": "20240102"})
    with pytest.raises(TusharePermissionError) as denied:
        resource.query("cashflow_vip", {"period": "20231231"})
    wrong = resource_for(server, token=secret + "x")
    with pytest.raises(TushareAuthError) as rejected:
        wrong.query("daily", {"trade_date": "20240102"})
    seen = [caplog.text, str(denied.value), str(rejected.value), repr(resource._client),
            json.dumps([s.as_dict() for s in resource.stats_since(0)], ensure_ascii=False),
            server.log_path.read_text(encoding="utf-8")]
    assert all(secret not in text for text in seen)
    assert resource.metadata_since(0)["retries"] >= 1, "retries (which log) happened"


def test_twenty_days_of_full_market_daily_under_faults_and_quota_equal_the_truth(local_server):
    """The acceptance run of the client: 30% faults, a 300/min quota, 20 trading days of `daily`."""
    server = local_server(calls_per_minute=300, faults=FaultPlan(rate=0.3, seed=2030, slow_seconds=1.5))
    resource = resource_for(server, calls_per_minute=300)
    days = [d for d in server.dataset.market.open_days if "20240102" <= d <= "20240129"]
    assert len(days) == 20
    got = pd.concat([resource.query("daily", {"trade_date": d}, require_rows=True) for d in days])
    same_rows(got, server.truth("daily", days[0], days[-1]), ["ts_code", "trade_date"])
    log_lines = [json.loads(line) for line in server.log_path.read_text(encoding="utf-8").splitlines()]
    assert {line["fault"] for line in log_lines} >= set(FAULT_KINDS)
    assert max_calls_in_window([line["t"] for line in log_lines if line["api"] == "daily"], 60.0) <= 300


def test_the_real_tushare_client_reads_our_server(local_server):
    """The server speaks the wire protocol of the official package, not just our client's."""
    import tushare as ts

    server = local_server()
    api = ts.pro_api(LOCAL_TOKEN)
    api._DataApi__http_url = server.url  # the package keeps its endpoint in a private attribute
    frame = api.daily(trade_date="20240102", fields="ts_code,close")
    assert list(frame.columns) == ["ts_code", "close"] and len(frame) > 5000
    assert api.query("stock_basic", fields=["ts_code", "name"]).iloc[0].ts_code == "000001.SZ"
    # Without fields, only the default-display columns, as the live service answers
    # (https://tushare.pro/document/2?doc_id=25: list_status, delist_date, exchange are N).
    listed = api.stock_basic()
    assert list(listed.columns) == ["ts_code", "symbol", "name", "area", "industry", "cnspell", "market",
                                    "list_date", "act_name", "act_ent_type"]
    assert len(listed) > 5000


def test_replies_decode_as_before_including_nan_and_garbage_is_named():
    # A Python server's json.dumps writes NaN for a missing float: that is not strict JSON,
    # but Python's json module reads it, so the client decodes it too (as NaN).
    body = b'{"request_id": "", "code": 0, "msg": "", "data": {"fields": ["ts_code", "pe"], ' \
           b'"items": [["000001.SZ", NaN], ["600519.SH", 28.5], ["\xe5\xb9\xb3\xe5\xae\x89", null]]}}'
    reply = protocol.decode_reply(body)
    assert reply.items[0][0] == "000001.SZ" and math.isnan(reply.items[0][1])
    assert reply.items[1:] == [["600519.SH", 28.5], ["平安", None]]
    for garbage in (body[:-7], b"<html>502 Bad Gateway</html>", b"\xff\xfe{}"):
        with pytest.raises(protocol.GarbageReply, match="reply is not JSON"):
            protocol.decode_reply(garbage)
