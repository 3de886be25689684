"""Messaging end to end: real WebSocket clients, through the devserver (template.yaml's
functions, event-source mappings and queues on moto), checked against the delivery
semantics of docs/protocol.md ("Delivery semantics"). Every wait is bounded."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest

from tests.support.effects import Devserver

from .clients import (
    Client,
    Session,
    admin,
    befriend,
    clear_faults,
    emails_to,
    eventually,
    has_connection_item,
    invocations,
    peek_queue,
    presence_set,
    queue_url,
    set_faults,
)
from .conftest import RunningDevserver

pytestmark = pytest.mark.e2e

STREAM_TIMEOUT = (
    45.0  # stream consumer + SQS polling, on a loaded 2-core machine (chaos may run alongside)
)
# HTTP attempts per management-API post: the layer's client makes one
# (retries {"mode": "standard", "total_max_attempts": 1}); SQS does the retrying.
BOTO_ATTEMPTS = 1


def _users(*names: str) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    return [f"{name}-{tag}" for name in names]


async def _offline(ds: RunningDevserver, user_id: str) -> None:
    """Waits until $disconnect has emptied the user's presence set."""
    await eventually(lambda: not presence_set(ds, user_id), STREAM_TIMEOUT)


def _announcements(watcher: Client, user_id: str, online: bool) -> int:
    return len(watcher.find("presence", lambda d: d["userId"] == user_id and d["online"] is online))


async def _settled(ds: RunningDevserver, *clients: Client) -> None:
    """Waits until the Connections-stream consumer has handled these clients' connects
    (its backlog and presence pushes are done), so later checks see only what follows."""
    for client in clients:
        connection_id = client.connection_id or await client.find_connection_id()
        await _wait_log(ds, "connection opened", connection_id)


def _drained(ds: RunningDevserver, logical_id: str) -> dict[str, int] | None:
    """The queue's depths once nothing is visible or in flight (None before)."""
    attributes = ds.aws("sqs").get_queue_attributes(
        QueueUrl=queue_url(ds, logical_id), AttributeNames=["All"]
    )["Attributes"]
    depth = {k: int(v) for k, v in attributes.items() if k.startswith("ApproximateNumber")}
    visible = depth["ApproximateNumberOfMessages"] + depth["ApproximateNumberOfMessagesNotVisible"]
    return None if visible else depth


def _faults(ds: RunningDevserver) -> Any:
    return admin(ds, "GET", "/__devserver/faults")


async def _wait_log(ds: RunningDevserver, *needles: str, timeout: float = STREAM_TIMEOUT) -> None:
    def found() -> bool:
        return any(all(n in line for n in needles) for line in ds.log().splitlines())

    await eventually(found, timeout)


# ---------------------------------------------------------------------- devices
async def test_every_device_of_every_member_gets_every_message(devserver: RunningDevserver) -> None:
    alice, bob = _users("alice", "bob")
    async with Session(devserver) as s:
        a1, a2 = await s.connect(alice), await s.connect(alice)
        b1, b2 = await s.connect(bob), await s.connect(bob)
        conversation = await a1.create_conversation([bob])
        sent = {}
        for i in range(3):
            sent[(await a1.send(conversation, f"from alice {i}"))["seq"]] = f"from alice {i}"
        sent[(await b2.send(conversation, "from bob's phone"))["seq"]] = "from bob's phone"
        assert sorted(sent) == [1, 2, 3, 4]

        # Both of bob's devices get everything; alice's other device gets her own sends and
        # bob's; the sending device gets the other side's messages.
        await b1.wait_for_messages(conversation, {1, 2, 3, 4})
        await a2.wait_for_messages(conversation, {1, 2, 3, 4})
        await b2.wait_for_messages(conversation, {1, 2, 3})
        await a1.wait_for_messages(conversation, {4})
        for client in (b1, a2):
            got = client.messages[conversation]
            assert {seq: m["body"] for seq, m in got.items()} == sent
            assert got[4]["senderId"] == bob
            assert got[1]["senderId"] == alice


# ---------------------------------------------------------------------- backlog
async def test_reconnecting_user_gets_the_offline_backlog_in_order_unasked(
    devserver: RunningDevserver,
) -> None:
    alice, bob = _users("alice", "bob")
    async with Session(devserver) as s:
        a = await s.connect(alice)
        b = await s.connect(bob)
        conversation = await a.create_conversation([bob])
        await b.close()
        await _offline(devserver, bob)

        for i in range(1, 31):
            assert (await a.send(conversation, f"message {i}"))["seq"] == i

        # No message:sync: the Connections-stream consumer pushes the backlog on connect,
        # a message request's too (alice is a stranger to bob: her dm is one).
        b = await s.connect(bob)
        await b.wait_for_messages(conversation, range(1, 31), timeout=STREAM_TIMEOUT)
        arrival = list(dict.fromkeys(b.message_pushes(conversation)))
        assert arrival == list(range(1, 31))
        assert [b.messages[conversation][i]["body"] for i in range(1, 31)] == [
            f"message {i}" for i in range(1, 31)
        ]

        # bob accepts: receipts (and presence) flow between contacts only
        await b.call("conversation:accept", {"conversationId": conversation})
        acked = await b.call("message:ack", {"conversationId": conversation, "seq": 30})
        assert acked == {"conversationId": conversation, "seq": 30, "moved": True}
        delivered = await a.wait_for("message:delivered", lambda d: d["userId"] == bob)
        assert delivered == {"conversationId": conversation, "seq": 30, "userId": bob}

        # Reconnect again: the consumer runs (alice sees bob come online, which it
        # announces after the backlog) and pushes nothing old.
        before = _announcements(a, bob, True)
        await b.close()
        await _offline(devserver, bob)
        b = await s.connect(bob)
        await eventually(
            lambda: _announcements(a, bob, True) > before,
            STREAM_TIMEOUT,
        )
        # The consumer posts the backlog before the announcement, and bob's frames reach
        # his socket in order: anything old would be there before his sentinel's pong.
        await b.sentinel()
        assert b.find("message:new") == []


async def test_a_senders_own_message_is_neither_unread_nor_backlog_to_her(
    devserver: RunningDevserver,
) -> None:
    alice, bob = _users("alice", "bob")
    async with Session(devserver) as s:
        a = await s.connect(alice)
        conversation = await a.create_conversation([bob])
        assert (await a.send(conversation, "mine"))["seq"] == 1
        await a.close()
        await _offline(devserver, alice)
        b = await s.connect(bob)
        assert (await b.send(conversation, "yours"))["seq"] == 2

        # Alice comes back: the Connections-stream consumer pushes her backlog, which is
        # bob's message only (hers moved her cursors when she sent it).
        a = await s.connect(alice)
        await a.wait_for_messages(conversation, {2}, timeout=STREAM_TIMEOUT)
        await _settled(devserver, a)  # the consumer is done with this connect
        assert (await a.call("ping"))["pong"] is True  # sentinel: after every backlog push
        assert a.message_pushes(conversation) == [2]
        listed = (await a.call("conversation:list", {}))["conversations"]
        mine = next(c for c in listed if c["conversationId"] == conversation)
        assert (mine["ackedSeq"], mine["readSeq"], mine["unread"]) == (1, 1, 1)


# ---------------------------------------------------------------------- idempotency
async def test_retried_send_is_idempotent(devserver: RunningDevserver) -> None:
    alice, bob = _users("alice", "bob")
    async with Session(devserver) as s:
        a = await s.connect(alice)
        conversation = await a.create_conversation([bob])
        first = await a.send(conversation, "only once", client_message_id="cm-1")
        again = await a.send(conversation, "only once", client_message_id="cm-1")
        assert again == first
        assert first["seq"] == 1
        other = await a.send(conversation, "another", client_message_id="cm-2")
        assert other["seq"] == 2

        history = await a.call("message:history", {"conversationId": conversation})
        assert history["lastSeq"] == 2
        assert [(m["seq"], m["clientMessageId"]) for m in history["messages"]] == [
            (1, "cm-1"),
            (2, "cm-2"),
        ]
        assert history["messages"][0]["messageId"] == first["messageId"]


# ---------------------------------------------------------------------- membership
async def test_non_member_is_refused_everything(devserver: RunningDevserver) -> None:
    alice, bob, mallory = _users("alice", "bob", "mallory")
    async with Session(devserver) as s:
        a = await s.connect(alice)
        m = await s.connect(mallory)
        conversation = await a.create_conversation([bob])
        await a.send(conversation, "private")
        target = {"conversationId": conversation}
        refused = {
            "message:send": {**target, "clientMessageId": "x", "body": "let me in"},
            "message:sync": {"cursors": {conversation: 0}},
            "message:history": target,
            "typing:start": target,
            "message:ack": {**target, "seq": 1},
            "message:read": {**target, "seq": 1},
        }
        for action, data in refused.items():
            window = Devserver(devserver.http).window()
            # not_found: as for a conversation that does not exist (tells mallory nothing)
            assert await m.error_code(action, data) == "not_found", action
            # Nothing happened, to anyone: no push (to alice either), no write, no job.
            window.assert_nothing_happened(f"{action} by a non-member")
        history = await a.call("message:history", target)
        assert history["lastSeq"] == 1
        await m.sentinel()
        await a.sentinel()
        assert m.find("message:new") == [] and m.find("typing") == []
        assert a.find("typing") == []


# ---------------------------------------------------------------------- 410 Gone
async def test_gone_connection_is_removed_and_live_device_still_gets_the_message(
    devserver: RunningDevserver,
) -> None:
    alice, bob = _users("alice", "bob")
    ddb = devserver.aws("dynamodb")
    async with Session(devserver) as s:
        a = await s.connect(alice, with_id=True)
        b = await s.connect(bob, with_id=True)
        conversation = await a.create_conversation([bob])
        # The stream consumer's work for these connects (presence pushes) is done first.
        await _settled(devserver, a, b)

        # A connection that died without its $disconnect: still in bob's presence set and
        # in the Connections table, unknown to API Gateway (posts answer 410). It opened
        # long ago: a 410 for a connection seconds old means "still handshaking" instead.
        stale = f"dead{uuid.uuid4().hex[:11]}="
        now = int(time.time())
        ddb.put_item(
            TableName=devserver.resources["ConnectionsTable"],
            Item={
                "connectionId": {"S": stale},
                "userId": {"S": bob},
                "connectedAt": {"N": str((now - 3600) * 1000)},
                "tokenExp": {"N": str(now + 3600)},
                "expiresAt": {"N": str(now + 7800)},
                "device": {"S": "a phone that fell in the lake"},
            },
        )
        ddb.update_item(
            TableName=devserver.resources["UsersTable"],
            Key={"userId": {"S": bob}},
            UpdateExpression="ADD connectionIds :c",
            ExpressionAttributeValues={":c": {"SS": [stale]}},
        )
        # Let the stream consumer see the insert first (no backlog yet: it posts nothing),
        # so the 410 below comes from the send's fan-out.
        await _wait_log(devserver, "connection opened", stale)
        assert presence_set(devserver, bob) == {b.connection_id, stale}

        reply = await a.send(conversation, "are you there?")
        await b.wait_for_messages(conversation, {reply["seq"]})
        await eventually(
            lambda: (
                stale not in presence_set(devserver, bob)
                and not has_connection_item(devserver, stale)
            ),
            STREAM_TIMEOUT,
        )
        assert presence_set(devserver, bob) == {b.connection_id}
        await _wait_log(devserver, "connection gone", stale)


# ---------------------------------------------------------------------- retries
async def test_throttled_push_is_retried_through_the_delivery_queue(
    devserver: RunningDevserver,
) -> None:
    alice, bob = _users("alice", "bob")
    async with Session(devserver) as s:
        a = await s.connect(alice)
        b = await s.connect(bob, with_id=True)
        conversation = await a.create_conversation([bob])
        await _settled(devserver, a, b)
        retries_before = invocations(devserver, "DeliveryRetryFunction")
        # Three 429s: the post and boto3's own retries of it (the layer's client config,
        # retries max_attempts=2, makes 3 HTTP attempts) all fail, so the push goes to the
        # SQS delivery queue, whose consumer delivers it.
        set_faults(
            devserver,
            failures=[{"connectionId": b.connection_id, "status": 429, "count": BOTO_ATTEMPTS}],
        )
        try:
            window = Devserver(devserver.http).window()
            reply = await a.send(conversation, "throttled once")
            await b.wait_for_messages(conversation, {reply["seq"]}, timeout=20)
            faults = await asyncio.to_thread(_faults, devserver)
        finally:
            clear_faults(devserver)
        assert faults["injected"]["total"] == BOTO_ATTEMPTS
        assert faults["injected"]["byStatus"] == {"429": BOTO_ATTEMPTS}
        assert faults["injected"]["byConnection"] == {b.connection_id: BOTO_ATTEMPTS}
        assert faults["managementApi"]["failures"][0]["count"] == 0
        # The send put the push on the delivery queue; the queue's consumer delivered it.
        effects = await asyncio.to_thread(window.all_effects)
        queued = [
            e
            for e in effects
            if e["function"] == "MessageFunction" and e["operation"].startswith("SendMessage")
        ]
        assert [e["target"] for e in queued] == [queue_url(devserver, "DeliveryQueue")], effects
        posts = [(e["function"], e["target"]) for e in effects if e["target"] == b.connection_id]
        assert posts == [("DeliveryRetryFunction", b.connection_id)], effects
        assert invocations(devserver, "DeliveryRetryFunction") > retries_before
        assert b.messages[conversation][reply["seq"]]["body"] == "throttled once"


async def test_push_failing_every_retry_lands_in_the_dlq_and_sync_recovers_it(
    devserver: RunningDevserver,
) -> None:
    alice, bob = _users("alice", "bob")
    async with Session(devserver) as s:
        a = await s.connect(alice)
        b = await s.connect(bob, with_id=True)
        conversation = await a.create_conversation([bob])
        await _settled(devserver, a, b)
        first = await a.send(conversation, "before the storm")
        await b.wait_for_messages(conversation, {first["seq"]})
        set_faults(
            devserver, failures=[{"connectionId": b.connection_id, "status": 429, "count": 100}]
        )

        def ours(body: str) -> bool:
            job = json.loads(body)
            frame = json.loads(job["frame"])
            return bool(
                job["connectionId"] == b.connection_id
                and frame["type"] == "message:new"
                and frame["data"]["conversationId"] == conversation
                and frame["data"]["seq"] == lost["seq"]
            )

        try:
            lost = await a.send(conversation, "into the storm")
            # 1 + 3 attempts (2, 4, 8 s backoff), then SQS moves it to the DLQ.
            await eventually(
                lambda: any(ours(body) for body in peek_queue(devserver, "DeliveryDLQ")),
                timeout=40,
                interval=1.0,
            )
            faults = (await asyncio.to_thread(_faults, devserver))["injected"]
        finally:
            clear_faults(devserver)
        # The send's attempt and 3 from the queue consumer, each with boto3's retries.
        assert faults["byConnection"][b.connection_id] >= 4 * BOTO_ATTEMPTS
        assert lost["seq"] not in b.messages[conversation]

        # Nothing is lost: the client's sync from its cursor brings it.
        await b.sync_all({conversation: b.contiguous_seq(conversation)})
        assert b.messages[conversation][lost["seq"]]["body"] == "into the storm"
        # Leave the shared DLQ clean.
        await asyncio.to_thread(peek_queue, devserver, "DeliveryDLQ", ours)


# ---------------------------------------------------------------------- e-mail
def _notification_count(ds: RunningDevserver, user_id: str) -> int:
    count: int = ds.aws("dynamodb").query(
        TableName=ds.resources["NotificationsTable"],
        KeyConditionExpression="userId = :u",
        ExpressionAttributeValues={":u": {"S": user_id}},
        Select="COUNT",
        ConsistentRead=True,
    )["Count"]
    return count


async def test_offline_email_is_sent_once_per_digest_window_and_only_when_enabled(
    devserver: RunningDevserver,
) -> None:
    alice, bob, carol = _users("alice", "bob", "carol")
    bob_mail, carol_mail = f"{bob}@example.com", f"{carol}@example.com"
    async with Session(devserver) as s:
        a = await s.connect(alice)
        b = await s.connect(bob)
        c = await s.connect(carol)
        prefs = await b.call(
            "preferences:set", {"emailOnOffline": True, "email": bob_mail, "digestMinutes": 1}
        )
        assert prefs == {
            "emailOnOffline": True,
            "email": bob_mail,
            "emailVerified": False,
            "digestMinutes": 1,
            "acceptRequests": True,  # the default: strangers may start a request
        }
        await c.call("preferences:set", {"emailOnOffline": False, "email": carol_mail})
        # Double opt-in: bob enters the code the verification mail brought
        (code_mail,) = await eventually(lambda: emails_to(devserver, bob_mail), STREAM_TIMEOUT)
        code = code_mail["subject"].rsplit(" ", 1)[-1]
        verified = await b.call("preferences:verify-email", {"code": code})
        assert verified["emailVerified"] is True
        conversation = await a.create_conversation([bob, carol], title="weekend")
        await b.close()
        await c.close()
        await _offline(devserver, bob)
        await _offline(devserver, carol)

        for i in range(3):
            await a.send(conversation, f"are you coming? ({i})")

        # Three in-app notifications each, and for bob exactly one e-mail (the others
        # wait for the digest at the end of his 1-minute window: no e-mail storm).
        await eventually(lambda: _notification_count(devserver, bob) == 3, STREAM_TIMEOUT)
        await eventually(lambda: _notification_count(devserver, carol) == 3, STREAM_TIMEOUT)
        await eventually(lambda: emails_to(devserver, bob_mail)[1:], STREAM_TIMEOUT)
        # Every job handled (a job leaves the queue once its invocation has returned), so
        # the e-mails are all sent; the digest waits, delayed, on the queue.
        depth = await eventually(lambda: _drained(devserver, "NotificationQueue"), STREAM_TIMEOUT)
        assert depth["ApproximateNumberOfMessagesDelayed"] >= 1, depth
        mails = emails_to(devserver, bob_mail)[1:]  # after the verification mail
        assert len(mails) == 1, mails
        assert alice in mails[0]["subject"]
        # The message whose job claimed the window first: the notification queue's pollers
        # work in parallel, as Lambda's do (a standard queue keeps no order), so any one
        mailed = [i for i in range(3) if f"are you coming? ({i})" in mails[0]["body"]]
        assert len(mailed) == 1, mails[0]["body"]
        assert mails[0]["from"] == "no-reply@switchboard.local"
        # carol (e-mail off, address never verified) got the code and nothing else
        assert [m["subject"][:21] for m in emails_to(devserver, carol_mail)] == [
            "Your Switchboard code"
        ]

        b = await s.connect(bob)
        listed = await b.call("notification:list", {"limit": 10})
        mine = [n for n in listed["notifications"] if n["data"]["conversationId"] == conversation]
        assert sorted(n["data"]["seq"] for n in mine) == [1, 2, 3]
        assert {n["kind"] for n in mine} == {"message"}


# ---------------------------------------------------------------------- presence
async def test_presence_online_on_first_connect_offline_after_last_disconnect(
    devserver: RunningDevserver,
) -> None:
    bob, carol = _users("bob", "carol")
    async with Session(devserver) as s:
        c = await s.connect(carol)
        # Presence flows only between contacts: bob accepts carol's conversation on a
        # device of his whose connect was handled before (announced to nobody), and its
        # close is announced to carol, a contact now: nothing of it is left to come.
        first = await s.connect(bob)
        await _settled(devserver, first)
        conversation = await c.create_conversation([bob])
        await first.call("conversation:accept", {"conversationId": conversation})
        await first.close()
        await c.wait_for(
            "presence", lambda d: d["userId"] == bob and not d["online"], STREAM_TIMEOUT
        )
        assert c.find("presence", lambda d: d["userId"] == bob and d["online"]) == []
        c.pushes.clear()

        b1 = await s.connect(bob)
        online = await c.wait_for(
            "presence", lambda d: d["userId"] == bob and d["online"], STREAM_TIMEOUT
        )
        assert online == {"userId": bob, "online": True, "lastSeen": None}
        b2 = await s.connect(bob)
        await _settled(devserver, b2)
        await b1.close()
        await eventually(lambda: len(presence_set(devserver, bob)) == 1, STREAM_TIMEOUT)

        closed_at = int(time.time() * 1000)
        await b2.close()
        offline = await c.wait_for(
            "presence", lambda d: d["userId"] == bob and not d["online"], STREAM_TIMEOUT
        )
        # bob stayed online on his second device when the first closed: the stream
        # consumer handles the closes in order, so an offline announcement for the first
        # would have come before this one.
        assert len(c.find("presence", lambda d: d["userId"] == bob and not d["online"])) == 1
        assert len(c.find("presence", lambda d: d["userId"] == bob and d["online"])) == 1
        assert isinstance(offline["lastSeen"], int)
        # Stamped by the close ($disconnect runs after it), not by some earlier activity
        assert closed_at <= offline["lastSeen"] <= int(time.time() * 1000)

        query = await c.call("presence:query", {"userIds": [bob]})
        assert query["presence"] == [
            {"userId": bob, "online": False, "lastSeen": offline["lastSeen"]}
        ]


async def test_typing_and_receipts_reach_the_other_member(devserver: RunningDevserver) -> None:
    bob, carol = _users("bob", "carol")
    await befriend(devserver, bob, carol)  # typing and receipts flow only between contacts
    async with Session(devserver) as s:
        b = await s.connect(bob)
        c = await s.connect(carol)
        conversation = await b.create_conversation([carol])

        assert await b.call("typing:start", {"conversationId": conversation}) == {"sent": True}
        typing = await c.wait_for("typing")
        assert typing == {"conversationId": conversation, "userId": bob, "state": "start"}
        assert await b.error_code("typing:start", {"conversationId": conversation}) == (
            "rate_limited"
        )

        sent = await b.send(conversation, "hello carol")
        await c.wait_for_messages(conversation, {sent["seq"]})
        await c.call("message:ack", {"conversationId": conversation, "seq": sent["seq"]})
        delivered = await b.wait_for("message:delivered")
        assert delivered == {"conversationId": conversation, "seq": sent["seq"], "userId": carol}
        await c.call("message:read", {"conversationId": conversation, "seq": sent["seq"]})
        read = await b.wait_for("message:read")
        assert read == {"conversationId": conversation, "seq": sent["seq"], "userId": carol}
        # The sender's own receipts are not pushed back to the reader (they would have
        # come before the replies to her ack and read).
        await c.sentinel()
        assert c.find("message:delivered") == []
        assert c.find("message:read") == []
