"""A Tushare-Pro-compatible HTTP server on 127.0.0.1: the offline source and the test double.

It speaks the wire protocol of ``lib/tushare/protocol.py`` (``POST /{api_name}`` or
``POST /`` with ``api_name`` in the body), checks the token, answers a call without
``fields`` with the default-display columns only, pages with the documented per-call row
limits and an exact ``has_more``, enforces an optional per-API quota with Tushare's own
messages and codes, and injects faults on request from a seeded random stream
(``faults.py``). Every request is logged (one JSON object a line, never the token) so that
tests can judge the client by the server's view: how many calls arrived in any 60-second
window, which pages were asked for, and so on.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections import OrderedDict, defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd

from ..tushare import protocol
from ..tushare.catalog import default_fields, known_fields
from .dataset import Dataset
from .faults import DATA_FAULT_KINDS, FAULT_KINDS, FaultPlan

LOCAL_TOKEN = "zquant-local"  # the local server's default token (not a secret)
__all__ = ["DATA_FAULT_KINDS", "FAULT_KINDS", "LOCAL_TOKEN", "FaultPlan", "LocalTushareServer"]


class Quota:
    """Per-API calls per window, counted on arrival (rejected calls count too, as they do at Tushare)."""

    def __init__(self, calls_per_minute: int | None, per_api: dict[str, int], window_seconds: float):
        self.default = calls_per_minute
        self.per_api = per_api
        self.window = window_seconds
        self._arrivals: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def limit(self, api_name: str) -> int | None:
        return self.per_api.get(api_name, self.default)

    def admit(self, api_name: str, now: float) -> bool:
        limit = self.limit(api_name)
        if not limit:
            return True
        with self._lock:
            arrivals = self._arrivals[api_name]
            while arrivals and arrivals[0] <= now - self.window:
                arrivals.popleft()
            arrivals.append(now)
            return len(arrivals) <= limit


class ReplyCache:
    """Encoded replies of data requests, least recently used out first, up to ``max_bytes``.

    For benchmarks (bench/): the real service spends its own CPU on a reply, this server
    spends ours. With the replies of a sync rendered beforehand (``warm``), the machine's
    cores measure the client, the warehouse and Dagster, not the test double. Quota and
    faults still apply to every request; only the rendering is skipped.
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._replies: OrderedDict[tuple, tuple[bytes, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @staticmethod
    def key(request: protocol.Request) -> tuple:
        return request.api_name, json.dumps(request.params, sort_keys=True), ",".join(request.fields)

    def get(self, key: tuple) -> tuple[bytes, int] | None:
        with self._lock:
            hit = self._replies.get(key)
            if hit is not None:
                self._replies.move_to_end(key)
            return hit

    def put(self, key: tuple, body: bytes, rows: int) -> None:
        if len(body) > self.max_bytes:
            return
        with self._lock:
            old = self._replies.pop(key, None)
            self._bytes -= len(old[0]) if old else 0
            self._replies[key] = (body, rows)
            self._bytes += len(body)
            while self._bytes > self.max_bytes:
                _, (dropped, _) = self._replies.popitem(last=False)
                self._bytes -= len(dropped)


class LocalTushareServer:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str = LOCAL_TOKEN,
        calls_per_minute: int | None = None,
        api_calls_per_minute: dict[str, int] | None = None,
        window_seconds: float = 60.0,
        faults: FaultPlan | None = None,
        row_limits: dict[str, int] | None = None,
        denied_apis: tuple[str, ...] = (),
        extra_stocks: int = 0,
        as_of: str | None = None,
        log_path: Path | None = None,
        dataset: Dataset | None = None,
        reply_cache_mb: int = 0,
    ):
        self.token = token
        self.quota = Quota(calls_per_minute, dict(api_calls_per_minute or {}), window_seconds)
        self.faults = faults or FaultPlan()
        self.row_limits = dict(row_limits or {})
        self.denied_apis = set(denied_apis)
        self.dataset = dataset or Dataset(extra_stocks=extra_stocks, as_of=as_of)
        self.log_path = Path(log_path) if log_path else None
        self.reply_cache = ReplyCache(reply_cache_mb << 20) if reply_cache_mb > 0 else None
        self.requests: list[dict[str, Any]] = []
        self._log_lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LocalTushareServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="local-tushare", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> LocalTushareServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def row_limit(self, api_name: str) -> int:
        return self.row_limits.get(api_name) or protocol.row_limit(api_name)

    def truth(self, api_name: str, start: str, end: str) -> pd.DataFrame:
        return self.dataset.truth(api_name, start, end)

    def record(self, entry: dict[str, Any]) -> None:
        with self._log_lock:
            self.requests.append(entry)
            if self.log_path:
                with self.log_path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(entry, ensure_ascii=False) + "\n")

    # --- one request ----------------------------------------------------------------------

    def answer(self, path: str, body: bytes) -> tuple[str | None, bytes, dict[str, Any]]:
        """(fault kind or None, reply body, log entry) for one POST."""
        arrived = time.time()
        entry: dict[str, Any] = {"t": round(arrived, 4), "path": path}
        try:
            request = protocol.decode_request(path, body)
        except (ValueError, UnicodeDecodeError) as exc:
            entry.update(api=None, code=protocol.CODE_BAD_REQUEST)
            return None, protocol.encode_reply(protocol.CODE_BAD_REQUEST,
                                               protocol.MSG_BAD_REQUEST.format(detail=exc)), entry
        entry.update(api=request.api_name, params=request.params)
        if request.token != self.token:
            entry["code"] = protocol.CODE_BAD_TOKEN
            return None, protocol.encode_reply(protocol.CODE_BAD_TOKEN, protocol.MSG_BAD_TOKEN), entry
        if request.api_name in self.denied_apis:
            entry["code"] = protocol.CODE_RATE_LIMIT
            return None, protocol.encode_reply(protocol.CODE_RATE_LIMIT, protocol.MSG_NO_PERMISSION), entry
        if not self.quota.admit(request.api_name, time.monotonic()):
            entry["code"] = protocol.CODE_RATE_LIMIT
            msg = protocol.MSG_RATE_LIMIT.format(limit=self.quota.limit(request.api_name))
            return None, protocol.encode_reply(protocol.CODE_RATE_LIMIT, msg), entry
        fault = "error_code" if request.params.get("ts_code") in self.faults.failing_stocks else self.faults.draw()
        entry["fault"] = fault
        if fault == "error_code":
            entry["code"] = protocol.CODE_SERVER_ERROR
            return fault, protocol.encode_reply(protocol.CODE_SERVER_ERROR, protocol.MSG_SERVER_ERROR), entry
        if fault in DATA_FAULT_KINDS:
            return self._spoiled(fault, request, entry)
        cached = self.reply_cache.get(ReplyCache.key(request)) if self.reply_cache else None
        if cached is not None:
            entry.update(code=protocol.CODE_OK, rows=cached[1])
            return fault, cached[0], entry
        code, reply, rows = self._render(request)
        entry.update(code=code, rows=rows)
        if self.reply_cache and code == protocol.CODE_OK:
            self.reply_cache.put(ReplyCache.key(request), reply, rows)
        return fault, reply, entry

    def warm(self, api_names: list[str], start_date: str, end_date: str) -> int:
        """Render into the reply cache the whole-market call of each SSE trading day in
        [start_date, end_date] for each API, as the client sends it (first page). Returns
        the replies rendered. The quota does not count these: no client asked."""
        if not self.reply_cache:
            raise ValueError("the server has no reply cache (start it with --reply-cache-mb)")
        days = self.dataset.query("trade_cal", {"exchange": "SSE", "start_date": start_date,
                                                "end_date": end_date, "is_open": 1}).cal_date
        rendered = 0
        for api_name in api_names:
            for day in days:
                params = {"trade_date": str(day), "offset": 0, "limit": self.row_limit(api_name)}
                request = protocol.Request(api_name=api_name, token=self.token, params=params,
                                           fields=known_fields(api_name))  # as the client names them
                code, reply, rows = self._render(request)
                if code != protocol.CODE_OK:
                    raise ValueError(f"cannot warm {api_name}: {reply.decode()[:200]}")
                self.reply_cache.put(ReplyCache.key(request), reply, rows)
                rendered += 1
        return rendered

    def _render(self, request: protocol.Request) -> tuple[int, bytes, int]:
        """(code, reply body, rows) of a data request that passed the token, quota and faults."""
        code, msg, fields, items, has_more = self._page(request)
        if code != protocol.CODE_OK:
            return code, protocol.encode_reply(code, msg), 0
        return code, protocol.encode_reply(code, "", fields, items, has_more), len(items)

    def _spoiled(self, fault: str, request: protocol.Request, entry: dict[str, Any]
                 ) -> tuple[str | None, bytes, dict[str, Any]]:
        """A data fault: the page rendered, then made wrong (see ``faults.py``)."""
        code, msg, fields, items, has_more = self._page(request)
        spoiled = self.faults.spoil(fault, request.api_name, fields, items) if code == protocol.CODE_OK else None
        if spoiled is None:
            fault = None  # an error reply, or nothing the fault could take
        else:
            fields, items = spoiled
            has_more = has_more and fault != "empty"
        entry.update(code=code, rows=len(items) if code == protocol.CODE_OK else 0, fault=fault)
        body = (protocol.encode_reply(code, "", fields, items, has_more) if code == protocol.CODE_OK
                else protocol.encode_reply(code, msg))
        return fault, body, entry

    def _page(self, request: protocol.Request) -> tuple[int, str, list[str], list[list], bool]:
        """(code, msg, fields, items, has_more) of one call, as Tushare answers it: the named
        fields, or without any the default-display ones; at most the API's per-call limit of
        rows from ``offset``; ``has_more`` true exactly when rows remain after this page."""
        try:
            frame = self.dataset.query(request.api_name, request.params)
        except KeyError:
            return protocol.CODE_BAD_REQUEST, protocol.MSG_UNKNOWN_API.format(api_name=request.api_name), [], [], False
        except ValueError as exc:
            return protocol.CODE_BAD_REQUEST, protocol.MSG_BAD_REQUEST.format(detail=exc), [], [], False
        fields = [f for f in request.fields if f in frame.columns] or self._default_fields(request.api_name, frame)
        offset = int(request.params.get("offset") or 0)
        max_rows = self.row_limit(request.api_name)
        limit = min(int(request.params.get("limit") or max_rows), max_rows)
        page = frame.iloc[offset:offset + limit][fields]
        items = page.astype(object).where(page.notna(), None).to_numpy().tolist()
        return protocol.CODE_OK, "", fields, items, offset + len(items) < len(frame)

    @staticmethod
    def _default_fields(api_name: str, frame: pd.DataFrame) -> list[str]:
        try:
            shown = default_fields(api_name)
        except KeyError:
            return list(frame.columns)
        return [f for f in shown if f in frame.columns]


def _handler_for(server: LocalTushareServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # the JSON request log replaces stderr noise
            pass

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/_admin/health":
                self._send(200, json.dumps({"ok": True, "as_of": server.dataset.as_of}).encode())
            else:
                self._send(404, b'{"error": "POST /{api_name} with a Tushare request body"}')

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.startswith("/_admin/"):
                return self._admin(body)
            fault, reply, entry = server.answer(self.path, body)
            entry["fault"] = fault
            server.record(entry)
            if fault == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if fault == "slow":
                time.sleep(server.faults.slow_seconds)
            if fault == "http_5xx":
                return self._send(random.choice((500, 502, 503, 504)), b"<html>Bad Gateway</html>")
            if fault == "truncated_json":
                reply = reply[: max(1, len(reply) // 2)]
            self._send(200, reply)

        def _admin(self, body: bytes) -> None:
            """POST /_admin/as_of {"as_of": "YYYYMMDD"}: publish later days and reports.
            POST /_admin/warm {"apis": [...], "start_date": ..., "end_date": ...}: render
            those days' replies into the reply cache (ReplyCache)."""
            path = self.path.rstrip("/")
            payload = json.loads(body or b"{}")
            if path == "/_admin/as_of":
                server.dataset.set_as_of(str(payload["as_of"]))
                return self._send(200, json.dumps({"as_of": server.dataset.as_of}).encode())
            if path == "/_admin/warm":
                try:
                    rendered = server.warm(list(payload["apis"]), str(payload["start_date"]),
                                           str(payload["end_date"]))
                except (KeyError, ValueError) as exc:
                    return self._send(400, json.dumps({"error": str(exc)}).encode())
                return self._send(200, json.dumps({"rendered": rendered}).encode())
            self._send(404, b'{"error": "unknown admin path"}')

        def _send(self, status: int, body: bytes) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout it chose); nothing to tell it

    return Handler
