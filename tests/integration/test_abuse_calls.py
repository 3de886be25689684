"""Abuse of call items: what others send into a call (SDP, ICE) is
ASCII (RFC 8839) and bounded in bytes, so a call item cannot be grown toward DynamoDB's
400 KB limit, and ending or leaving a call never depends on what others sent."""

from __future__ import annotations

import time
import uuid
from types import ModuleType
from typing import Any

import pytest
from switchboard.wire.calls import MAX_SDP_CHARS

from tests.integration.conftest import Stack
from tests.integration.test_calls import ANSWER, OFFER, active_item, call_item, initiate
from tests.integration.test_messaging import Client, befriend
from tests.support.effects import InProcess


@pytest.fixture(scope="module")
def apps(stack: Stack) -> dict[str, ModuleType]:
    return {
        "signaling": stack.handler("SignalingFunction"),
        "connect": stack.handler("ConnectionFunction"),
    }


@pytest.fixture
def people(stack: Stack, apps: dict[str, ModuleType]) -> Any:
    """Connected users, contacts of each other (a call rings only contacts) - except
    mallory, nobody's contact."""
    message = stack.handler("MessageFunction")

    def make(*names: str) -> list[Client]:
        tag = uuid.uuid4().hex[:6]
        made = [Client(stack, apps["signaling"], apps["connect"], f"{n}-{tag}") for n in names]
        befriend(message, *(c for c in made if not c.user_id.startswith("mallory-")))
        return made

    return make


def candidate(text: str) -> dict[str, Any]:
    return {"candidate": text, "sdpMid": "0", "sdpMLineIndex": 0}


@pytest.mark.parametrize(
    "text",
    [
        "\U0001f600" * 1000,  # json.dumps escapes a non-BMP character to 12 bytes
        "candidate:1 1 udp 2122260223 192.168.1.2 5000 typ host é",
        "candidate:1 1 udp 1 10.0.0.1 9 typ host\x00",
    ],
)
def test_non_ascii_ice_and_sdp_are_bad_requests(people: Any, text: str) -> None:
    attacker, victim = people("attacker", "victim")
    call_id = initiate(attacker, victim)
    ice = {"callId": call_id, "candidate": candidate(text)}
    assert attacker.error("call:ice-candidate", ice) == "bad_request"
    offer = {"callId": call_id, "offer": {"type": "offer", "sdp": OFFER["sdp"] + text}}
    assert attacker.error("call:offer", offer) == "bad_request"


def test_the_victim_can_always_end_a_call_whatever_the_caller_sent(
    stack: Stack, people: Any
) -> None:
    attacker, victim = people("attacker", "victim")
    call_id = initiate(attacker, victim)
    # Given the caller sending as many of the largest candidates as it can before the
    # victim answers (each is kept for the victim until then)
    biggest = candidate('"\\' * 500)  # ASCII that JSON escapes to twice its length
    codes = [
        attacker.call("call:ice-candidate", {"callId": call_id, "candidate": biggest})
        for _ in range(80)
    ]
    refused = {r["error"]["code"] for r in codes if not r["ok"]}
    # Then what is kept is bounded in bytes (refused with rate_limited, never internal)
    assert refused == {"rate_limited"}
    size = sum(len(str(v)) for v in call_item(stack, call_id).values())
    assert size < 100_000
    # And the victim's call:end (declining the ringing call) and active# cleanup work
    assert victim.ok("call:end", {"callId": call_id})["state"] == "rejected"
    assert active_item(stack, victim.user_id) is None
    assert active_item(stack, attacker.user_id) is None
    # And the ended call keeps nothing the caller sent
    ended = call_item(stack, call_id)
    assert "pendingIce" not in ended and "offer" not in ended


def test_an_answered_call_carries_its_offer_no_longer(stack: Stack, people: Any) -> None:
    # Given a 1:1 call placed with an offer as large as the protocol allows
    caller, callee = people("caller", "callee")
    padding = "a=x-padding\r\n" * ((MAX_SDP_CHARS - len(OFFER["sdp"])) // 13)
    offer = {"type": "offer", "sdp": OFFER["sdp"] + padding}
    call_id = caller.ok(
        "call:initiate", {"calleeId": callee.user_id, "media": "video", "offer": offer}
    )["callId"]
    assert len(call_item(stack, call_id)["offer"]["S"]) > 20_000  # the ringing devices need it
    # When the callee answers
    callee.ok("call:answer", {"callId": call_id, "answer": ANSWER})
    # Then the item drops it: every later write (mute, screen, recording) is small
    assert "offer" not in call_item(stack, call_id)
    caller.ok("call:media", {"callId": call_id, "audio": False})
    assert sum(len(str(v)) for v in call_item(stack, call_id).values()) < 2_000


def test_a_contact_cannot_ring_someone_in_a_loop(
    people: Any, apps: dict[str, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    attacker, victim = people("attacker", "victim")
    service = apps["signaling"].service
    now = time.time()  # one rate window for the whole test
    monkeypatch.setattr(service, "_clock", lambda: now)
    limit = service.limits.calls_per_minute
    # Given a contact who rings and hangs up again and again (each a ring on every device
    # of the victim's and a ring-timeout message)
    for _ in range(limit):
        call_id = initiate(attacker, victim)
        attacker.ok("call:end", {"callId": call_id})
    rings = len(victim.frames("call:incoming"))
    # Then the next one is refused, with when to retry, and nothing happens to anyone
    window = InProcess().window()
    reply = attacker.call(
        "call:initiate", {"calleeId": victim.user_id, "media": "video", "offer": OFFER}
    )
    assert reply["error"]["code"] == "rate_limited", reply
    assert reply["error"]["details"]["retryAfterMs"] > 0
    window.assert_nothing_happened("a call past the rate limit")
    assert rings == limit and len(victim.frames("call:incoming")) == rings
