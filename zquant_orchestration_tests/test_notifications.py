"""Run notifications reach a local HTTP receiver with the promised fields; a mass failure
becomes one digest; a receiver that is down is retried and never breaks the sensor."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest
from dagster._core.test_utils import create_run_for_test

from zquant_orchestration.defs.notifications.sensors import run_notification_sensor
from zquant_orchestration.lib.webhook import post_json

from .deployment import free_port


class Receiver:
    """A webhook endpoint on loopback that records every JSON body; ``fail_first`` 5xx replies first."""

    def __init__(self, fail_first: int = 0, fail_status: int = 503):
        self.messages: list[dict] = []
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.attempts += 1
                if receiver.attempts <= fail_first:
                    self.send_response(fail_status)
                    self.end_headers()
                    return
                receiver.messages.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook?token=secret"

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver(monkeypatch):
    started = []

    def start(**options) -> Receiver:
        r = Receiver(**options)
        started.append(r)
        monkeypatch.setenv("ZQUANT_WEBHOOK_URL", r.url)
        return r

    yield start
    for r in started:
        r.stop()


def tick(instance, cursor=None):
    with dg.build_sensor_context(instance=instance, cursor=cursor) as context:
        return run_notification_sensor(context)


def next_cursor(result, cursor):
    return getattr(result, "cursor", None) or cursor


@dg.asset(partitions_def=dg.StaticPartitionsDefinition(["2024-10-08"]))
def broken_asset() -> None:
    raise dg.Failure(description="daily(trade_date=20241008) failed 8 times, last: HTTP 502")


@dg.asset
def fine_asset() -> None:
    return None


def test_a_failed_run_is_posted_with_its_fields(receiver, monkeypatch):
    hook = receiver()
    monkeypatch.setenv("ZQUANT_UI_URL", "http://dagster.example:3000")
    with dg.instance_for_test() as instance:
        first = tick(instance)  # starts from now: history is not replayed
        result = dg.materialize([broken_asset], partition_key="2024-10-08", instance=instance, raise_on_error=False)
        assert not result.success
        tick(instance, first.cursor)
    assert len(hook.messages) == 1
    message = hook.messages[0]
    assert message["kind"] == "run" and message["status"] == "FAILURE"
    assert message["run_id"] == result.run_id and message["job"] == "__ephemeral_asset_job__"
    assert message["partitions"] == {"first": "2024-10-08", "last": "2024-10-08"}
    assert message["duration_seconds"] >= 0
    assert "broken_asset: daily(trade_date=20241008) failed 8 times, last: HTTP 502" in message["error"]
    assert message["url"] == f"http://dagster.example:3000/runs/{result.run_id}"


def test_successes_are_posted_only_when_configured(receiver, monkeypatch):
    hook = receiver()
    with dg.instance_for_test() as instance:
        cursor = tick(instance).cursor
        assert dg.materialize([fine_asset], instance=instance).success
        cursor = next_cursor(tick(instance, cursor), cursor)
        assert hook.messages == []
        monkeypatch.setenv("ZQUANT_WEBHOOK_ON_SUCCESS", "1")
        cursor = tick(instance).cursor
        result = dg.materialize([fine_asset], instance=instance)
        tick(instance, cursor)
    assert [(m["status"], m["run_id"], m["error"]) for m in hook.messages] == [("SUCCESS", result.run_id, None)]


@pytest.mark.slow  # sixty failed runs
def test_a_backfill_of_60_failed_runs_sends_one_digest(receiver):
    hook = receiver()
    with dg.instance_for_test() as instance:
        cursor = tick(instance).cursor
        # 60, not 300: on the SQLite instance each failed run's error is one event-log file
        # to open; the digest is the same at any count above the limit.
        for i in range(60):
            create_run_for_test(instance, job_name="market_data_job", status=dg.DagsterRunStatus.FAILURE,
                                tags={"dagster/backfill": "bf1", "dagster/partition": f"day-{i:03d}"})
        cursor = tick(instance, cursor).cursor
        assert tick(instance, cursor).skip_message == "no run finished since the last tick"
    assert len(hook.messages) == 1
    digest = hook.messages[0]
    assert digest["kind"] == "digest" and digest["runs"] == 60
    assert digest["by_status"] == {"FAILURE": 60} and digest["by_job"] == {"market_data_job": 60}
    assert digest["backfills"] == ["bf1"] and len(digest["sample"]) == 10


def test_delivery_is_retried_and_a_dead_receiver_never_breaks_the_sensor(receiver, monkeypatch):
    hook = receiver(fail_first=2)
    with dg.instance_for_test() as instance:
        cursor = tick(instance).cursor
        dg.materialize([broken_asset], partition_key="2024-10-08", instance=instance, raise_on_error=False)
        cursor = tick(instance, cursor).cursor
        assert hook.attempts == 3 and len(hook.messages) == 1, "two 503s, then delivered"

        monkeypatch.setenv("ZQUANT_WEBHOOK_URL", "http://127.0.0.1:9/closed")  # nothing listens there
        dg.materialize([broken_asset], partition_key="2024-10-08", instance=instance, raise_on_error=False)
        result = tick(instance, cursor)
        assert isinstance(result, dg.SensorResult) and result.cursor != cursor, "the sensor moves on"


SECRET_PATH = "/services/T0SECRET/B0SECRET/xoxSecretToken"


@pytest.mark.parametrize("receiver_kind", ["closed port", "HTTP 500"])
def test_a_failed_delivery_logs_the_host_never_the_secret_in_the_path(receiver, receiver_kind, caplog):
    # Slack and Feishu put the webhook's secret in the URL's path.
    if receiver_kind == "closed port":
        port = free_port()
    else:
        port = receiver(fail_first=10, fail_status=500).httpd.server_address[1]
    url = f"http://127.0.0.1:{port}{SECRET_PATH}?token=querysecret"
    with caplog.at_level("WARNING"):
        assert post_json(url, {"kind": "run"}, attempts=2, backoff_seconds=0) is False
    logged = caplog.text
    assert f"webhook delivery to http://127.0.0.1:{port} failed after 2 attempts" in logged
    assert ("HTTP 500" if receiver_kind == "HTTP 500" else "ConnectionError") in logged
    for secret in ("T0SECRET", "B0SECRET", "xoxSecretToken", "querysecret"):
        assert secret not in logged
