"""GraphQL calls that ``DagsterGraphQLClient`` has no method for: partition-range backfills
and run history page by page (README "Production: GraphQL").

The client's own methods cover the rest (``submit_job_execution``, ``get_run_status``,
``terminate_run``). These go through the same client, so its transport, headers and auth
(e.g. the proxy's credentials) apply. The query texts are the API: other languages can
post them to ``/graphql`` as they are.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

LAUNCH_PARTITION_BACKFILL = """
mutation LaunchPartitionBackfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on Error { message }
  }
}"""

BACKFILL_STATUS = """
query BackfillStatus($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    __typename
    ... on PartitionBackfill { id status numPartitions runs(limit: 1000) { runId status } }
    ... on Error { message }
  }
}"""

RUN_HISTORY = """
query RunHistory($cursor: String, $limit: Int!, $filter: RunsFilter) {
  runsOrError(cursor: $cursor, limit: $limit, filter: $filter) {
    __typename
    ... on Runs {
      results { runId jobName status creationTime startTime endTime tags { key value } }
    }
    ... on Error { message }
  }
}"""

# A backfill is over when the daemon has launched its runs and every run has ended.
BACKFILL_DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def launch_partition_backfill(client: DagsterGraphQLClient, assets: Sequence[str], start: str, end: str,
                              tags: dict[str, str] | None = None) -> str:
    """Backfill ``assets`` over the partitions ``start``..``end`` (inclusive); returns the backfill id.

    The daemon launches it. Our market assets have a single-run backfill policy, so a range
    is one run per asset group, not one run per day."""
    params = {
        "partitionsByAssets": [{"assetKey": {"path": key.split("/")}, "partitions": {"range": {"start": start,
                                                                                              "end": end}}}
                               for key in assets],
        "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()],
    }
    reply = _execute(client, LAUNCH_PARTITION_BACKFILL, {"params": params})["launchPartitionBackfill"]
    if reply["__typename"] != "LaunchBackfillSuccess":
        raise DagsterGraphQLClientError(reply["__typename"], reply.get("message", ""))
    return reply["backfillId"]


def backfill_status(client: DagsterGraphQLClient, backfill_id: str) -> dict:
    """``{"id", "status", "numPartitions", "runs": [{"runId", "status"}]}``."""
    reply = _execute(client, BACKFILL_STATUS, {"backfillId": backfill_id})["partitionBackfillOrError"]
    if reply["__typename"] != "PartitionBackfill":
        raise DagsterGraphQLClientError(reply["__typename"], reply.get("message", ""))
    return reply


def wait_for_backfill(client: DagsterGraphQLClient, backfill_id: str, timeout: float = 3600,
                      poll_seconds: float = 2.0) -> dict:
    """Poll until the backfill is over; returns its last status (see ``backfill_status``)."""
    deadline = time.monotonic() + timeout
    while True:
        status = backfill_status(client, backfill_id)
        if status["status"] in BACKFILL_DONE:
            return status
        if time.monotonic() > deadline:
            raise TimeoutError(f"backfill {backfill_id} still {status['status']} after {timeout:.0f} s")
        time.sleep(poll_seconds)


def run_history(client: DagsterGraphQLClient, page_size: int = 50, job_name: str | None = None,
                statuses: Sequence[str] | None = None,
                tags: dict[str, str] | None = None) -> Iterator[list[dict]]:
    """Runs, newest first, one page (a list of run dicts) at a time; the cursor is the last run id."""
    run_filter: dict = {}
    if job_name:
        run_filter["pipelineName"] = job_name
    if statuses:
        run_filter["statuses"] = list(statuses)
    if tags:
        run_filter["tags"] = [{"key": k, "value": v} for k, v in tags.items()]
    cursor = None
    while True:
        reply = _execute(client, RUN_HISTORY, {"cursor": cursor, "limit": page_size,
                                               "filter": run_filter or None})["runsOrError"]
        if reply["__typename"] != "Runs":
            raise DagsterGraphQLClientError(reply["__typename"], reply.get("message", ""))
        page = reply["results"]
        if page:
            yield page
        if len(page) < page_size:
            return
        cursor = page[-1]["runId"]


def _execute(client: DagsterGraphQLClient, query: str, variables: dict) -> dict:
    # The client's transport (URL, headers, auth, timeout) and its error wrapping; the
    # public methods use the same call.
    return client._execute(query, variables)  # noqa: SLF001
