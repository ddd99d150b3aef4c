"""Tushare Pro's wire protocol: the one module that knows how requests and replies look.

The client (``client.py``) and the local server (``lib/tushare_server``) both speak
through these functions, so the two cannot drift apart. The format is the one the
official ``tushare`` package uses (tushare/pro/client.py):

    POST {http_url}/{api_name}
    {"api_name": ..., "token": ..., "params": {...}, "fields": "a,b,c"}
    -> {"code": 0, "msg": "", "data": {"fields": [...], "items": [[...], ...]}}

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

# Rows one call returns at most. When a reply holds this many rows there may be more,
# and the client asks for the next page with ``offset``. A value here that is LOWER than
# the service's real limit costs one extra call; a HIGHER one would silently lose rows,
# so when unsure, err low.
DEFAULT_ROW_LIMITS: dict[str, int] = {
    "trade_cal": 5000,
    "stock_basic": 6000,
    "daily": 6000,
    "adj_factor": 6000,
    "daily_basic": 6000,
    "income": 1000,
    "balancesheet": 1000,
    "cashflow": 1000,
    "fina_indicator": 100,
    "income_vip": 5000,
    "balancesheet_vip": 5000,
    "cashflow_vip": 5000,
    "fina_indicator_vip": 5000,
    "disclosure_date": 3000,
}
FALLBACK_ROW_LIMIT = 1000


def row_limit(api_name: str) -> int:
    return DEFAULT_ROW_LIMITS.get(api_name, FALLBACK_ROW_LIMIT)


def normalize_fields(fields: Any) -> list[str]:
    """'' / None -> [] (all columns); 'a,b' or ['a','b'] -> ['a', 'b']."""
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


def encode_reply(code: int, msg: str, fields: list[str] | None = None, items: list[list] | None = None) -> bytes:
    """A reply body as Tushare sends it: UTF-8 JSON, missing values as null. orjson, as for
    decoding: a full-market day encodes several times faster than with the json module,
    and the local server's encoding was a fifth of its CPU in the test suite."""
    data = {"fields": fields or [], "items": items or []} if code == CODE_OK else None
    return orjson.dumps({"request_id": "", "code": code, "msg": msg, "data": data})


@dataclass(frozen=True)
class Reply:
    code: int
    msg: str
    fields: list[str]
    items: list[list]


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
    return Reply(code=code, msg=msg, fields=fields, items=items)


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
