"""AWS calls per operation, counted with botocore event hooks: a 1:1 send to an online
recipient costs at most 3 DynamoDB calls whatever the number of connected users, and no
request path ever Scans."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from switchboard import aws

from tests.integration.conftest import Stack
from tests.integration.test_messaging import Client


@pytest.fixture
def calls() -> Iterator[Counter[str]]:
    counted: Counter[str] = Counter()

    def count(event_name: str, **_: Any) -> None:
        # event_name: "before-call.<service>.<Operation>"
        _, service, operation = event_name.split(".", 2)
        counted[f"{service}.{operation}"] += 1

    clients = [aws.dynamodb(), aws.sqs()]
    for client in clients:
        client.meta.events.register("before-call.*.*", count)
    yield counted
    for client in clients:
        client.meta.events.unregister("before-call.*.*", count)


def dynamodb_calls(counted: Counter[str]) -> int:
    return sum(n for key, n in counted.items() if key.startswith("dynamodb."))


def test_one_to_one_send_costs_at_most_three_dynamodb_calls(
    stack: Stack, calls: Counter[str]
) -> None:
    app, connect = stack.handler("MessageFunction"), stack.handler("ConnectionFunction")
    tag = uuid.uuid4().hex[:6]
    alice = Client(stack, app, connect, f"alice-{tag}")
    bob = Client(stack, app, connect, f"bob-{tag}")
    # Many other users online must not change the cost of alice's send.
    crowd = [Client(stack, app, connect, f"crowd{i}-{tag}") for i in range(30)]
    conversation = alice.ok("conversation:create", {"members": [bob.user_id]})["conversationId"]
    alice.ok(
        "message:send", {"conversationId": conversation, "clientMessageId": "warm", "body": "warm"}
    )

    calls.clear()
    alice.ok(
        "message:send", {"conversationId": conversation, "clientMessageId": "m1", "body": "hi"}
    )

    assert dynamodb_calls(calls) <= 3, calls
    assert calls["dynamodb.TransactWriteItems"] == 1
    assert calls["sqs.SendMessageBatch"] == 0  # bob is online: no notification job
    assert bob.frames("message:new")[-1]["data"]["body"] == "hi"
    assert len(crowd) == 30


def test_no_request_path_scans(stack: Stack, calls: Counter[str]) -> None:
    app, connect = stack.handler("MessageFunction"), stack.handler("ConnectionFunction")
    tag = uuid.uuid4().hex[:6]
    alice = Client(stack, app, connect, f"alice-{tag}")
    bob = Client(stack, app, connect, f"bob-{tag}")
    conversation = alice.ok("conversation:create", {"members": [bob.user_id]})["conversationId"]
    cid = {"conversationId": conversation}
    alice.ok("message:send", {**cid, "clientMessageId": "1", "body": "x"})
    for action, data in [
        ("conversation:list", {}),
        ("message:ack", {**cid, "seq": 1}),
        ("message:read", {**cid, "seq": 1}),
        ("message:sync", {"cursors": {conversation: 0}}),
        ("message:history", cid),
        ("typing:start", cid),
        ("typing:stop", cid),
        ("presence:query", {"userIds": [bob.user_id]}),
        ("preferences:get", {}),
        ("preferences:set", {"digestMinutes": 10}),
        ("notification:list", {}),
    ]:
        bob.ok(action, data)
    assert calls["dynamodb.TransactWriteItems"] >= 1  # the hooks saw the traffic
    assert not [key for key in calls if key.endswith(".Scan")], calls
