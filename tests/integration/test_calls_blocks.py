"""Calls across a block: a call is a mesh (each pair exchanges SDP and ICE candidates, so
IP addresses, through the signaling function), so two people with a block between them,
either way, are never put in one call, whoever rings or invites them; the inviter gets
the one refusal a stranger or a block of the inviter gets. "Nothing arrived" is proven
by a sentinel ring on the same connection (pushes are in order per connection)."""

from __future__ import annotations

import json
import uuid
from types import ModuleType
from typing import Any

import pytest

from tests.integration.conftest import FakeContext, Stack
from tests.integration.test_calls import ANSWER, OFFER
from tests.integration.test_messaging import Client, befriend
from tests.support.effects import InProcess
from tests.support.events import frame, ws_event

# What carries SDP or ICE between two participants, or rings one of them.
SIGNALING = {"call:offer", "call:answered", "call:ice-candidate", "call:incoming"}
CANDIDATE = {"candidate": "candidate:1 1 udp 2122260223 192.0.2.7 5000 typ host", "sdpMid": "0"}


@pytest.fixture(scope="module")
def apps(stack: Stack) -> dict[str, ModuleType]:
    return {
        "signaling": stack.handler("SignalingFunction"),
        "connect": stack.handler("ConnectionFunction"),
        "message": stack.handler("MessageFunction"),
    }


@pytest.fixture
def people(stack: Stack, apps: dict[str, ModuleType]) -> Any:
    """Connected users, all contacts of each other (so only a block stands between two
    of them) - except mallory, nobody's contact."""

    def make(*names: str) -> list[Client]:
        tag = uuid.uuid4().hex[:6]
        made = [Client(stack, apps["signaling"], apps["connect"], f"{n}-{tag}") for n in names]
        befriend(apps["message"], *(c for c in made if not c.user_id.startswith("mallory-")))
        return made

    return make


def block(apps: dict[str, ModuleType], blocker: Client, blocked: Client) -> None:
    event = ws_event(
        "user:block",
        body=frame("user:block", {"userId": blocked.user_id}),
        connection_id=blocker.connection_id,
        user_id=blocker.user_id,
    )
    reply = json.loads(apps["message"].lambda_handler(event, FakeContext())["body"])
    assert reply["ok"], reply


def ring_sentinel(ringer: Client, to: Client) -> None:
    """A 1:1 call from ``ringer`` to ``to``: its ring is the last frame ``to`` gets."""
    ringer.ok("call:initiate", {"calleeId": to.user_id, "media": "audio", "offer": OFFER})
    assert to.frames()[-1]["type"] == "call:incoming"
    assert to.frames()[-1]["data"]["callerId"] == ringer.user_id


def ice_sentinel(sender: Client, to: Client, call_id: str) -> None:
    """A candidate from ``sender`` to ``to`` in the call they are both in: the last frame
    ``to`` gets."""
    ice = {"callId": call_id, "candidate": CANDIDATE, "toUserId": to.user_id}
    assert sender.ok("call:ice-candidate", ice)["sent"] is True
    assert to.frames()[-1]["type"] == "call:ice-candidate"
    assert to.frames()[-1]["data"]["fromUserId"] == sender.user_id


def signaling(client: Client, call_id: str, from_user: str | None = None) -> list[str]:
    """The SDP, ICE and rings ``client`` got in the call (from ``from_user`` only)."""
    return [
        f["type"]
        for f in client.frames()
        if f["type"] in SIGNALING
        and f["data"].get("callId") == call_id
        and from_user in (None, f["data"].get("fromUserId"))
    ]


def try_to_connect(a: Client, b: Client, call_id: str) -> None:
    """Whatever the server lets them: ``b`` joins, both send candidates, ``a`` offers and
    ``b`` answers (each may be refused)."""
    b.call("call:join", {"callId": call_id})
    ice = {"callId": call_id, "candidate": CANDIDATE}
    a.call("call:ice-candidate", {**ice, "toUserId": b.user_id})
    b.call("call:ice-candidate", {**ice, "toUserId": a.user_id})
    a.call("call:offer", {"callId": call_id, "toUserId": b.user_id, "offer": OFFER})
    b.call("call:answer", {"callId": call_id, "toUserId": a.user_id, "answer": ANSWER})


@pytest.mark.parametrize("blocker", ["victim", "stalker"])
@pytest.mark.parametrize("first_in", ["victim", "stalker"])
def test_a_third_member_cannot_bring_a_blocked_pair_into_one_call(
    people: Any, apps: dict[str, ModuleType], blocker: str, first_in: str
) -> None:
    victim, stalker, bob, carol, mallory = people("victim", "stalker", "bob", "carol", "mallory")
    if blocker == "victim":
        block(apps, victim, stalker)
    else:
        block(apps, stalker, victim)
    first, second = (victim, stalker) if first_in == "victim" else (stalker, victim)
    # Given bob's group call, joined by one of the pair
    call_id = bob.ok("call:initiate", {"calleeIds": [first.user_id], "media": "audio"})["callId"]
    first.ok("call:join", {"callId": call_id})
    # When bob, who knows them both, invites the other one
    window = InProcess().window()
    reply = bob.call("call:invite", {"callId": call_id, "userIds": [second.user_id]})
    # Then it is refused as an invite of a stranger is (no word of who blocked whom), and
    # nothing is written, rung or queued
    stranger = bob.call("call:invite", {"callId": call_id, "userIds": [mallory.user_id]})
    assert not reply["ok"] and reply["error"] == stranger["error"], (reply, stranger)
    window.assert_nothing_happened("an invite across a block")
    # And whatever either of them then tries, no SDP or ICE, nor a ring, crosses
    try_to_connect(first, second, call_id)
    try_to_connect(second, first, call_id)
    ring_sentinel(carol, second)
    ice_sentinel(bob, first, call_id)
    assert signaling(second, call_id) == []
    assert signaling(first, call_id, from_user=second.user_id) == []
    # While the call goes on for the others
    assert bob.ok("call:get-active", {})["call"]["callId"] == call_id


@pytest.mark.parametrize("callees", ["both", "the_blocked_one"])
def test_a_call_placed_never_rings_a_blocked_pair_together(
    people: Any, apps: dict[str, ModuleType], callees: str
) -> None:
    victim, stalker, bob, carol, mallory = people("victim", "stalker", "bob", "carol", "mallory")
    block(apps, victim, stalker)
    # When bob rings both of them at once, or the victim rings the one she blocked
    caller, ids = (
        (bob, [victim.user_id, stalker.user_id])
        if callees == "both"
        else (victim, [stalker.user_id])
    )
    window = InProcess().window()
    reply = caller.call("call:initiate", {"calleeIds": ids, "media": "audio"})
    # Then it is refused as a call to a stranger is, and nothing rings, is stored or queued
    stranger = caller.call("call:initiate", {"calleeIds": [mallory.user_id], "media": "audio"})
    assert not reply["ok"] and reply["error"] == stranger["error"], (reply, stranger)
    window.assert_nothing_happened("a call across a block")
    ring_sentinel(carol, stalker)
    assert [f["type"] for f in stalker.frames() if f["type"].startswith("call:")] == [
        "call:incoming"
    ]


@pytest.mark.parametrize("blocker", ["victim", "stalker"])
def test_a_block_made_during_a_call_stops_the_relay_between_the_pair(
    stack: Stack, people: Any, apps: dict[str, ModuleType], blocker: str
) -> None:
    victim, stalker, bob = people("victim", "stalker", "bob")
    # Given bob's group call: the stalker joined, the victim still ringing, and candidates
    # the stalker sent her kept for when she joins
    call_id = bob.ok(
        "call:initiate", {"calleeIds": [victim.user_id, stalker.user_id], "media": "audio"}
    )["callId"]
    stalker.ok("call:join", {"callId": call_id})
    ice = {"callId": call_id, "candidate": CANDIDATE}
    kept = stalker.ok("call:ice-candidate", {**ice, "toUserId": victim.user_id})
    assert kept["sent"] is False
    # When one of them blocks the other, and she joins for bob
    if blocker == "victim":
        block(apps, victim, stalker)
    else:
        block(apps, stalker, victim)
    victim.ok("call:join", {"callId": call_id})
    # Then whatever they send each other is answered as if relayed, and never arrives
    relayed = [
        stalker.ok("call:ice-candidate", {**ice, "toUserId": victim.user_id}),
        victim.ok("call:ice-candidate", {**ice, "toUserId": stalker.user_id}),
        stalker.ok("call:offer", {"callId": call_id, "toUserId": victim.user_id, "offer": OFFER}),
        victim.ok("call:offer", {"callId": call_id, "toUserId": stalker.user_id, "offer": OFFER}),
        victim.ok(
            "call:answer", {"callId": call_id, "toUserId": stalker.user_id, "answer": ANSWER}
        ),
    ]
    assert [r["sent"] for r in relayed] == [True] * 5
    ice_sentinel(bob, victim, call_id)
    ice_sentinel(bob, stalker, call_id)
    assert signaling(victim, call_id, from_user=stalker.user_id) == []
    assert signaling(stalker, call_id, from_user=victim.user_id) == []
    # While each still talks with bob
    victim.ok("call:offer", {"callId": call_id, "toUserId": bob.user_id, "offer": OFFER})
    assert signaling(bob, call_id, from_user=victim.user_id)[-1] == "call:offer"


def test_an_invite_sent_while_joining_is_checked_against_everyone_in_the_call(
    people: Any, apps: dict[str, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An attacker's finding (review of the block check): an invite read while its sender
    was still ringing was checked against the sender only (a ringing participant is not
    told who is in the call), and if the sender's own ``call:join`` landed before the
    invite's write, the invite went through unchecked against the call."""
    victim, stalker, bob, alice, carol = people("victim", "stalker", "bob", "alice", "carol")
    block(apps, victim, stalker)
    # Given bob's group call: the victim joined, alice (who knows the stalker) ringing
    call_id = bob.ok(
        "call:initiate", {"calleeIds": [victim.user_id, alice.user_id], "media": "audio"}
    )["callId"]
    victim.ok("call:join", {"callId": call_id})
    # When alice sends call:invite and call:join together, and her join lands between the
    # invite's read of the call and its write (the invite counts its ring in between)
    service = apps["signaling"].service
    count_ring = service._count_ring

    def join_meanwhile(*args: Any) -> None:
        monkeypatch.setattr(service, "_count_ring", count_ring)
        alice.ok("call:join", {"callId": call_id})
        count_ring(*args)

    monkeypatch.setattr(service, "_count_ring", join_meanwhile)
    reply = alice.call("call:invite", {"callId": call_id, "userIds": [stalker.user_id]})
    # Then the invite is refused (retry), and the stalker is not rung into her call
    assert not reply["ok"] and reply["error"]["code"] == "conflict", reply
    ring_sentinel(carol, stalker)
    assert signaling(stalker, call_id) == []
    # And a retry, now that alice is in, is checked against everyone: refused as a stranger
    again = alice.call("call:invite", {"callId": call_id, "userIds": [stalker.user_id]})
    assert not again["ok"] and again["error"]["code"] == "forbidden", again


def test_a_block_made_while_a_call_rings_withdraws_the_callers_offer(
    people: Any, apps: dict[str, ModuleType]
) -> None:
    """An attacker's finding (review of the block check): the 1:1 offer (the caller's SDP,
    which may carry her addresses) stayed on the call item after she blocked the callee
    while it rang, and ``call:get-active`` gave it to any device of his that asked - one
    that was offline when the call rang, too."""
    victim, stalker = people("victim", "stalker")
    # Given the victim's 1:1 call to the stalker, still ringing, its offer on the item
    call_id = victim.ok(
        "call:initiate", {"calleeId": stalker.user_id, "media": "audio", "offer": OFFER}
    )["callId"]
    assert stalker.ok("call:get-active", {})["call"].get("offer") is not None
    # When she blocks him before he answers
    block(apps, victim, stalker)
    # Then none of his devices is given her offer any more, while the call still rings
    active = stalker.ok("call:get-active", {})["call"]
    assert (active["callId"], active["state"], active.get("offer")) == (call_id, "ringing", None)
