"""The reconnect backlog as ``message:batch`` frames: a connection opened with
``backlog=batch`` in its URL gets its catch-up packed into frames of at most 32 KB, in seq
order, through the real path ($connect -> Connections item -> stream -> connection
events); a connection without it gets one ``message:new`` per message. And what the
catch-up costs, call by call: the messages of a conversation are read in one Query
(up to the 1,000 of one connect), each is serialised once, each frame is one post."""

from __future__ import annotations

import uuid
from types import ModuleType
from typing import Any

import pytest
from switchboard import backlog
from switchboard.backlog import BACKLOG_MAX_MESSAGES, BATCH_FRAME_BYTES
from switchboard.protocol import to_json
from switchboard.wire.messaging import MessageBatch

from bench.counting import CallCounter, counting_every_client
from bench.e2e import write_backlog
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
    stack: Stack,
    apps: dict[str, ModuleType],
    user_id: str,
    query: dict[str, str],
    calls: CallCounter | None = None,
) -> tuple[str, dict[str, Any]]:
    """A new connection of ``user_id`` through $connect (with ``query``), its Connections
    stream record handed to the connection-events consumer (its AWS calls counted into
    ``calls``). Returns its id and item."""
    connection_id = f"{user_id}-{uuid.uuid4().hex[:6]}"
    tap = StreamTap(stack, ("ConnectionsTable",))
    event = ws_event("$connect", connection_id=connection_id, user_id=user_id)
    event["queryStringParameters"] = {"token": "t", **query}
    assert apps["connect"].lambda_handler(event, FakeContext()) == {"statusCode": 200}
    records = tap.new_records()
    assert len(records) == 1
    with counting_every_client() as counted:
        handled = apps["events"].lambda_handler({"Records": records}, FakeContext())
    assert handled == {"batchItemFailures": []}
    if calls is not None:
        calls.calls.update(counted.calls)
    return connection_id, records[0]["dynamodb"]["NewImage"]


def store_backlog(stack: Stack, conversation_id: str, sender: str, count: int) -> None:
    """``count`` messages of ~110 characters from ``sender``, stored as bench/e2e.py stores
    its backlog."""
    write_backlog(
        stack.client("dynamodb"),
        stack.table("MessagesTable"),
        stack.table("ConversationsTable"),
        conversation_id,
        sender,
        count,
        padding=100,
    )


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
    calls = CallCounter()
    batched, item = reconnect(stack, apps, bob, {"backlog": "batch"}, calls)
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
    # And it cost: bob's presence (one BatchGetItem), his two folders (a Query each), the
    # conversations (one BatchGetItem), the messages (one Query), one post per frame
    assert calls.snapshot() == {
        "apigatewaymanagementapi.PostToConnection": len(frames),
        "dynamodb.BatchGetItem": 2,
        "dynamodb.Query": 3,
    }
    # And a device without it gets one message:new per message, as before
    single, item = reconnect(stack, apps, bob, {})
    assert "backlogBatch" not in item
    frames = pushed_frames(single)
    assert [f["type"] for f in frames] == ["message:new"] * MESSAGES
    assert [f["data"]["seq"] for f in frames] == list(range(1, MESSAGES + 1))


def test_a_full_backlog_is_read_in_one_query_and_serialised_once(
    stack: Stack, apps: dict[str, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given more messages to bob than one connect pushes (1,000), none of them acked
    tag = uuid.uuid4().hex[:6]
    alice = Client(stack, apps["message"], apps["connect"], f"alice-{tag}")
    bob = f"bob-{tag}"
    conversation = new_conversation(alice, Client(stack, apps["message"], apps["connect"], bob))
    store_backlog(stack, conversation, alice.user_id, BACKLOG_MAX_MESSAGES + 5)
    serialised: list[int] = []  # seq of each message serialised
    batches_serialised: list[int] = []
    wire = backlog.Message.wire

    def counted(message: backlog.Message) -> dict[str, Any]:
        serialised.append(message.seq)
        return wire(message)

    def batch_wire(batch: MessageBatch) -> dict[str, Any]:
        batches_serialised.append(len(batch.messages))
        raise AssertionError("a frame's messages were serialised again")

    monkeypatch.setattr(backlog.Message, "wire", counted)
    monkeypatch.setattr(MessageBatch, "wire", batch_wire)
    queries: list[dict[str, Any]] = []

    def keep(params: dict[str, Any], **_: Any) -> None:
        if params.get("KeyConditionExpression", "").endswith("seq > :s"):
            queries.append(params)

    # When bob connects a device with backlog=batch
    calls = CallCounter()
    messages_table = apps["events"].events.backlog.conversations.client
    messages_table.meta.events.register("provide-client-params.dynamodb.Query", keep)
    try:
        batched, _ = reconnect(stack, apps, bob, {"backlog": "batch"}, calls)
    finally:
        messages_table.meta.events.unregister("provide-client-params.dynamodb.Query", keep)
    frames = pushed_frames(batched)
    # Then the 1,000 oldest arrive once, in seq order, in as few frames of at most 32 KB
    # as hold them, each a valid message:batch
    seqs = [m["seq"] for f in frames for m in f["data"]["messages"]]
    assert seqs == list(range(1, BACKLOG_MAX_MESSAGES + 1))
    sizes = [len(to_json(f).encode()) for f in frames]
    assert max(sizes) <= BATCH_FRAME_BYTES
    assert len(frames) == -(-sum(sizes) // BATCH_FRAME_BYTES)
    for frame in frames:
        assert frame["type"] == "message:batch"
        MessageBatch.model_validate(frame["data"])
    # And they were read in one consistent Query of the 1,000, and each message was
    # checked and serialised once (not again for its frame)
    assert len(queries) == 1
    assert queries[0]["Limit"] == BACKLOG_MAX_MESSAGES
    assert queries[0]["ConsistentRead"] is True
    assert serialised == list(range(1, BACKLOG_MAX_MESSAGES + 1))
    assert batches_serialised == []
    assert calls.snapshot() == {
        "apigatewaymanagementapi.PostToConnection": len(frames),
        "dynamodb.BatchGetItem": 2,
        "dynamodb.Query": 3,
    }
