"""Analytics ground truth, end to end: a scripted run of known activity (connections,
messages, receipts, typing, offline recipients, calls, uploads) through a devserver of its
own (so its totals are exactly this activity), then every analytics endpoint must equal
the truth; then every stream record is delivered again, twice, and nothing may change."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
import urllib.error
import urllib.request
from typing import Any

import pytest

from devserver.event_sources import EventSources
from devserver.workers import moto_client_environment
from tests.support.images import http, pdf_of_size

from .clients import Client, Session, eventually
from .conftest import RunningDevserver, StartDevserver

pytestmark = pytest.mark.e2e

SETTLE_TIMEOUT = 90.0  # streams -> aggregator and SQS consumers, on a loaded 2-core machine
PROCESSING_TIMEOUT = 45.0
SOURCES = (
    "ConnectionsTable",
    "MessagesTable",
    "ConversationsTable",
    "NotificationsTable",
    "RateLimitsTable",
    "CallsTable",
    "UploadsTable",
)
OFFER = {"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"}
ANSWER = {"type": "answer", "sdp": OFFER["sdp"]}


def api_get(ds: RunningDevserver, path: str, token: str | None) -> tuple[int, Any]:
    assert ds.http.startswith("http://127.0.0.1"), ds.http
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(ds.http + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


async def scripted_activity(ds: RunningDevserver) -> dict[str, Any]:
    document = pdf_of_size(3000)
    async with Session(ds) as session:
        alice = await session.connect("gt-alice")
        bob = await session.connect("gt-bob")
        phone = await session.connect("gt-alice")  # alice's second device
        conversation = await alice.create_conversation(["gt-bob", "gt-carol"], title="truth")
        for i in range(2):
            await alice.send(conversation, f"hello {i}")
        await phone.send(conversation, "hello 2")
        await bob.send(conversation, "hi")
        await bob.call("message:ack", {"conversationId": conversation, "seq": 4})
        await alice.call("message:ack", {"conversationId": conversation, "seq": 4})
        await bob.call("message:read", {"conversationId": conversation, "seq": 4})
        await bob.call("typing:start", {"conversationId": conversation})
        await phone.call("typing:start", {"conversationId": conversation})
        # A call answered then ended, and one rejected
        call = await alice.call(
            "call:initiate", {"calleeId": "gt-bob", "media": "audio", "offer": OFFER}
        )
        await bob.wait_for("call:incoming", lambda d: d["callId"] == call["callId"])
        await bob.call("call:answer", {"callId": call["callId"], "answer": ANSWER})
        await alice.call("call:end", {"callId": call["callId"]})
        rejected = await alice.call(
            "call:initiate", {"calleeId": "gt-bob", "media": "video", "offer": OFFER}
        )
        await bob.wait_for("call:incoming", lambda d: d["callId"] == rejected["callId"])
        await bob.call("call:reject", {"callId": rejected["callId"]})
        # An upload that completes, and one whose bytes do not match what was declared
        await upload(alice, "doc.pdf", document, len(document), "upload:complete")
        await upload(alice, "lie.pdf", pdf_of_size(9000), 3000, "upload:error")
        await bob.close()
    return {
        "connections": {
            "total": 3,
            "disconnections": 3,
            "online": 0,
            "peak": 3,
            "onlineUsers": 0,
            "peakUsers": 2,  # alice (two devices) and bob
            "messagesPerSession": round(4 / 3, 4),
            "typingEventsPerSession": round(2 / 3, 4),
        },
        # (messages, typing events) of each of the user's sessions
        "sessionCounts": {"gt-alice": [(1, 1), (2, 0)], "gt-bob": [(1, 1)]},
        # The main queues' consumers: 4 offline notifications for carol; S3's test event
        # and the two uploads' ObjectCreated events; nothing failed
        "queues": {"notification": (4, 0), "uploadEvents": (3, 0)},
        "messages": {
            "sent": 4,
            "recipients": 8,
            "delivered": 4,
            "read": 3,
            "offlineDeliveries": 4,
            "onlineDeliveries": 4,
            "failed": 0,
            "conversations": 1,
        },
        "calls": {
            "attempts": 2,
            "answered": 1,
            "rejected": 1,
            "ended": 1,
            "missed": 0,
            "active": 0,
        },
        "uploads": {
            "started": 2,
            "completed": 1,
            "failed": 1,
            "aborted": 0,
            "bytes": len(document),
        },
        "users": {
            "gt-alice": {
                "sessions": 2,
                "messages": 3,
                "typingEvents": 1,
                "callsStarted": 2,
                "uploads": 1,
            },
            "gt-bob": {"sessions": 1, "messages": 1, "typingEvents": 1, "sessionsEnded": 1},
            "gt-carol": {"sessions": 0, "messages": 0},
        },
    }


async def upload(client: Client, name: str, data: bytes, declared: int, outcome: str) -> None:
    started = await client.call(
        "upload:start", {"fileName": name, "contentType": "application/pdf", "size": declared}
    )
    status, _, _ = await asyncio.to_thread(http, "PUT", started["url"], data, started["headers"])
    assert status == 200
    await client.call("upload:complete", {"uploadId": started["uploadId"]})
    await client.wait_for(
        outcome, lambda d: d["uploadId"] == started["uploadId"], timeout=PROCESSING_TIMEOUT
    )


def mismatches(ds: RunningDevserver, truth: dict[str, Any], token: str) -> list[str]:
    """Every endpoint against the truth; the differences (empty: all equal)."""
    found: list[str] = []

    def expect(where: str, actual: Any, expected: Any) -> None:
        if actual != expected:
            found.append(f"{where}: {actual!r} != {expected!r}")

    status, overview = api_get(ds, "/api/analytics", token)
    expect("overview status", status, 200)
    if status != 200:
        return found
    for section in ("connections", "messages", "calls", "uploads"):
        for key, value in truth[section].items():
            expect(f"overview.{section}.{key}", overview[section].get(key), value)
    for section in ("connections", "messages"):
        status, body = api_get(ds, f"/api/analytics/{section}", token)
        for key, value in truth[section].items():
            expect(f"{section}.{key}", body.get(key), value)
    latency = overview["messages"]["deliveryLatencyMs"]
    expect("latency count", latency["count"], truth["messages"]["delivered"])
    status, queues = api_get(ds, "/api/analytics/queues", token)
    for label, entry in queues.items():
        expect(f"queues.{label}.dlqDepth", entry.get("dlqDepth", 0), 0)
        expect(f"queues.{label}.depth", entry.get("depth", 0), 0)
    for label, (processed, failed) in truth["queues"].items():
        figures = queues[label]["processing"]
        expect(f"queues.{label}.processed", figures["processed"], processed)
        expect(f"queues.{label}.failed", figures["failed"], failed)
        expect(f"queues.{label}.timings", figures["processingTimeMs"]["count"], processed)
    status, active = api_get(ds, "/api/analytics/sessions/active", token)
    expect("sessions.active", active["count"], truth["connections"]["online"])
    status, recent = api_get(ds, "/api/analytics/sessions/recent", token)
    expect(
        "sessions.recent",
        sorted(s["userId"] for s in recent["sessions"]),
        ["gt-alice", "gt-alice", "gt-bob"],
    )
    for user, stats in truth["users"].items():
        status, body = api_get(ds, f"/api/analytics/sessions/{user}", token)
        for key, value in stats.items():
            expect(f"sessions/{user}.{key}", body.get(key), value)
        counts = sorted((x["messages"], x["typingEvents"]) for x in body["recentSessions"])
        expect(f"sessions/{user}.perSession", counts, truth["sessionCounts"].get(user, []))
    status, statistics = api_get(ds, "/api/analytics/statistics", token)
    expect("statistics.messagesSent", statistics["totals"]["messagesSent"], 4)
    expect("statistics.lastDay.callAttempts", statistics["lastDay"]["callAttempts"], 2)
    for metric, total in (("messagesSent", 4), ("connections", 3), ("uploadsCompleted", 1)):
        status, series = api_get(ds, f"/api/analytics/timeseries?metric={metric}", token)
        expect(f"timeseries.{metric}", sum(p["value"] for p in series["points"]), total)
    return found


def stream_records(ds: RunningDevserver) -> list[dict[str, Any]]:
    ddb, streams = ds.aws("dynamodb"), ds.aws("dynamodbstreams")
    records: list[dict[str, Any]] = []
    for lid in SOURCES:
        arn = ddb.describe_table(TableName=ds.resources[lid])["Table"]["LatestStreamArn"]
        for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
            iterator = streams.get_shard_iterator(
                StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            while iterator:
                response = streams.get_records(ShardIterator=iterator, Limit=1000)
                if not response["Records"]:
                    break
                records += [EventSources._stream_record(r, arn) for r in response["Records"]]
                iterator = response.get("NextShardIterator")
    return records


def replay(ds: RunningDevserver, records: list[dict[str, Any]]) -> None:
    """The aggregator's own handler, in this process, against the devserver's moto: every
    record again, each twice, in batches (a retried / duplicated delivery)."""
    from switchboard import aws

    env = {
        **moto_client_environment(ds.moto),
        "POWERTOOLS_METRICS_DISABLED": "true",
        "METRICS_TABLE": ds.resources["MetricsTable"],
        **{
            f"{name}_TABLE": ds.resources[f"{name.title().replace('_', '')}Table"]
            for name in (
                "CONNECTIONS",
                "MESSAGES",
                "CONVERSATIONS",
                "NOTIFICATIONS",
                "CALLS",
                "UPLOADS",
            )
        },
        "RATE_LIMITS_TABLE": ds.resources["RateLimitsTable"],
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        aws.dynamodb.cache_clear()
        sys.modules.pop("functions.analytics.aggregator", None)
        aggregator = importlib.import_module("functions.analytics.aggregator")
        doubled = [r for r in records for _ in range(2)]
        for start in range(0, len(doubled), 20):
            result = aggregator.lambda_handler({"Records": doubled[start : start + 20]}, Context())
            assert result == {"batchItemFailures": []}
        aws.dynamodb.cache_clear()


class Context:
    function_name = "replay"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:replay"
    aws_request_id = "replay"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


async def test_every_endpoint_equals_the_ground_truth_also_after_replays(
    start_devserver: StartDevserver,
) -> None:
    ds = start_devserver()
    token = ds.token("admin", admin=True)
    # Given a known run of activity on a fresh stack
    truth = await scripted_activity(ds)
    # When the stream aggregator has caught up, every endpoint equals the truth
    try:
        await eventually(lambda: not mismatches(ds, truth, token), SETTLE_TIMEOUT, interval=1.0)
    except AssertionError:
        pytest.fail("\n".join(mismatches(ds, truth, token)))
    # And when every stream record is delivered again, twice, nothing changes
    records = stream_records(ds)
    assert len(records) > 30
    await asyncio.to_thread(replay, ds, records)
    assert mismatches(ds, truth, token) == []
    # And a non-admin token is refused while the admin's works
    assert api_get(ds, "/api/analytics", ds.token("gt-alice"))[0] == 403
    assert api_get(ds, "/api/analytics", None)[0] == 401
