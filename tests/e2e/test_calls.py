"""Calls end to end: real WebSocket clients through the devserver (the signaling function,
the ring-timeout queue and consumer, the Connections stream, the notification path, all
from template.yaml on moto). Every rule of docs/protocol.md "Calls", races included.
Every wait is bounded; traffic goes to 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from switchboard.turn import turn_credentials

from tests.e2e.clients import Client, Session, befriend
from tests.e2e.conftest import RunningDevserver, _start

pytestmark = pytest.mark.e2e

STREAM_TIMEOUT = 45.0  # stream/SQS consumers on a loaded 2-core machine
RING_TIMEOUT = 3  # seconds, in the short-ring devserver
TURN_URL = "turn:127.0.0.1:3478?transport=udp"
OFFER = {"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"}
ANSWER = {"type": "answer", "sdp": "v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"}
CANDIDATE = {"candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host", "sdpMid": "0"}


@pytest.fixture(scope="module")
def short_ring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDevserver]:
    """A devserver whose calls ring for 3 s and that hands out TURN credentials."""
    server = _start(
        Path(tmp_path_factory.mktemp("devserver-calls")),
        [
            "--workers",
            "1",
            "--param",
            f"RingTimeoutSeconds={RING_TIMEOUT}",
            "--param",
            f"TurnUrls={TURN_URL}",
        ],
    )
    try:
        yield server
    finally:
        server.stop()


def users(*names: str) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    return [f"{name}-{tag}" for name in names]


async def initiate(caller: Client, callee: str, **extra: Any) -> str:
    data = await caller.call(
        "call:initiate", {"calleeId": callee, "media": "video", "offer": OFFER, **extra}
    )
    call_id: str = data["callId"]
    return call_id


async def ringing(call_id: str, *devices: Client) -> None:
    for d in devices:
        await d.wait_for("call:incoming", lambda data: data["callId"] == call_id)


async def nothing_of(client: Client, event_type: str) -> None:
    """No push of that type came before a sentinel on the client's connection (the
    request that could have caused one has been answered: its posts came first)."""
    await client.sentinel()
    assert client.find(event_type) == [], f"{client.user_id} got {event_type}"


async def error_of(client: Client, action: str, data: dict[str, Any]) -> dict[str, Any]:
    reply = await client.request(action, data)
    assert reply["ok"] is False, reply
    error: dict[str, Any] = reply["error"]
    return error


# ---------------------------------------------------------------------- 1:1


async def test_call_rings_every_device_answered_on_one_ice_only_there_then_hangup(
    devserver: RunningDevserver,
) -> None:
    alice_id, bob_id, mallory_id = users("alice", "bob", "mallory")
    await befriend(devserver, alice_id, bob_id)  # calls ring only contacts
    async with Session(devserver) as s:
        alice = await s.connect(alice_id)
        bob_phone = await s.connect(bob_id)
        bob_laptop = await s.connect(bob_id)
        mallory = await s.connect(mallory_id)
        # Alice calls: every device of bob rings, with the offer
        call_id = await initiate(alice, bob_id)
        for d in (bob_phone, bob_laptop):
            incoming = await d.wait_for("call:incoming")
            assert incoming["callId"] == call_id and incoming["offer"] == OFFER
            assert incoming["callerId"] == alice_id and incoming["media"] == "video"
        # A candidate before the answer is kept for the device that answers
        early = await alice.call("call:ice-candidate", {"callId": call_id, "candidate": CANDIDATE})
        assert early["sent"] is False
        # A stranger can do nothing with the call
        for action, data in (
            ("call:answer", {"callId": call_id, "answer": ANSWER}),
            ("call:ice-candidate", {"callId": call_id, "candidate": CANDIDATE}),
            ("call:end", {"callId": call_id}),
            ("call:reject", {"callId": call_id}),
        ):
            assert (await error_of(mallory, action, data))["code"] == "forbidden"
        # The laptop answers
        answered = await bob_laptop.call("call:answer", {"callId": call_id, "answer": ANSWER})
        assert answered["state"] == "active"
        got = await alice.wait_for("call:answered")
        assert got == {"callId": call_id, "answer": ANSWER, "fromUserId": bob_id}
        assert (await bob_phone.wait_for("call:answered-elsewhere"))["callId"] == call_id
        kept = await bob_laptop.wait_for("call:ice-candidate")
        assert kept == {"callId": call_id, "candidate": CANDIDATE, "fromUserId": alice_id}
        # ICE both ways, only between the in-call connections
        later = {"candidate": "candidate:2 1 udp 1 127.0.0.1 50001 typ host", "sdpMLineIndex": 0}
        assert (await alice.call("call:ice-candidate", {"callId": call_id, "candidate": later}))[
            "sent"
        ]
        await bob_laptop.wait_for("call:ice-candidate", lambda d: d["candidate"] == later)
        await bob_laptop.call("call:ice-candidate", {"callId": call_id, "candidate": later})
        await alice.wait_for("call:ice-candidate", lambda d: d["fromUserId"] == bob_id)
        phone_ice = await error_of(
            bob_phone, "call:ice-candidate", {"callId": call_id, "candidate": later}
        )
        assert phone_ice["code"] == "forbidden"
        await nothing_of(bob_phone, "call:ice-candidate")
        # Alice sees the active call; bob's phone too (it may hang up from there)
        active = (await bob_phone.call("call:get-active"))["call"]
        assert active["state"] == "active" and "offer" not in active
        # Bob hangs up: alice is told; answering after the end is a conflict
        assert (await bob_laptop.call("call:end", {"callId": call_id}))["state"] == "ended"
        assert await alice.wait_for("call:ended") == {"callId": call_id, "reason": "hangup"}
        late = await error_of(bob_phone, "call:answer", {"callId": call_id, "answer": ANSWER})
        assert late["code"] == "conflict"
        assert (await alice.call("call:get-active")) == {"call": None}


async def test_two_devices_answering_at_once_exactly_one_wins(
    devserver: RunningDevserver,
) -> None:
    alice_id, bob_id = users("alice", "bob")
    await befriend(devserver, alice_id, bob_id)
    async with Session(devserver) as s:
        alice = await s.connect(alice_id)
        devices = [await s.connect(bob_id) for _ in range(3)]
        call_id = await initiate(alice, bob_id)
        await ringing(call_id, *devices)
        # All three answer at the same moment (the devserver runs 2 workers per function)
        replies = await asyncio.gather(
            *(d.request("call:answer", {"callId": call_id, "answer": ANSWER}) for d in devices)
        )
        winners = [r for r in replies if r["ok"]]
        losers = [r["error"] for r in replies if not r["ok"]]
        assert len(winners) == 1, replies
        assert [(e["code"], e["details"]["reason"]) for e in losers] == [
            ("conflict", "answered_elsewhere")
        ] * 2
        await alice.sentinel()  # every answer has been replied to: their posts came first
        assert len(alice.find("call:answered")) == 1
        await alice.call("call:end", {"callId": call_id})


async def test_busy_callee_and_reject(devserver: RunningDevserver) -> None:
    alice_id, bob_id, carol_id = users("alice", "bob", "carol")
    await befriend(devserver, alice_id, bob_id, carol_id)
    async with Session(devserver) as s:
        alice = await s.connect(alice_id)
        bob = await s.connect(bob_id)
        carol = await s.connect(carol_id)
        call_id = await initiate(alice, bob_id)
        # Bob is ringing, so busy for carol
        busy = await error_of(
            carol, "call:initiate", {"calleeId": bob_id, "media": "audio", "offer": OFFER}
        )
        assert busy["code"] == "conflict"
        assert busy["details"] == {"reason": "busy", "userIds": [bob_id]}
        await bob.sentinel()
        assert len(bob.find("call:incoming")) == 1
        # Bob declines: alice is told; both are free again
        await bob.wait_for("call:incoming")
        assert (await bob.call("call:reject", {"callId": call_id, "reason": "later"}))[
            "state"
        ] == "rejected"
        rejected = await alice.wait_for("call:rejected")
        assert rejected == {"callId": call_id, "userId": bob_id, "reason": "later"}
        again = await initiate(carol, bob_id, media="audio")
        await bob.wait_for("call:incoming", lambda d: d["callId"] == again)
        await carol.call("call:end", {"callId": again})
        assert (await bob.wait_for("call:ended")) == {"callId": again, "reason": "cancelled"}


async def test_disconnect_of_the_in_call_connection_ends_the_call(
    devserver: RunningDevserver,
) -> None:
    alice_id, bob_id = users("alice", "bob")
    await befriend(devserver, alice_id, bob_id)
    async with Session(devserver) as s:
        alice = await s.connect(alice_id)
        bob = await s.connect(bob_id)
        call_id = await initiate(alice, bob_id)
        await ringing(call_id, bob)
        await bob.call("call:answer", {"callId": call_id, "answer": ANSWER})
        await alice.wait_for("call:answered")
        # Bob's network drops: $disconnect, the Connections stream, the call ends
        await bob.close()
        ended = await alice.wait_for("call:ended", timeout=STREAM_TIMEOUT)
        assert ended == {"callId": call_id, "reason": "disconnected"}
        assert (await alice.call("call:get-active")) == {"call": None}


# ---------------------------------------------------------------------- group calls


async def test_group_call_join_offer_leave_and_a_fifth_is_refused(
    devserver: RunningDevserver,
) -> None:
    names = users("alice", "bob", "carol", "dave", "erin")
    alice_id, bob_id, carol_id, dave_id, erin_id = names
    await befriend(devserver, *names)
    async with Session(devserver) as s:
        alice, bob, carol, dave, erin = [await s.connect(n) for n in names]
        too_many = await error_of(
            alice,
            "call:initiate",
            {"calleeIds": [bob_id, carol_id, dave_id, erin_id], "media": "audio"},
        )
        assert too_many["code"] == "conflict"
        assert too_many["details"] == {"reason": "call_full", "maxParticipants": 4}
        started = await alice.call(
            "call:initiate", {"calleeIds": [bob_id, carol_id], "media": "audio"}
        )
        call_id = started["callId"]
        for d in (bob, carol):
            incoming = await d.wait_for("call:incoming")
            assert incoming["group"] is True and incoming["offer"] is None
        # Bob joins and offers to alice (the joiner offers to everyone already in)
        joined = await bob.call("call:join", {"callId": call_id})
        assert {p["userId"]: p["state"] for p in joined["participants"]} == {
            alice_id: "joined",
            bob_id: "joined",
            carol_id: "invited",
        }
        assert (await alice.wait_for("call:participant-joined"))["userId"] == bob_id
        await bob.call("call:offer", {"callId": call_id, "toUserId": alice_id, "offer": OFFER})
        offer = await alice.wait_for("call:offer")
        assert offer == {"callId": call_id, "offer": OFFER, "fromUserId": bob_id}
        await alice.call("call:answer", {"callId": call_id, "toUserId": bob_id, "answer": ANSWER})
        assert (await bob.wait_for("call:answered"))["fromUserId"] == alice_id
        await alice.call(
            "call:ice-candidate", {"callId": call_id, "toUserId": bob_id, "candidate": CANDIDATE}
        )
        await bob.wait_for("call:ice-candidate", lambda d: d["fromUserId"] == alice_id)
        # Dave is invited in (4 people); erin would be the fifth
        await bob.call("call:invite", {"callId": call_id, "userIds": [dave_id]})
        await dave.wait_for("call:incoming", lambda d: d["callId"] == call_id)
        fifth = await error_of(bob, "call:invite", {"callId": call_id, "userIds": [erin_id]})
        assert fifth["details"]["reason"] == "call_full"
        # Carol joins: both others hear of it; bob leaves: alice and carol hear of it
        await carol.call("call:join", {"callId": call_id})
        await bob.wait_for("call:participant-joined", lambda d: d["userId"] == carol_id)
        await alice.wait_for("call:participant-joined", lambda d: d["userId"] == carol_id)
        await bob.call("call:leave", {"callId": call_id})
        for d in (alice, carol):
            left = await d.wait_for("call:participant-left")
            assert left == {"callId": call_id, "userId": bob_id, "reason": "left"}
        # Dave declines, carol leaves: the call is over for alice
        await dave.call("call:reject", {"callId": call_id})
        await carol.call("call:leave", {"callId": call_id})
        assert (await alice.wait_for("call:ended"))["callId"] == call_id
        await nothing_of(erin, "call:incoming")


# ---------------------------------------------------------------------- short ring, TURN


async def test_ring_timeout_misses_the_call_tells_both_and_notifies_the_callee(
    short_ring: RunningDevserver,
) -> None:
    alice_id, bob_id = users("alice", "bob")
    await befriend(short_ring, alice_id, bob_id)
    async with Session(short_ring) as s:
        alice = await s.connect(alice_id)
        bob = await s.connect(bob_id)
        call_id = await initiate(alice, bob_id)
        await ringing(call_id, bob)
        # Nobody answers: after the ring timeout both sides are told
        ended = await alice.wait_for("call:ended", timeout=STREAM_TIMEOUT)
        assert ended == {"callId": call_id, "reason": "missed"}
        assert (await bob.wait_for("call:ended")) == {"callId": call_id, "reason": "missed"}
        # And bob gets a missed-call notification, through messaging's notification path
        note = await bob.wait_for(
            "notification:new", lambda d: d["kind"] == "missed_call", timeout=STREAM_TIMEOUT
        )
        assert note["data"]["callId"] == call_id and note["data"]["callerId"] == alice_id
        listed = await bob.call("notification:list", {})
        assert [n["kind"] for n in listed["notifications"]] == ["missed_call"]
        late = await error_of(bob, "call:answer", {"callId": call_id, "answer": ANSWER})
        assert late["details"]["reason"] == "call_not_ringing"


async def test_ice_servers_give_turn_credentials_signed_with_the_turn_secret(
    short_ring: RunningDevserver,
) -> None:
    user, contact = users("carol", "dave")
    # (credentials are for calling a contact: someone carol shares an accepted conversation with)
    await befriend(short_ring, user, contact)
    async with Session(short_ring) as s:
        carol = await s.connect(user)
        servers = await carol.call("call:ice-servers", {"calleeId": contact})
    stun, turn = servers["iceServers"]
    assert stun == {"urls": ["stun:stun.l.google.com:19302"]}
    assert turn["urls"] == [TURN_URL]
    secret = short_ring.aws("secretsmanager").get_secret_value(
        SecretId=short_ring.resources["TurnSecret"]
    )["SecretString"]
    assert (turn["username"], turn["credential"]) == turn_credentials(
        secret, user, servers["expiresAt"]
    )
    assert servers["ttl"] == 120  # coturn checks it when allocating: enough for any call


async def test_the_signaling_bench_times_every_ring_and_every_relay(
    devserver: RunningDevserver,
) -> None:
    from bench import signaling

    result = await signaling._measure(devserver, rounds=2, candidates=3, progress=lambda _: None)
    ring, relay = result["ring_ms"], result["ice_relay_ms"]
    assert (ring["count"], relay["count"]) == (2, 6)
    assert 0 < ring["p50"] <= ring["p99"] and 0 < relay["p50"] <= relay["p99"]
