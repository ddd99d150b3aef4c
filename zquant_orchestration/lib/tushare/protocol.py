"""Tushare Pro's wire protocol: the one module that knows how requests and replies look.

The client (``client.py``) and the local server (``lib/tushare_server``) both speak
through these functions, so the two cannot drift apart. The format is the one the
official ``tushare`` package uses (tushare/pro/client.py):

    POST {http_url}/{api_name}
    {"api_name": ..., "token": ..., "params": {...}, "fields": "a,b,c"}
    -> {"code": 0, "msg": "", "data": {"fields": [...], "items": [[...], ...], "has_more": false}}

``has_more`` says whether rows remain past this page (the official client ignores it;
public threads show it in replies: waditu/tushare#1408, QHh6eQ/tushare-pro-java-sdk#2).

A nonzero ``code`` is an error whose ``msg`` is a Chinese sentence; the sentences
below are the ones the live service sends (see the fixtures README).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson

TUSHARE_HTTP_URL = "http://api.waditu.com/dataapi"

# Reply codes. Tushare documents few of them; these are the ones seen in the wild.
CODE_OK = 0
CODE_BAD_TOKEN = 40101
CODE_RATE_LIMIT = 40203  # also used for "no permission" and the daily cap: read the message
CODE_BAD_REQUEST = 40001  # our local server's code for a malformed call; never worth retrying
CODE_SERVER_ERROR = 50101  # a transient fault on the server side

MSG_BAD_TOKEN = "您的token不对，请确认。"
MSG_RATE_LIMIT = "抱歉，您每分钟最多访问该接口{limit}次，权限的具体详情访问：https://tushare.pro/document/1?doc_id=108。"
MSG_DAILY_CAP = "抱歉，您每天最多访问该接口{limit}次，权限的具体详情访问：https://tushare.pro/document/1?doc_id=108。"
MSG_NO_PERMISSION = "抱歉，您没有接口访问权限，权限的具体详情访问：https://tushare.pro/document/1?doc_id=108。"
MSG_SERVER_ERROR = "系统内部错误，请稍后重试。"
MSG_BAD_REQUEST = "参数错误：{detail}"
MSG_UNKNOWN_API = "请指定正确的接口名：{api_name}"

# Rows one call returns at most, from Tushare's documentation (page: https://tushare.pro/document/2?doc_id=N,
# or Tushare's own "Tushare接口文档" articles where the page gives no number). The client asks for
# this many and pages on the reply's ``has_more``; without ``has_more`` a full page means maybe
# more. The local server serves exactly these.
DEFAULT_ROW_LIMITS: dict[str, int] = {
    "trade_cal": 5000,       # doc 26 gives no number ("one call holds an exchange's calendar"); ours
    "stock_basic": 6000,     # doc 25 article: 每次最多返回6000行
    "daily": 6000,           # doc 27: 每次6000条数据
    "adj_factor": 6000,      # doc 28 gives no number; as daily
    "daily_basic": 6000,     # doc 32: 单次请求最大返回6000条数据
    "income": 500,           # doc 33 article: 单次请求最大返回500行
    "balancesheet": 100,     # doc 36 article: 单次请求最大返回100行
    "cashflow": 100,         # doc 44 article: 单次请求最大返回100行
    "fina_indicator": 100,   # doc 79: 每次请求最多返回100条记录
    # The *_vip variants share their base's page, which gives them no number of their own.
    "income_vip": 5000,
    "balancesheet_vip": 5000,
    "cashflow_vip": 5000,
    "fina_indicator_vip": 5000,
    "disclosure_date": 3000,  # doc 162: 单次最大3000
    "index_basic": 8000,      # doc 94 gives no number; Tushare's article (aliyun 1750083): 单次请求最大返回8000行
    "index_weight": 3000,     # doc 96 gives no number; 3000 a page is what public clients page with
    "index_daily": 8000,      # doc 95: 单次调取最多取8000行记录
    "index_dailybasic": 3000,  # doc 128: 单次限量3000条
    "moneyflow": 6000,        # doc 170: 单次最大提取6000行记录
    "top_list": 10000,        # doc 106: 单次请求返回最大10000行数据
    "margin_detail": 6000,    # doc 59: 单次请求最大返回6000行数据
    "stk_factor_pro": 10000,  # doc 328: 单次调取最多返回10000条数据
    "stk_limit": 5800,       # doc 183: 单次最多提取5800条记录 (a 2026 article says 7800; the page is stricter)
    "suspend_d": 5000,       # doc 214 gives no number; article: 单次请求最大返回5000行
    "dividend": 2000,        # doc 103 gives no number; article: 单次请求最大返回2000行
    "namechange": 10000,     # doc 100 gives no number; article: 单次请求最大返回10000行
}
FALLBACK_ROW_LIMIT = 1000


def row_limit(api_name: str) -> int:
    return DEFAULT_ROW_LIMITS.get(api_name, FALLBACK_ROW_LIMIT)


def normalize_fields(fields: Any) -> list[str]:
    """'' / None -> [] (the default-display columns); 'a,b' or ['a','b'] -> ['a', 'b']."""
    if fields is None or fields == "":
        return []
    if isinstance(fields, str):
        return [f.strip() for f in fields.split(",") if f.strip()]
    if isinstance(fields, (list, tuple)):
        return [str(f).strip() for f in fields if str(f).strip()]
    raise ValueError(f"fields must be a comma-separated string or a list, got {type(fields).__name__}")


def encode_request(api_name: str, token: str, params: dict[str, Any], fields: list[str]) -> bytes:
    body = {"api_name": api_name, "token": token, "params": params, "fields": ",".join(fields)}
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class Request:
    api_name: str
    token: str
    params: dict[str, Any]
    fields: list[str]


def decode_request(path: str, body: bytes) -> Request:
    """Server side: ``POST /{api_name}`` or ``POST /`` with ``api_name`` in the body."""
    payload = json.loads(body.decode("utf-8"))
    if not isinstance(payload, dict):
        raise ValueError("request body must be a JSON object")
    path_api = path.strip("/").split("/")[-1] if path.strip("/") else ""
    api_name = payload.get("api_name") or path_api
    if not api_name:
        raise ValueError("no api_name in the path or the body")
    params = payload.get("params") or {}
    if not isinstance(params, dict):
        raise ValueError("params must be a JSON object")
    return Request(
        api_name=str(api_name),
        token=str(payload.get("token") or ""),
        params=params,
        fields=normalize_fields(payload.get("fields")),
    )


def encode_reply(code: int, msg: str, fields: list[str] | None = None, items: list[list] | None = None,
                 has_more: bool | None = None) -> bytes:
    """A reply body as Tushare sends it: UTF-8 JSON, missing values as null; ``has_more``
    left out when None. orjson, as for decoding: a full-market day encodes several times
    faster than with the json module, and the local server's encoding was a fifth of its
    CPU in the test suite."""
    data = {"fields": fields or [], "items": items or []} if code == CODE_OK else None
    if data is not None and has_more is not None:
        data["has_more"] = has_more
    return orjson.dumps({"request_id": "", "code": code, "msg": msg, "data": data})


@dataclass(frozen=True)
class Reply:
    code: int
    msg: str
    fields: list[str]
    items: list[list]
    has_more: bool | None = None  # None: the reply does not say


class GarbageReply(ValueError):
    """The body is not a Tushare reply (truncated JSON, an HTML error page, ...)."""


def decode_reply(body: bytes) -> Reply:
    try:
        # orjson: a full-market day (5,300 rows) decodes in ~6 ms against ~25 ms with the
        # json module, and decoding is most of a fetch's CPU. It reads strict JSON only; a
        # reply it refuses is read again by the json module, which also takes NaN and
        # Infinity, so no reply that decoded before is refused now.
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise GarbageReply(f"reply is not JSON ({exc.__class__.__name__}: {str(exc)[:80]})") from None
    if not isinstance(payload, dict) or "code" not in payload:
        raise GarbageReply("reply JSON has no 'code'")
    try:
        code = int(payload["code"])
    except (TypeError, ValueError):
        raise GarbageReply(f"reply code is not a number: {payload['code']!r}") from None
    msg = str(payload.get("msg") or "")
    if code != CODE_OK:
        return Reply(code=code, msg=msg, fields=[], items=[])
    data = payload.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("fields"), list) or not isinstance(
        data.get("items"), list
    ):
        raise GarbageReply("reply has code 0 but no data.fields / data.items lists")
    fields = data["fields"]
    items = data["items"]
    width = len(fields)
    for row in items:
        if not isinstance(row, list) or len(row) != width:
            raise GarbageReply(f"reply row does not have {width} values: {str(row)[:80]}")
    has_more = data.get("has_more")
    if has_more is not None and not isinstance(has_more, bool):
        raise GarbageReply(f"reply has_more is not true or false: {has_more!r}")
    return Reply(code=code, msg=msg, fields=fields, items=items, has_more=has_more)


# --- what an error reply means -------------------------------------------------------

def is_bad_token(code: int, msg: str) -> bool:
    return code == CODE_BAD_TOKEN or "token不对" in msg or "token无效" in msg


def is_no_permission(msg: str) -> bool:
    return "没有接口访问权限" in msg or "积分不足" in msg


def is_bad_request(code: int, msg: str) -> bool:
    return code == CODE_BAD_REQUEST or msg.startswith("参数错误") or "正确的接口名" in msg


def is_daily_cap(msg: str) -> bool:
    return "每天最多访问" in msg


def per_minute_limit_in(msg: str) -> int | None:
    """The N of '每分钟最多访问该接口N次', or None when the message is not a rate limit."""
    marker = "每分钟最多访问该接口"
    start = msg.find(marker)
    if start < 0:
        return None
    digits = ""
    for ch in msg[start + len(marker):]:
        if ch.isdigit():
            digits += ch
        else:
            break
    return int(digits) if digits else 0
