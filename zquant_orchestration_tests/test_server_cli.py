"""The `zquant-tushare-server` console script: serve on a free port, print the truth."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

SERVER = str(Path(sys.executable).with_name("zquant-tushare-server"))


def test_serve_on_port_zero_prints_its_url_and_answers_the_protocol(tmp_path):
    log = tmp_path / "requests.jsonl"
    server = subprocess.Popen([SERVER, "--port", "0", "--as-of", "20241231", "--log", str(log), "--token", "t0k"],
                              stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        url = line.split("listening on ")[1].split()[0]
        body = json.dumps({"api_name": "daily", "token": "t0k", "params": {"trade_date": "20240102"},
                           "fields": ["ts_code", "close"]}).encode()
        with urllib.request.urlopen(urllib.request.Request(url + "/", data=body), timeout=30) as response:
            reply = json.load(response)
        assert reply["code"] == 0 and reply["data"]["fields"] == ["ts_code", "close"]
        assert len(reply["data"]["items"]) > 5000
        entry = json.loads(log.read_text(encoding="utf-8").splitlines()[0])
        assert entry["api"] == "daily" and entry["rows"] == len(reply["data"]["items"])
        assert "t0k" not in log.read_text(encoding="utf-8")
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_truth_prints_every_row_of_the_range(dataset):
    result = subprocess.run([SERVER, "truth", "--api", "adj_factor", "--start", "20240102", "--end", "20240103",
                             "--as-of", "20241231"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    printed = pd.read_csv(io.StringIO(result.stdout), dtype={"trade_date": str})
    expected = dataset.truth("adj_factor", "20240102", "20240103")
    assert len(printed) == len(expected) > 10000
    pd.testing.assert_frame_equal(printed, expected.reset_index(drop=True), check_dtype=False)


def test_a_warmed_reply_cache_answers_exactly_what_the_server_renders_and_keeps_the_quota(local_server):
    from zquant_orchestration.lib.tushare import TushareClient

    cold = local_server()
    warm = local_server(reply_cache_mb=64, calls_per_minute=3)
    with pytest.raises(ValueError, match="no reply cache"):
        cold.warm(["adj_factor"], "20240102", "20240105")
    assert warm.warm(["adj_factor", "daily"], "20240102", "20240105") == 8  # 4 trading days, 2 APIs

    def client(server):
        return TushareClient(server.url, "zquant-local", calls_per_minute=1000)

    for day in ("20240102", "20240103", "20240104"):
        pd.testing.assert_frame_equal(client(warm).query("daily", {"trade_date": day}),
                                      client(cold).query("daily", {"trade_date": day}))
    # The cache skips rendering, not the quota: a fourth call inside the window is refused.
    fourth = urllib.request.Request(f"{warm.url}/daily", data=json.dumps(
        {"api_name": "daily", "token": "zquant-local", "params": {"trade_date": "20240105"}}).encode())
    with urllib.request.urlopen(fourth) as reply:
        assert json.loads(reply.read())["code"] == 40203
