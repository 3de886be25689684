"""Consent and membership through the devserver with the Python client: a stranger's
request arrives, is accepted, presence then flows; a block refuses the stranger's send
exactly as a refused request does; a leave reaches the others as a system entry and the
leaver gets nothing after it; the receipts held back by a request reach the sender
however the recipient's ack and accept fall. Every wait is bounded."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from typing import Any

import pytest

from switchboard_client import Backoff, Client, ServerError, SwitchboardClientError, wire

from . import clients
from .conftest import RunningDevserver

pytestmark = pytest.mark.e2e

TIMEOUT = 30.0


def _client(ds: RunningDevserver, user_id: str) -> Client:
    return Client(ds.ws, ds.token(user_id), backoff=Backoff(base=0.05, cap=0.5))


def _users(*names: str) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    return [f"{name}-{tag}" for name in names]


async def _refusal(call: Awaitable[Any]) -> tuple[str, str]:
    try:
        await call
    except ServerError as exc:
        return exc.code, exc.message
    raise AssertionError("not refused")


async def test_request_accept_presence_block_and_leave(devserver: RunningDevserver) -> None:
    alice_id, bob_id, carol_id, mallory_id = _users("alice", "bob", "carol", "mallory")
    alice, bob = _client(devserver, alice_id), _client(devserver, bob_id)
    carol, mallory = _client(devserver, carol_id), _client(devserver, mallory_id)
    bob_events = bob.events("conversation:request", "message:new")
    alice_events = alice.events("conversation:accepted", "presence", "message:new")
    carol_events = carol.events("message:new")
    try:
        for c in (alice, bob, carol, mallory):
            await c.connect(timeout=TIMEOUT)
        # A stranger's request arrives (typed), with its message
        created = await alice.create_conversation([bob_id])
        await alice.send_message(created.conversationId, "is the bike still available?")
        request = await bob_events.get(timeout=TIMEOUT)
        assert request.type == "conversation:request"
        parsed = request.parsed()
        assert isinstance(parsed, wire.ConversationRequest) and parsed.fromUserId == alice_id
        page = await bob.membership.requests()
        assert [c.request for c in page.conversations] == [True]
        with pytest.raises(SwitchboardClientError):
            await alice.query_presence([bob_id])  # not a contact yet
        # Accepted: alice is told, and presence flows
        assert (await bob.membership.accept(created.conversationId)).changed
        accepted = await alice_events.get(timeout=TIMEOUT)
        assert accepted.type == "conversation:accepted" and accepted.data["userId"] == bob_id
        [presence] = await alice.query_presence([bob_id])
        assert presence.online
        # A block refuses mallory's conversation exactly as a refused request does
        await bob.membership.block(mallory_id)
        await carol.membership.set_accept_requests(False)
        assert await bob.membership.blocks() == [mallory_id]
        blocked = await _refusal(mallory.create_conversation([bob_id]))
        refused = await _refusal(mallory.create_conversation([carol_id]))
        assert blocked == refused and blocked[0] == "forbidden"
        await carol.membership.set_accept_requests(True)
        # A group: bob leaves, the others get "bob left" in the seq stream
        group = await alice.create_conversation([bob_id, carol_id], title="bikes")
        await carol.membership.accept(group.conversationId)
        await bob.membership.accept(group.conversationId)
        left = await bob.membership.leave(group.conversationId)
        assert bob_id not in left.members
        for events in (carol_events,):
            while True:
                event = await events.get(timeout=TIMEOUT)
                if event.message and event.message.conversation_id == group.conversationId:
                    break
            system = event.data["system"]
            assert system["kind"] == "left" and system["userIds"] == [bob_id]
        # bob gets nothing more from the group: the next frame he sees is alice's 1:1
        await alice.send_message(group.conversationId, "after bob left")
        await alice.send_message(created.conversationId, "sentinel")
        while True:
            event = await bob_events.get(timeout=TIMEOUT)
            if event.type == "message:new" and event.data["body"] in ("after bob left", "sentinel"):
                break
        assert event.data["body"] == "sentinel"
        history = await bob.history(group.conversationId)
        assert history.lastSeq == left.seq
    finally:
        for stream in (bob_events, alice_events, carol_events):
            stream.close()
        for c in (alice, bob, carol, mallory):
            await c.close()


@pytest.mark.parametrize("order", ["ack, then accept", "accept, then ack", "both at once"])
async def test_held_back_receipts_reach_the_sender_after_the_accept(
    devserver: RunningDevserver, order: str
) -> None:
    """The demo's sequence: a stranger writes 35 messages, the recipient connects, acks
    the backlog it is given and accepts (its device acks on its own timer, so the ack
    and the accept can be in flight together: "both at once")."""
    alice_id, bob_id = _users("alice", "bob")
    async with clients.Session(devserver) as s:
        alice = await s.connect(alice_id)
        conversation = await alice.create_conversation([bob_id])
        for n in range(1, 36):
            await alice.send(conversation, f"message {n}")
        bob = await s.connect(bob_id)
        await bob.wait_for_messages(conversation, range(1, 36))  # the backlog
        ack = {"conversationId": conversation, "seq": bob.contiguous_seq(conversation)}
        accept = {"conversationId": conversation}
        if order == "ack, then accept":
            assert (await bob.call("message:ack", ack))["moved"] is True
            await alice.sentinel()  # held back: nothing reached alice yet
            assert not alice.find("message:delivered")
            assert (await bob.call("conversation:accept", accept))["changed"] is True
        elif order == "accept, then ack":
            assert (await bob.call("conversation:accept", accept))["changed"] is True
            assert (await bob.call("message:ack", ack))["moved"] is True
        else:
            acked, accepted = await asyncio.gather(
                bob.call("message:ack", ack), bob.call("conversation:accept", accept)
            )
            assert acked["moved"] is True and accepted["changed"] is True
        # Both replies are in, and each push was posted before its reply: after alice's
        # own round trip she holds all there will be. Delivered up to 35, one way or other.
        await alice.sentinel()
        covered = [f["data"]["ackedSeq"] for f in alice.find("conversation:accepted")] + [
            f["data"]["seq"] for f in alice.find("message:delivered")
        ]
        assert max(covered, default=0) == 35, alice.pushes[-5:]
