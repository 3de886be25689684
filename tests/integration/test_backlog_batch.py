"""The reconnect backlog as ``message:batch`` frames: a connection opened with
``backlog=batch`` in its URL gets its catch-up packed into frames of at most 32 KB, in seq
order, through the real path ($connect -> Connections item -> stream -> connection
events); a connection without it gets one ``message:new`` per message."""

from __future__ import annotations

import uuid
from types import ModuleType
from typing import Any

import pytest
from switchboard import aws
from switchboard.backlog import BATCH_FRAME_BYTES
from switchboard.protocol import to_json

from bench.counting import counting
from tests.integration.conftest import FakeContext, Stack, pushed_frames
from tests.integration.test_analytics import StreamTap
from tests.integration.test_messaging import Client, new_conversation
from tests.support.events import ws_event

MESSAGES = 70


@pytest.fixture(scope="module")
def apps(stack: Stack) -> dict[str, ModuleType]:
    return {
        # the test sends faster than the per-connection limit allows
        "message": stack.handler(
            "MessageFunction", SEND_LIMIT_PER_CONNECTION="100000", SEND_LIMIT_PER_USER="100000"
        ),
        "connect": stack.handler("ConnectionFunction"),
        "events": stack.handler("ConnectionEventsFunction"),
    }


def reconnect(
    stack: Stack, apps: dict[str, ModuleType], user_id: str, query: dict[str, str]
) -> tuple[str, dict[str, Any]]:
    """A new connection of ``user_id`` through $connect (with ``query``), its Connections
    stream record handed to the connection-events consumer. Returns its id and item."""
    connection_id = f"{user_id}-{uuid.uuid4().hex[:6]}"
    tap = StreamTap(stack, ("ConnectionsTable",))
    event = ws_event("$connect", connection_id=connection_id, user_id=user_id)
    event["queryStringParameters"] = {"token": "t", **query}
    assert apps["connect"].lambda_handler(event, FakeContext()) == {"statusCode": 200}
    records = tap.new_records()
    assert len(records) == 1
    assert apps["events"].lambda_handler({"Records": records}, FakeContext()) == {
        "batchItemFailures": []
    }
    return connection_id, records[0]["dynamodb"]["NewImage"]


def test_a_batch_connection_gets_its_backlog_in_frames_of_at_most_32_kb(
    stack: Stack, apps: dict[str, ModuleType]
) -> None:
    # Given 70 messages of ~1.2 KB to bob (3 frames), who has acked none of them
    tag = uuid.uuid4().hex[:6]
    alice = Client(stack, apps["message"], apps["connect"], f"alice-{tag}")
    bob = f"bob-{tag}"
    conversation = new_conversation(alice, Client(stack, apps["message"], apps["connect"], bob))
    for seq in range(1, MESSAGES + 1):
        alice.ok(
            "message:send",
            {"conversationId": conversation, "clientMessageId": f"m{seq}", "body": "x" * 1000},
        )
    # When bob connects a device with backlog=batch
    with counting([aws.dynamodb()]) as calls:
        batched, item = reconnect(stack, apps, bob, {"backlog": "batch"})
    assert item["backlogBatch"] == {"BOOL": True}
    frames = pushed_frames(batched)
    # Then every message arrives once, in seq order, in a few message:batch frames that
    # each fit one billed WebSocket message (32 KB)
    assert {f["type"] for f in frames} == {"message:batch"}
    seqs = [m["seq"] for f in frames for m in f["data"]["messages"]]
    assert seqs == list(range(1, MESSAGES + 1))
    assert all(len(to_json(f).encode()) <= BATCH_FRAME_BYTES for f in frames)
    total = sum(len(to_json(f).encode()) for f in frames)
    assert len(frames) == -(-total // BATCH_FRAME_BYTES)  # as few frames as fit
    assert calls.service_calls("dynamodb") >= 1  # the backlog was read, not invented
    # And a device without it gets one message:new per message, as before
    single, item = reconnect(stack, apps, bob, {})
    assert "backlogBatch" not in item
    frames = pushed_frames(single)
    assert [f["type"] for f in frames] == ["message:new"] * MESSAGES
    assert [f["data"]["seq"] for f in frames] == list(range(1, MESSAGES + 1))
