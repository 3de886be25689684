"""Analytics under moto: the aggregator fed with the REAL stream records of real activity
(handlers in-process), replayed and duplicated, must count exactly; every API endpoint
refuses without a token (401) or without the admin role (403)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl

import pytest
from switchboard.analytics import histogram

from devserver.event_sources import EventSources
from tests.integration.conftest import FakeContext, Stack, token_for
from tests.integration.test_messaging import Client, send
from tests.integration.test_notifications import job, sqs_event

SOURCES = (
    "ConnectionsTable",
    "MessagesTable",
    "ConversationsTable",
    "NotificationsTable",
    "RateLimitsTable",
)
ROOT_EVENTS = Path(__file__).resolve().parents[2] / "events"
ENDPOINTS = (
    "/api/analytics",
    "/api/analytics/connections",
    "/api/analytics/messages",
    "/api/analytics/queues",
    "/api/analytics/sessions/active",
    "/api/analytics/sessions/recent",
    "/api/analytics/sessions/someone",
    "/api/analytics/statistics",
    "/api/analytics/timeseries?metric=messagesSent",
)


# ---------------------------------------------------------------------- helpers
class StreamTap:
    """Reads the tables' streams from moto; ``new_records`` are the Lambda-shaped records
    written since the tap was opened (the devserver's own conversion)."""

    def __init__(self, stack: Stack, logical_ids: tuple[str, ...] = SOURCES) -> None:
        ddb, self.streams = stack.client("dynamodb"), stack.client("dynamodbstreams")
        self.arns = [
            ddb.describe_table(TableName=stack.table(lid))["Table"]["LatestStreamArn"]
            for lid in logical_ids
        ]
        self.seen = {r["eventID"] for r in self._read()}

    def _read(self) -> Iterator[dict[str, Any]]:
        for arn in self.arns:
            shards = self.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
            for shard in shards:
                iterator = self.streams.get_shard_iterator(
                    StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
                while iterator:
                    response = self.streams.get_records(ShardIterator=iterator, Limit=1000)
                    if not response["Records"]:
                        break
                    for record in response["Records"]:
                        yield EventSources._stream_record(record, arn)
                    iterator = response.get("NextShardIterator")

    def new_records(self) -> list[dict[str, Any]]:
        return [r for r in self._read() if r["eventID"] not in self.seen]


def http_event(
    path: str, token: str | None = None, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event, as events/analytics-overview.json."""
    raw_path, _, query = path.partition("?")
    event: dict[str, Any] = json.loads((ROOT_EVENTS / "analytics-overview.json").read_text())
    event["rawPath"] = event["requestContext"]["http"]["path"] = raw_path
    event["rawQueryString"] = query
    event["requestContext"]["requestId"] = uuid.uuid4().hex
    event["headers"] = {"host": "abc123.execute-api.us-east-1.amazonaws.com", **(headers or {})}
    if token is not None:
        event["headers"]["authorization"] = f"Bearer {token}"
    if query:
        params: dict[str, str] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            params[key] = f"{params[key]},{value}" if key in params else value
        event["queryStringParameters"] = params
    return event


def call(api: ModuleType, path: str, token: str | None) -> tuple[int, Any]:
    response = api.lambda_handler(http_event(path, token), FakeContext())
    body = response.get("body") or ""
    return int(response["statusCode"]), json.loads(body) if body else None


def admin_token() -> str:
    return token_for(f"admin-{uuid.uuid4().hex[:6]}", ("admin",))


def feed(aggregator: ModuleType, records: list[dict[str, Any]], size: int = 7) -> None:
    for start in range(0, len(records), size):
        result = aggregator.lambda_handler(
            {"Records": records[start : start + size]}, FakeContext()
        )
        assert result == {"batchItemFailures": []}


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def apps(stack: Stack) -> dict[str, ModuleType]:
    return {
        "message": stack.handler("MessageFunction"),
        "connect": stack.handler("ConnectionFunction"),
        "notify": stack.handler("NotificationFunction"),
        "aggregator": stack.handler("AggregatorFunction"),
        "api": stack.handler("AnalyticsApiFunction"),
    }


@pytest.fixture
def clean_metrics(stack: Stack) -> None:
    """Analytics counts everything the aggregator is fed: start from an empty table."""
    ddb, table = stack.client("dynamodb"), stack.table("MetricsTable")
    for page in ddb.get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            ddb.delete_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]})


def disconnect(apps: dict[str, ModuleType], client: Client) -> None:
    from tests.support.events import ws_event

    apps["connect"].lambda_handler(
        ws_event("$disconnect", connection_id=client.connection_id, user_id=client.user_id),
        FakeContext(),
    )


def scripted_activity(stack: Stack, apps: dict[str, ModuleType]) -> dict[str, Any]:
    """Known activity; returns the truth it must produce."""
    tag = uuid.uuid4().hex[:6]
    alice = Client(stack, apps["message"], apps["connect"], f"alice-{tag}")
    bob = Client(stack, apps["message"], apps["connect"], f"bob-{tag}")
    # alice's second device: one more connection, not one more person online
    phone = Client(stack, apps["message"], apps["connect"], alice.user_id)
    carol = f"carol-{tag}"  # never online: every message to her is an offline delivery
    conversation = alice.ok("conversation:create", {"members": [bob.user_id, carol], "title": "t"})[
        "conversationId"
    ]
    sent = [
        send(alice, conversation, "a0"),
        send(alice, conversation, "a1"),
        send(phone, conversation, "a2"),
        send(bob, conversation, "b"),
    ]
    bob.ok("message:ack", {"conversationId": conversation, "seq": 4})
    alice.ok("message:ack", {"conversationId": conversation, "seq": 4})
    bob.ok("message:read", {"conversationId": conversation, "seq": 4})
    bob.ok("typing:start", {"conversationId": conversation})
    phone.ok("typing:start", {"conversationId": conversation})
    apps["notify"].lambda_handler(
        sqs_event(*(job(carol, conversation, m["seq"]) for m in sent)), FakeContext()
    )
    disconnect(apps, bob)
    return {
        "users": (alice.user_id, bob.user_id, carol),
        "conversation": conversation,
        "sent": sent,
        "connections": {
            "total": 3,
            "disconnections": 1,
            "online": 2,
            "peak": 3,
            "onlineUsers": 1,  # alice, on two devices
            "peakUsers": 2,  # alice and bob
            "messagesPerSession": round(4 / 3, 4),
            "typingEventsPerSession": round(2 / 3, 4),
        },
        # (messages, typing events) of each session (connection)
        "sessions": {
            alice.connection_id: (2, 0),
            phone.connection_id: (1, 1),
            bob.connection_id: (1, 1),
        },
        "messages": {
            "sent": 4,
            "recipients": 8,  # 3 members: 2 recipients per message
            "delivered": 4,  # bob acked alice's 3, alice acked bob's 1
            "read": 3,  # bob read alice's 3
            "offlineDeliveries": 4,  # carol's
            "onlineDeliveries": 4,
            "conversations": 1,
        },
        "typing": {bob.user_id: 1, alice.user_id: 1},
    }


def assert_counts_equal_truth(api: ModuleType, truth: dict[str, Any]) -> None:
    token = admin_token()
    status, overview = call(api, "/api/analytics", token)
    assert status == 200, overview
    connections = overview["connections"]
    for key, value in truth["connections"].items():
        assert connections[key] == value, (key, connections)
    messages = overview["messages"]
    for key, value in truth["messages"].items():
        assert messages[key] == value, (key, messages)
    assert messages["onlineDeliveryRate"] == 0.5
    latency = messages["deliveryLatencyMs"]
    assert latency["count"] == truth["messages"]["delivered"]
    assert latency["p50"] <= latency["p95"] <= latency["p99"]
    assert latency["resolution"]["relativeError"] == round(histogram.RELATIVE_RESOLUTION, 4)
    alice, bob, _ = truth["users"]
    status, user = call(api, f"/api/analytics/sessions/{bob}", token)
    assert status == 200
    assert (user["sessions"], user["sessionsEnded"], user["online"]) == (1, 1, False)
    assert (user["typingEvents"], user["messages"]) == (1, 1), user
    status, user = call(api, f"/api/analytics/sessions/{alice}", token)
    assert (user["sessions"], user["sessionsEnded"], user["online"], user["messages"]) == (
        2,
        0,
        True,
        3,
    )
    assert user["typingEvents"] == 1
    assert_sessions(truth, user["recentSessions"], {alice})
    status, active = call(api, "/api/analytics/sessions/active", token)
    assert sorted(s["userId"] for s in active["sessions"]) == [alice, alice]
    assert_sessions(truth, active["sessions"], {alice})
    status, recent = call(api, "/api/analytics/sessions/recent", token)
    assert [s["userId"] for s in recent["sessions"]] == [bob]
    assert recent["sessions"][0]["durationMs"] >= 0
    assert_sessions(truth, recent["sessions"], {bob})
    status, series = call(api, "/api/analytics/timeseries?metric=messagesSent&bucket=hour", token)
    assert status == 200
    assert sum(p["value"] for p in series["points"]) == truth["messages"]["sent"]
    status, stats = call(api, "/api/analytics/statistics", token)
    assert stats["totals"]["messagesSent"] == truth["messages"]["sent"]
    assert stats["lastHour"]["messagesSent"] == truth["messages"]["sent"]


def assert_sessions(truth: dict[str, Any], sessions: list[dict[str, Any]], users: set[str]) -> None:
    """Each listed session's messages and typing events are exactly its own."""
    expected = {
        connection_id: counts
        for connection_id, counts in truth["sessions"].items()
        if connection_id.rsplit("-", 1)[0] in users
    }
    got = {s["connectionId"]: (s["messages"], s["typingEvents"]) for s in sessions}
    assert got == expected


# ---------------------------------------------------------------------- tests
def test_real_stream_records_counted_exactly_once_under_replays_and_duplicates(
    stack: Stack, apps: dict[str, ModuleType], clean_metrics: None
) -> None:
    # Given known activity through the real handlers, and its real stream records
    tap = StreamTap(stack)
    truth = scripted_activity(stack, apps)
    records = tap.new_records()
    assert len(records) >= 12
    # When the aggregator gets them in batches, then again (a replay), then every record
    # twice in the same batch (duplicate delivery), then in reverse batch order
    feed(apps["aggregator"], records)
    assert_counts_equal_truth(apps["api"], truth)
    feed(apps["aggregator"], records, size=5)
    feed(apps["aggregator"], [r for r in records for _ in range(2)], size=10)
    feed(apps["aggregator"], list(reversed(records)), size=3)
    # Then every count is still exactly the truth
    assert_counts_equal_truth(apps["api"], truth)


def test_a_batch_is_counted_in_one_transaction_and_a_replay_adds_only_what_is_new(
    stack: Stack, apps: dict[str, ModuleType], clean_metrics: None
) -> None:
    from switchboard import aws
    from switchboard.analytics.periods import PERIODS, bucket_key

    from bench.counting import counting

    # Given 10 messages of one sender and their real stream records
    tag = uuid.uuid4().hex[:6]
    alice = Client(stack, apps["message"], apps["connect"], f"alice-{tag}")
    bob = Client(stack, apps["message"], apps["connect"], f"bob-{tag}")
    conversation = alice.ok("conversation:create", {"members": [bob.user_id]})["conversationId"]
    tap = StreamTap(stack, ("MessagesTable",))
    for i in range(10):
        send(alice, conversation, f"m{i}")
    records = tap.new_records()
    assert len(records) == 10
    created = [int(r["dynamodb"]["NewImage"]["createdAt"]["N"]) for r in records[:6]]
    buckets = {(p, bucket_key(at, p)) for at in created for p in PERIODS}
    # When the first 6 come in one batch
    with counting([aws.dynamodb()]) as calls:
        feed(apps["aggregator"], records[:6], size=100)
    # Then they cost one transaction: 6 markers, the time buckets, the total and alice's
    # stats (the per-record path wrote 6 transactions of 5 items)
    assert calls.calls["dynamodb.TransactWriteItems"] == 1, calls.snapshot()
    assert calls.items["dynamodb.TransactWriteItems"] == 6 + len(buckets) + 2
    # When the whole batch comes again with 4 more (a retried batch that grew)
    with counting([aws.dynamodb()]) as calls:
        feed(apps["aggregator"], records, size=100)
    # Then the first attempt is cancelled by the 6 existing markers (nothing written) and
    # the second counts the 4 new ones
    assert calls.calls["dynamodb.TransactWriteItems"] == 2, calls.snapshot()
    # And every message is counted exactly once, for the totals and for alice
    token = admin_token()
    status, overview = call(apps["api"], "/api/analytics", token)
    assert status == 200
    assert overview["messages"]["sent"] == 10
    status, user = call(apps["api"], f"/api/analytics/sessions/{alice.user_id}", token)
    assert user["messages"] == 10


def test_distinct_users_and_session_figures_do_not_depend_on_the_order_of_records(
    stack: Stack, apps: dict[str, ModuleType], clean_metrics: None
) -> None:
    # Given the same activity's records, first seen in reverse order (a close before its
    # open, messages before their session started and after it ended), then in order
    tap = StreamTap(stack)
    truth = scripted_activity(stack, apps)
    records = tap.new_records()
    feed(apps["aggregator"], list(reversed(records)), size=4)
    feed(apps["aggregator"], records)
    # Then everything but the peaks (a maximum over the order seen) is exactly the truth
    token = admin_token()
    status, connections = call(apps["api"], "/api/analytics/connections", token)
    assert status == 200
    for key in ("total", "disconnections", "online", "onlineUsers", "messagesPerSession"):
        assert connections[key] == truth["connections"][key], (key, connections)
    alice, bob, _ = truth["users"]
    for user in (alice, bob):
        status, found = call(apps["api"], f"/api/analytics/sessions/{user}", token)
        assert_sessions(truth, found["recentSessions"], {user})
    status, recent = call(apps["api"], "/api/analytics/sessions/recent", token)
    assert_sessions(truth, recent["sessions"], {bob})


def test_a_failing_record_is_reported_alone_and_its_retry_counts_once(
    stack: Stack, apps: dict[str, ModuleType], clean_metrics: None
) -> None:
    tap = StreamTap(stack)
    tag = uuid.uuid4().hex[:6]
    Client(stack, apps["message"], apps["connect"], f"dora-{tag}")
    records = [r for r in tap.new_records() if "ConnectionsTable" in r["eventSourceARN"]]
    assert len(records) == 1
    poison = json.loads(json.dumps(records[0]))
    poison["eventSourceARN"] = poison["eventSourceARN"].replace("ConnectionsTable", "Unknown")
    poison["dynamodb"]["SequenceNumber"] = "999999999999"
    # Given a batch whose middle record cannot be handled (a table nobody registered)
    result = apps["aggregator"].lambda_handler({"Records": [poison, *records]}, FakeContext())
    # Then only it is reported (Lambda retries from it), the good one is counted
    assert result == {"batchItemFailures": [{"itemIdentifier": "999999999999"}]}
    # And the retry of the good one (as Lambda re-sends it) adds nothing
    feed(apps["aggregator"], records)
    status, connections = call(apps["api"], "/api/analytics/connections", admin_token())
    assert status == 200
    assert (connections["total"], connections["online"], connections["peak"]) == (1, 1, 1)


def test_queue_report_shows_depth_in_flight_and_every_dlq(
    stack: Stack, apps: dict[str, ModuleType]
) -> None:
    sqs = stack.client("sqs")
    dlq = stack.template.physical_name("AnalyticsDLQ")
    url = sqs.get_queue_url(QueueName=dlq)["QueueUrl"]
    token = admin_token()
    before = call(apps["api"], "/api/analytics/queues", token)[1]["analytics"]["dlqDepth"]
    for i in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=f"failed batch {i}")
    status, queues = call(apps["api"], "/api/analytics/queues", token)
    assert status == 200, queues
    assert queues["analytics"]["dlqDepth"] == before + 3
    assert set(queues) >= {"delivery", "notification", "connectionEvents", "analytics"}
    for label in ("delivery", "notification"):
        assert {"depth", "inFlight", "dlqDepth"} <= set(queues[label]), queues[label]
        assert queues[label]["available"] is True


@pytest.mark.parametrize("path", ENDPOINTS)
def test_every_endpoint_needs_a_valid_admin_token(
    stack: Stack, apps: dict[str, ModuleType], path: str
) -> None:
    api = apps["api"]
    assert call(api, path, None)[0] == 401
    assert call(api, path, "not-a-jwt")[0] == 401
    expired = token_for("admin-x", ("admin",), now=time.time() - 7200, ttl_seconds=60)
    assert call(api, path, expired)[0] == 401
    forged = token_for("admin-x", ("admin",))[:-4] + "AAAA"
    assert call(api, path, forged)[0] == 401
    status, body = call(api, path, token_for("mallory", ()))
    assert (status, body) == (403, {"detail": "the admin role is required"})
    status, body = call(api, path, admin_token())
    assert status == 200, body


def test_unauthenticated_answer_carries_the_bearer_challenge(apps: dict[str, ModuleType]) -> None:
    response = apps["api"].lambda_handler(http_event("/api/analytics"), FakeContext())
    assert response["statusCode"] == 401
    assert response["headers"]["www-authenticate"] == "Bearer"
    assert json.loads(response["body"]) == {"detail": "a bearer token is required"}


@pytest.mark.parametrize(
    "path",
    [
        "/api/analytics/timeseries",  # metric missing
        "/api/analytics/timeseries?metric=nope",
        "/api/analytics/timeseries?metric=messagesSent&bucket=week",
        "/api/analytics/timeseries?metric=messagesSent&from=yesterday",
        "/api/analytics/sessions/active?limit=0",
        "/api/analytics/sessions/recent?limit=abc",
    ],
)
def test_invalid_requests_are_4xx_with_a_body(apps: dict[str, ModuleType], path: str) -> None:
    status, body = call(apps["api"], path, admin_token())
    assert status == 422, body
    assert body["detail"]


@pytest.mark.parametrize(
    ("query", "points", "truncated"),
    [
        # more buckets than the 1500 a series holds: the 1500 that end at `to`
        ("bucket=hour&from=2000-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", 1500, True),
        ("from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", 1500, True),
        # the last second a date-time can name, and the first day of 1970
        ("to=9999-12-31T23:59:59Z", 61, False),
        ("from=1970-01-01T00:00:00Z&to=1970-01-01T00:09:59Z", 10, False),
        # before 1970 is clamped to it; `to` before `from` is an empty range
        ("from=0001-01-01T00:00:00Z&to=1970-01-01T00:00:30Z", 1, False),
        ("from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", 0, False),
    ],
)
def test_every_schema_valid_range_has_an_answer(
    apps: dict[str, ModuleType], query: str, points: int, truncated: bool
) -> None:
    status, body = call(
        apps["api"], f"/api/analytics/timeseries?metric=messagesSent&{query}", admin_token()
    )
    assert status == 200, body
    assert len(body["points"]) == points and body["truncated"] is truncated
    if points:
        assert (
            body["points"][-1]["t"] <= body["to"]
            and body["points"][0]["t"] <= body["from"] + 3_600_000
        )


def test_every_operation_documents_401_and_403_with_their_body(
    apps: dict[str, ModuleType],
) -> None:
    status, schema = call(apps["api"], "/api/analytics/openapi.json", None)
    assert status == 200
    problem = {"$ref": "#/components/schemas/Problem"}
    operations = [op for item in schema["paths"].values() for op in item.values()]
    assert len(operations) >= 9
    for operation in operations:
        for code in ("401", "403", "503"):
            content = operation["responses"][code]["content"]["application/json"]
            assert content["schema"] == problem, (operation["summary"], code)
    assert schema["components"]["schemas"]["Problem"]["required"] == ["detail"]
    # And the bodies are that shape: no token, and a token without the admin role
    assert call(apps["api"], "/api/analytics/queues", None) == (
        401,
        {"detail": "a bearer token is required"},
    )
    status, body = call(apps["api"], "/api/analytics/queues", token_for("someone", ()))
    assert status == 403 and set(body) == {"detail"}


def test_unknown_path_is_404(apps: dict[str, ModuleType]) -> None:
    status, body = call(apps["api"], "/api/analytics/nothing/here", admin_token())
    assert status == 404 and body == {"detail": "Not Found"}


def test_openapi_document_lists_every_endpoint(apps: dict[str, ModuleType]) -> None:
    status, schema = call(apps["api"], "/api/analytics/openapi.json", None)
    assert status == 200
    paths = set(schema["paths"])
    assert {
        "/api/analytics",
        "/api/analytics/connections",
        "/api/analytics/messages",
        "/api/analytics/queues",
        "/api/analytics/sessions/active",
        "/api/analytics/sessions/recent",
        "/api/analytics/sessions/{userId}",
        "/api/analytics/statistics",
        "/api/analytics/timeseries",
    } == paths


def _cancelled(*codes: str) -> dict[str, Any]:
    return {
        "service_error_code": "TransactionCanceledException",
        "service_message": "Transaction cancelled",
        "http_status_code": 400,
        "modeled_fields": {"CancellationReasons": [{"Code": c} for c in codes]},
    }


def test_transaction_conflicts_are_retried_and_a_taken_marker_is_a_duplicate() -> None:
    import boto3
    from botocore.stub import ANY, Stubber
    from switchboard.analytics.records import Contribution
    from switchboard.dal.metrics import MetricsRepository

    client = boto3.client("dynamodb", region_name="us-east-1")
    sleeps: list[float] = []
    repository = MetricsRepository("metrics", client=client, sleep=sleeps.append)
    contribution = Contribution("msg#cv#1", 1_700_000_000_000, counters={"messagesSent": 1})
    with Stubber(client) as stub:
        # Given a concurrent shard wins twice (TransactionConflict), then the write goes in
        stub.add_client_error("transact_write_items", **_cancelled("None", "TransactionConflict"))
        stub.add_client_error("transact_write_items", **_cancelled("TransactionConflict", "None"))
        stub.add_response("transact_write_items", {}, {"TransactItems": ANY})
        assert repository.apply(contribution) is True
        # And when the marker is already there, it is a duplicate, not an error
        stub.add_client_error(
            "transact_write_items", **_cancelled("ConditionalCheckFailed", "None", "None")
        )
        assert repository.apply(contribution) is False
        # And any other failure is raised (the record fails and Lambda retries it)
        stub.add_client_error(
            "transact_write_items",
            service_error_code="ProvisionedThroughputExceededException",
            http_status_code=400,
        )
        with pytest.raises(Exception, match="ProvisionedThroughputExceeded"):
            repository.apply(contribution)
    assert len(sleeps) == 2
