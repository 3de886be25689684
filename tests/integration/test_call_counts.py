"""AWS calls per operation, counted with botocore event hooks: a 1:1 send to an online
recipient costs at most 3 DynamoDB calls whatever the number of connected users, and no
request path ever Scans."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from switchboard import aws

from bench.calls import REQUEST_ACTIONS
from bench.counting import CallCounter, counting
from tests.integration.conftest import Stack
from tests.integration.test_messaging import Client


@pytest.fixture
def calls() -> Iterator[CallCounter]:
    # The bench's counter (botocore before-call hooks): the test and the bench count alike.
    with counting([aws.dynamodb(), aws.sqs()]) as counter:
        yield counter


def _one_to_one(stack: Stack) -> tuple[Client, Client, str, str]:
    """alice and bob, both connected, in a new 1:1 conversation alice started; the tag
    keeps this test's users apart from every other test's on the shared stack."""
    app, connect = stack.handler("MessageFunction"), stack.handler("ConnectionFunction")
    tag = uuid.uuid4().hex[:6]
    alice = Client(stack, app, connect, f"alice-{tag}")
    bob = Client(stack, app, connect, f"bob-{tag}")
    conversation = alice.ok("conversation:create", {"members": [bob.user_id]})["conversationId"]
    return alice, bob, conversation, tag


def test_one_to_one_send_costs_at_most_three_dynamodb_calls(
    stack: Stack, calls: CallCounter
) -> None:
    alice, bob, conversation, tag = _one_to_one(stack)
    alice.ok(
        "message:send", {"conversationId": conversation, "clientMessageId": "warm", "body": "warm"}
    )

    def send(body: str) -> dict[str, int]:
        calls.clear()
        alice.ok(
            "message:send", {"conversationId": conversation, "clientMessageId": body, "body": body}
        )
        assert bob.frames("message:new")[-1]["data"]["body"] == body
        return calls.snapshot()

    # Given nobody else online, then 30 other users online (with conversations of their own)
    alone = send("alone")
    app, connect = stack.handler("MessageFunction"), stack.handler("ConnectionFunction")
    crowd = [Client(stack, app, connect, f"crowd{i}-{tag}") for i in range(30)]
    for first, second in zip(crowd[::2], crowd[1::2], strict=True):
        first.ok("conversation:create", {"members": [second.user_id]})
    in_a_crowd = send("in a crowd")

    # Then the send costs the same, call for call, and at most 3 DynamoDB calls
    assert in_a_crowd == alone
    assert calls.service_calls("dynamodb") <= 3, alone
    assert alone["dynamodb.TransactWriteItems"] == 1
    # Seven items: the conversation's seq counter, the message, the idempotency record,
    # both members' activity (the sender's cursors too), ONE rate-limit item counting
    # both the user and the connection, and the recipient's block list (a ConditionCheck:
    # read, not written)
    assert calls.items["dynamodb.TransactWriteItems"] == 7
    assert alone.get("sqs.SendMessageBatch", 0) == 0  # bob is online: no notification job


def test_no_request_path_scans(stack: Stack, calls: CallCounter) -> None:
    alice, bob, conversation, _ = _one_to_one(stack)
    alice.ok("message:send", {"conversationId": conversation, "clientMessageId": "1", "body": "x"})
    # Every request action of the message function (the list the bench counts Scans over)
    for action, data in REQUEST_ACTIONS:
        bob.ok(action, data(conversation, bob.user_id))
    assert calls.calls["dynamodb.TransactWriteItems"] >= 1  # the hooks saw the traffic
    assert calls.scans() == 0, calls.snapshot()


def test_edit_delete_reaction_and_thread_replies_cost_at_most_three_dynamodb_calls(
    stack: Stack, calls: CallCounter
) -> None:
    alice, bob, conversation, _ = _one_to_one(stack)
    for body in ("one", "two"):
        alice.ok(
            "message:send", {"conversationId": conversation, "clientMessageId": body, "body": body}
        )
    # bob accepts first: a reply that accepts a request pushes the acceptance (consent's
    # cost, counted in the test below), not what is measured here
    bob.ok("conversation:accept", {"conversationId": conversation})
    at = {"conversationId": conversation, "seq": 2}
    counted: dict[str, dict[str, int]] = {}
    for name, client, action, data in (
        ("edit", alice, "message:edit", {**at, "body": "two!"}),
        ("react", bob, "message:react", {**at, "emoji": "👍"}),
        ("unreact", bob, "message:react", {**at, "emoji": "👍", "on": False}),
        (
            "thread reply",
            bob,
            "message:send",
            {"conversationId": conversation, "clientMessageId": "t", "body": "t", "parentSeq": 1},
        ),
        (
            "quote",
            bob,
            "message:send",
            {"conversationId": conversation, "clientMessageId": "q", "body": "q", "replyToSeq": 1},
        ),
        ("delete", alice, "message:delete", at),
    ):
        calls.clear()
        client.ok(action, data)
        counted[name] = calls.snapshot()
        assert calls.service_calls("dynamodb") <= 3, (name, counted[name])
        assert calls.scans() == 0
    # One read (conversation and message together), one transaction, the push's presence read
    for name in ("edit", "react", "unreact", "delete"):
        assert counted[name]["dynamodb.BatchGetItem"] == 2, counted[name]
        assert counted[name]["dynamodb.TransactWriteItems"] == 1, counted[name]
    assert counted["thread reply"]["dynamodb.TransactWriteItems"] == 1


def test_the_block_and_request_checks_ride_on_the_sends_own_transaction(
    stack: Stack, calls: CallCounter
) -> None:
    alice, bob, conversation, tag = _one_to_one(stack)
    bob.ok("user:block", {"userId": f"someone-else-{tag}"})  # bob has a block list
    alice.ok("message:send", {"conversationId": conversation, "clientMessageId": "w", "body": "w"})
    transactions: list[list[dict[str, Any]]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        transactions.append(params["TransactItems"])

    client = aws.dynamodb()
    client.meta.events.register("provide-client-params.dynamodb.TransactWriteItems", record)
    try:
        for sender, body in ((alice, "to a request"), (bob, "the reply accepts it")):
            calls.clear()
            sender.ok(
                "message:send",
                {"conversationId": conversation, "clientMessageId": body, "body": body},
            )
            # Then the send still costs at most 3 DynamoDB calls (GetItem, the transaction,
            # the recipients' presence; the reply's acceptance push reads presence again
            # once, the first time only: not counted here)
            if sender is alice:
                assert calls.service_calls("dynamodb") <= 3, calls.snapshot()
    finally:
        client.meta.events.unregister("provide-client-params.dynamodb.TransactWriteItems", record)
    # And the block check is a ConditionCheck on the recipient's Users item, inside it
    users = stack.table("UsersTable")
    for transaction, recipient in zip(transactions, (bob, alice), strict=True):
        checks = [i["ConditionCheck"] for i in transaction if "ConditionCheck" in i]
        assert [(c["TableName"], c["Key"]) for c in checks] == [
            (users, {"userId": {"S": recipient.user_id}})
        ]
    # And the reply's acceptance is in the same transaction: bob's pending entry goes
    meta = next(
        i["Update"]
        for i in transactions[1]
        if "Update" in i and i["Update"]["Key"]["sk"]["S"] == "#meta"
    )
    assert "DELETE pending" in meta["UpdateExpression"]
