"""Abuse cases of messaging, sessions and connections (docs/security.md, "Messaging, calls
and authentication"): each test is a finding of the abuse review, and failed on the code
before its fix. Handlers are called in-process under moto."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from switchboard import aws
from switchboard.gateway import ManagementApi
from switchboard.messaging import SYNC_MAX_QUERIES
from switchboard.queues import RetryJob

from tests.integration.conftest import FakeContext, Stack
from tests.integration.test_calls import sqs_event
from tests.integration.test_messaging import Client, new_conversation, send
from tests.support.effects import InProcess


@pytest.fixture(scope="module")
def apps(stack: Stack) -> tuple[ModuleType, ModuleType]:
    return stack.handler("MessageFunction"), stack.handler("ConnectionFunction")


@pytest.fixture
def people(stack: Stack, apps: tuple[ModuleType, ModuleType]) -> Any:
    def make(*names: str) -> list[Client]:
        tag = uuid.uuid4().hex[:6]
        return [Client(stack, apps[0], apps[1], f"{name}-{tag}") for name in names]

    return make


def test_typing_stop_is_rate_limited_like_typing_start(
    people: Any, apps: tuple[ModuleType, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    attacker, victim = people("attacker", "victim")
    conversation = new_conversation(attacker, victim)
    # The service's clock stands still, so all 31 frames fall in one 2 s window
    now = time.time()
    monkeypatch.setattr(apps[0].service, "_clock", lambda: now)
    # Given 31 typing:stop frames in a row (each was a presence read and a post per device)
    codes = [attacker.call("typing:stop", {"conversationId": conversation}) for _ in range(31)]
    # Then one is pushed and the other 30 are refused
    assert [r["ok"] for r in codes].count(True) == 1
    assert {r["error"]["code"] for r in codes if not r["ok"]} == {"rate_limited"}
    assert len(victim.frames("typing")) == 1
    # And a start right after a stop is still allowed (their windows are separate)
    attacker.ok("typing:start", {"conversationId": conversation})
    assert [f["data"]["state"] for f in victim.frames("typing")] == ["stop", "start"]


@pytest.fixture
def queries() -> Iterator[list[dict[str, Any]]]:
    """The parameters of every DynamoDB Query the handlers make (botocore's own hook)."""
    seen: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        seen.append(params)

    client = aws.dynamodb()
    client.meta.events.register("provide-client-params.dynamodb.Query", record)
    yield seen
    client.meta.events.unregister("provide-client-params.dynamodb.Query", record)


def test_sync_stops_querying_once_its_reply_is_full(
    people: Any, queries: list[dict[str, Any]]
) -> None:
    alice, bob = people("alice", "bob")
    carol, dave = people("carol", "dave")
    big = new_conversation(alice, bob)
    others = [new_conversation(carol, bob), new_conversation(dave, bob)]
    # Given one conversation whose messages alone fill a reply (30 x 4000 characters)
    for i in range(30):
        send(alice, big, f"{i:04d}" + "x" * 3996)
    for conversation in others:
        send(carol if conversation == others[0] else dave, conversation, "y" * 4000)
    # When bob syncs all three from the start
    queries.clear()
    reply = bob.ok("message:sync", {"cursors": {big: 0, others[0]: 0, others[1]: 0}, "limit": 500})
    synced = reply["conversations"]
    # Then one Query was made (the reply was full after it), reading no more than could fit
    assert len(queries) == 1, queries
    assert queries[0]["Limit"] <= 100_000 // 128 + 1
    assert 20 <= len(synced[big]["messages"]) < 30 and synced[big]["hasMore"] is True
    for conversation in others:
        assert synced[conversation] == {
            "lastSeq": 1,
            "messages": [],
            "hasMore": True,
            "lastChange": 0,
        }
    # And syncing again from where it stopped continues (nothing is lost)
    after = synced[big]["messages"][-1]["seq"]
    rest = bob.ok("message:sync", {"cursors": {big: after}})["conversations"][big]
    assert [m["seq"] for m in rest["messages"]] == list(range(after + 1, 31))


def test_sync_bounds_queries_per_frame_whatever_the_cursor_count(
    stack: Stack, apps: Any, queries: list[dict[str, Any]]
) -> None:
    app, connect = stack.handler("MessageFunction", CREATE_LIMIT_PER_USER="1000"), apps[1]
    tag = uuid.uuid4().hex[:6]
    victim = Client(stack, app, connect, f"victim-{tag}")
    attacker = Client(stack, app, connect, f"attacker-{tag}")
    # Given 30 conversations with one new message each (each a Query on the old code)
    cursors = {}
    for i in range(30):
        conversation = new_conversation(attacker, victim, listingId=f"L{i}")
        send(attacker, conversation, "hi")
        cursors[conversation] = 0
    queries.clear()
    synced = victim.ok("message:sync", {"cursors": cursors})["conversations"]
    # Then at most SYNC_MAX_QUERIES queries ran, and the rest say hasMore
    assert len(queries) == SYNC_MAX_QUERIES < len(cursors)
    served = [c for c, entry in synced.items() if entry["messages"]]
    assert len(served) == SYNC_MAX_QUERIES
    assert all(
        synced[c]["hasMore"] and not synced[c]["messages"] for c in cursors if c not in served
    )


def _refusing_gateway(*codes: tuple[str, int]) -> tuple[ManagementApi, Stubber]:
    client = boto3.client(
        "apigatewaymanagementapi",
        endpoint_url="https://abc.execute-api.us-east-1.amazonaws.com/dev",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    stub = Stubber(client)
    for code, status in codes:
        stub.add_client_error("post_to_connection", code, http_status_code=status)
    return ManagementApi("unused", client=client), stub


def _queue_depth(stack: Stack, queue_url: str) -> int:
    attributes = stack.client("sqs").get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


@pytest.mark.parametrize(
    ("code", "status"), [("PayloadTooLargeException", 413), ("BadRequestException", 400)]
)
def test_a_post_refused_for_good_is_dropped_not_retried_into_the_dlq(
    stack: Stack, code: str, status: int
) -> None:
    retry = stack.handler("DeliveryRetryFunction")
    queue_url = retry.settings.DELIVERY_QUEUE_URL
    depth = _queue_depth(stack, queue_url)
    # Given API Gateway refusing a post for what it is (too large, malformed)
    gateway, stub = _refusing_gateway((code, status), (code, status))
    retry.delivery.gateway = gateway
    job = RetryJob("conn-x", "user-x", json.dumps({"type": "x", "data": "y" * 10}))
    event = sqs_event(json.loads(job.body()))
    with stub:
        # When the delivery-retry consumer gets it - Then it is consumed (no batch failure)
        assert retry.lambda_handler(event, FakeContext()) == {"batchItemFailures": []}
        # And a fan-out meeting it drops it too, instead of queueing a retry
        report = retry.delivery.to_connections({"conn-x": "user-x"}, {"type": "x"})
    assert report.dropped == ["conn-x"] and report.queued_for_retry == []
    assert _queue_depth(stack, queue_url) == depth


def test_reusing_a_client_message_id_for_another_body_is_a_conflict(people: Any) -> None:
    alice, bob = people("alice", "bob")
    conversation = new_conversation(alice, bob)
    first = send(alice, conversation, "pay 10", client_id="cm-1")
    # Given the same clientMessageId with a different body (or attachment list)
    reused = {"conversationId": conversation, "clientMessageId": "cm-1", "body": "pay 1000"}
    # Then the send answers conflict instead of the first message's reply
    assert alice.error("message:send", reused) == "conflict"
    # While a true retry (same content) still gets the first reply, and one message exists
    assert send(alice, conversation, "pay 10", client_id="cm-1") == first
    history = bob.ok("message:history", {"conversationId": conversation})
    assert [m["body"] for m in history["messages"]] == ["pay 10"]


@pytest.fixture
def failing_ack_write() -> Iterator[list[int]]:
    """Makes the next ackedSeq UpdateItem fail (a 500), once: a read half done."""
    failed: list[int] = []

    def fail(params: dict[str, Any], **_: Any) -> None:
        if not failed and params.get("ExpressionAttributeNames") == {"#c": "ackedSeq"}:
            failed.append(1)
            raise ClientError(
                {"Error": {"Code": "InternalServerError", "Message": "injected"}}, "UpdateItem"
            )

    client = aws.dynamodb()
    client.meta.events.register("provide-client-params.dynamodb.UpdateItem", fail)
    yield failed
    client.meta.events.unregister("provide-client-params.dynamodb.UpdateItem", fail)


def test_a_read_retried_after_a_partial_failure_lifts_acked_seq(
    people: Any, stack: Stack, failing_ack_write: list[int]
) -> None:
    alice, bob = people("alice", "bob")
    conversation = new_conversation(alice, bob)
    for i in range(3):
        send(alice, conversation, f"m{i}")
    # Given a message:read whose readSeq write landed and whose ackedSeq write failed
    assert bob.error("message:read", {"conversationId": conversation, "seq": 3}) == "internal"
    assert failing_ack_write == [1]
    # When the client retries the read
    bob.ok("message:read", {"conversationId": conversation, "seq": 3})
    # Then ackedSeq caught up (the backlog would otherwise redeliver read messages)
    member = stack.client("dynamodb").get_item(
        TableName=stack.table("ConversationsTable"),
        Key={"conversationId": {"S": conversation}, "sk": {"S": f"member#{bob.user_id}"}},
        ConsistentRead=True,
    )["Item"]
    assert (member["readSeq"]["N"], member["ackedSeq"]["N"]) == ("3", "3")


def test_repeating_an_old_send_pushes_nothing_past_a_block(people: Any) -> None:
    alice, bob = people("alice", "bob")
    conversation = new_conversation(alice, bob)
    frame = {"conversationId": conversation, "clientMessageId": "cm-1", "body": "hi"}
    first = alice.ok("message:send", frame)
    # Given bob blocked alice after her message
    bob.ok("user:block", {"userId": alice.user_id})
    window = InProcess().window()
    # When alice repeats that send (same clientMessageId and body): an idempotent retry
    again = alice.ok("message:send", frame)
    # Then she gets the first reply, but nothing reaches bob: the repeat was a way to push
    # her old message to his devices (and mail him) for a day after the block
    assert again == first
    window.assert_nothing_happened("a repeated send to someone who blocked the sender")


def test_repeating_a_request_pushes_nothing_after_a_decline(people: Any) -> None:
    alice, bob = people("alice", "bob")
    conversation = new_conversation(alice, bob, accept=False)  # a message request
    frame = {"conversationId": conversation, "clientMessageId": "cm-1", "body": "hi"}
    first = alice.ok("message:send", frame)
    bob.ok("conversation:decline", {"conversationId": conversation})
    window = InProcess().window()
    # When alice repeats her request's message: the same first reply, nothing to bob
    assert alice.ok("message:send", frame) == first
    window.assert_nothing_happened("a repeated send to someone who declined")


def test_repeated_sends_push_no_more_than_the_send_limit(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = stack.handler("MessageFunction", SEND_LIMIT_PER_USER="5")
    connect = stack.handler("ConnectionFunction")
    tag = uuid.uuid4().hex[:6]
    alice, bob = (Client(stack, app, connect, f"{n}-{tag}") for n in ("alice", "bob"))
    conversation = new_conversation(alice, bob)
    # The service's clock stands still: every frame falls in one rate window
    now = time.time()
    monkeypatch.setattr(app.service, "_clock", lambda: now)
    frame = {"conversationId": conversation, "clientMessageId": "cm-1", "body": "hi"}
    first = alice.ok("message:send", frame)
    # When alice repeats the same send 10 times (each was pushed to every member's devices
    # again, and queued a notification for every offline member, uncounted)
    replies = [alice.ok("message:send", frame) for _ in range(10)]
    # Then every repeat gets the first reply, but no more repeats are pushed than sends
    # could be (5 a window): the first send and 5 repeats
    assert all(reply == first for reply in replies)
    assert len(bob.frames("message:new")) == 6


def test_sync_reads_a_former_members_leaves_in_one_call(stack: Stack) -> None:
    app = stack.handler("MessageFunction", CREATE_LIMIT_PER_USER="1000")
    connect = stack.handler("ConnectionFunction")
    tag = uuid.uuid4().hex[:6]
    attacker, bob, carol = (
        Client(stack, app, connect, f"{n}-{tag}") for n in ("attacker", "bob", "carol")
    )
    # Given 30 groups the attacker was invited to and declined (he is a former member of
    # each: he reads up to his leave; 200 cursors could name 200 of them)
    groups = []
    for _ in range(30):
        created = bob.ok("conversation:create", {"members": [attacker.user_id, carol.user_id]})
        attacker.ok("conversation:decline", {"conversationId": created["conversationId"]})
        groups.append(created["conversationId"])
    operations: list[str] = []

    def record(event_name: str, **_: Any) -> None:
        operations.append(event_name.rsplit(".", 1)[1])

    client = aws.dynamodb()
    client.meta.events.register("provide-client-params.dynamodb.*", record)
    try:
        # When he syncs them all in one frame (each was a GetItem of his member item)
        synced = attacker.ok("message:sync", {"cursors": dict.fromkeys(groups, 0)})
    finally:
        client.meta.events.unregister("provide-client-params.dynamodb.*", record)
    # Then the frame reads the conversations and his member items in one call each
    assert set(synced["conversations"]) == set(groups)
    assert operations.count("GetItem") == 0
    assert operations.count("BatchGetItem") == 2


def test_a_retried_send_racing_another_members_send_is_still_pushed(
    people: Any, apps: tuple[ModuleType, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The repeat of an accepted send is pushed again because the first attempt may have
    died between storing and pushing. It was skipped whenever the repeat's transaction
    found the conversation's lastSeq moved (the "meta" condition, shared with a decline):
    an honest retry racing any other member's send never reached anyone live."""
    alice, bob = people("alice", "bob")
    conversation = new_conversation(alice, bob)
    service = apps[0].service
    frame = {"conversationId": conversation, "clientMessageId": "cm-1", "body": "hi"}

    # Given alice's send was stored, and her function died before pushing it
    def died(*_: Any, **__: Any) -> None:
        raise RuntimeError("the function died before pushing")

    with monkeypatch.context() as m:
        m.setattr(service, "_deliver", died)
        assert alice.error("message:send", frame) == "internal"
    assert not [f for f in bob.frames("message:new") if f["data"]["senderId"] == alice.user_id]
    # When she retries it while bob sends at the same moment (after her read of the
    # conversation, before her transaction)
    read = service._conversation_for_send
    raced: list[bool] = []

    def racing(caller: Any, data: Any) -> Any:
        found = read(caller, data)
        if caller.user_id == alice.user_id and not raced:
            raced.append(True)
            bob.ok(
                "message:send",
                {"conversationId": conversation, "clientMessageId": "b", "body": "yo"},
            )
        return found

    monkeypatch.setattr(service, "_conversation_for_send", racing)
    again = alice.ok("message:send", frame)
    # Then her message reaches bob live, once
    assert raced and again["seq"] == 1
    pushed = [
        f["data"]["seq"]
        for f in bob.frames("message:new")
        if f["data"]["senderId"] == alice.user_id
    ]
    assert pushed == [1]
