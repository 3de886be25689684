"""Calls, handlers called in-process under moto: the signaling function, the ring-timeout
consumer and the Connections-stream consumer (disconnects), with the Calls table, queues
and secret created from template.yaml. Pushes are read back from moto's management API."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from switchboard.turn import turn_credentials

from tests.integration.conftest import FakeContext, Stack
from tests.integration.test_messaging import Client, befriend
from tests.support.effects import InProcess
from tests.support.events import ws_event

OFFER = {"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}
ANSWER = {"type": "answer", "sdp": "v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\n"}
TURN_URL = "turn:127.0.0.1:3478?transport=udp"


@pytest.fixture(scope="module")
def apps(stack: Stack) -> dict[str, ModuleType]:
    return {
        # No delay on the ring timeout, so the test can read the scheduled message at once
        # (nothing consumes the queue in-process: the test hands it to the consumer).
        "signaling": stack.handler(
            "SignalingFunction", TURN_URLS=TURN_URL, STUN_URLS="", RING_TIMEOUT_SECONDS="0"
        ),
        "connect": stack.handler("ConnectionFunction"),
        "ring": stack.handler("RingTimeoutFunction"),
        "events": stack.handler("ConnectionEventsFunction"),
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


def device(stack: Stack, apps: dict[str, ModuleType], user_id: str) -> Client:
    """Another connection of an existing user."""
    return Client(stack, apps["signaling"], apps["connect"], user_id)


def call_item(stack: Stack, call_id: str) -> dict[str, Any]:
    item: dict[str, Any] = stack.client("dynamodb").get_item(
        TableName=stack.table("CallsTable"), Key={"pk": {"S": f"call#{call_id}"}}
    )["Item"]
    return item


def active_item(stack: Stack, user_id: str) -> dict[str, Any] | None:
    item: dict[str, Any] | None = (
        stack.client("dynamodb")
        .get_item(TableName=stack.table("CallsTable"), Key={"pk": {"S": f"active#{user_id}"}})
        .get("Item")
    )
    return item


def initiate(caller: Client, callee: Client, **extra: Any) -> str:
    data = caller.ok(
        "call:initiate", {"calleeId": callee.user_id, "media": "video", "offer": OFFER, **extra}
    )
    call_id: str = data["callId"]
    return call_id


def drain(queue_url: str, stack: Stack) -> list[dict[str, Any]]:
    sqs = stack.client("sqs")
    bodies: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=0
        ).get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def sqs_event(*bodies: dict[str, Any]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": uuid.uuid4().hex,
                "receiptHandle": "rh",
                "body": json.dumps(body),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:ring",
                "awsRegion": "us-east-1",
            }
            for body in bodies
        ]
    }


def disconnect_record(client: Client) -> dict[str, Any]:
    """The Connections-stream REMOVE record that $disconnect's delete produces."""
    image = {"connectionId": {"S": client.connection_id}, "userId": {"S": client.user_id}}
    return {
        "Records": [
            {
                "eventID": uuid.uuid4().hex,
                "eventName": "REMOVE",
                "eventSource": "aws:dynamodb",
                "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/c/stream/x",
                "dynamodb": {
                    "Keys": {"connectionId": image["connectionId"]},
                    "OldImage": image,
                    "SequenceNumber": "1",
                    "SizeBytes": 1,
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                },
            }
        ]
    }


# ---------------------------------------------------------------------- 1:1


def test_call_rings_every_device_and_the_answer_reaches_the_caller_only(
    stack: Stack, apps: dict[str, ModuleType], people: Any
) -> None:
    alice, bob = people("alice", "bob")
    bob_laptop = device(stack, apps, bob.user_id)
    # When alice calls bob
    call_id = initiate(alice, bob)
    # Then both of bob's devices ring with the offer
    for d in (bob, bob_laptop):
        [incoming] = d.frames("call:incoming")
        assert incoming["data"]["callId"] == call_id
        assert incoming["data"]["offer"] == OFFER
        assert incoming["data"]["callerId"] == alice.user_id
    # When the laptop answers
    assert bob_laptop.ok("call:answer", {"callId": call_id, "answer": ANSWER})["state"] == "active"
    # Then alice gets the answer, bob's phone stops ringing, and the call is stored active
    [answered] = alice.frames("call:answered")
    assert answered["data"] == {"callId": call_id, "answer": ANSWER, "fromUserId": bob.user_id}
    assert bob.frames("call:answered-elsewhere")[0]["data"]["callId"] == call_id
    assert bob_laptop.frames("call:answered-elsewhere") == []
    item = call_item(stack, call_id)
    assert item["state"]["S"] == "active"
    assert (
        item["participants"]["M"][bob.user_id]["M"]["connectionId"]["S"] == bob_laptop.connection_id
    )
    assert active_item(stack, alice.user_id) is not None
    # And a hang-up ends it for both, with a duration, releasing both users
    assert alice.ok("call:end", {"callId": call_id})["state"] == "ended"
    assert bob_laptop.frames("call:ended")[0]["data"] == {"callId": call_id, "reason": "hangup"}
    item = call_item(stack, call_id)
    assert item["state"]["S"] == "ended" and item["endReason"]["S"] == "hangup"
    assert int(item["durationMs"]["N"]) >= 0
    assert active_item(stack, alice.user_id) is None and active_item(stack, bob.user_id) is None
    # Answering after the end is a conflict
    assert bob.error("call:answer", {"callId": call_id, "answer": ANSWER}) == "conflict"


def test_two_devices_answering_at_once_exactly_one_wins(
    stack: Stack, apps: dict[str, ModuleType], people: Any
) -> None:
    alice, bob = people("alice", "bob")
    devices = [bob, *(device(stack, apps, bob.user_id) for _ in range(3))]
    call_id = initiate(alice, bob)
    replies: list[dict[str, Any]] = []
    barrier = threading.Barrier(len(devices))

    def answer(d: Client) -> None:
        barrier.wait()
        replies.append(d.call("call:answer", {"callId": call_id, "answer": ANSWER}))

    threads = [threading.Thread(target=answer, args=(d,)) for d in devices]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(replies) == len(devices)
    winners = [r for r in replies if r["ok"]]
    losers = [r for r in replies if not r["ok"]]
    assert len(winners) == 1
    assert {r["error"]["code"] for r in losers} == {"conflict"}
    assert {r["error"]["details"]["reason"] for r in losers} == {"answered_elsewhere"}
    assert len(alice.frames("call:answered")) == 1


def test_busy_callee_and_busy_caller(
    stack: Stack, apps: dict[str, ModuleType], people: Any
) -> None:
    alice, bob, carol = people("alice", "bob", "carol")
    ring_queue = stack.env("SignalingFunction")["RING_TIMEOUT_QUEUE_URL"]
    ringing = initiate(alice, bob)
    drain(ring_queue, stack)
    # Bob is ringing: carol gets busy, and the refused attempt is recorded for statistics
    window = InProcess().window()
    reply = carol.call("call:initiate", {"calleeId": bob.user_id, "media": "audio", "offer": OFFER})
    assert reply["error"]["code"] == "conflict"
    assert reply["error"]["details"] == {"reason": "busy", "userIds": [bob.user_id]}
    assert active_item(stack, carol.user_id) is None
    # ... and that record is all it stored; its ring timeout (scheduled before the store,
    # so that no stored call can lose it) and the caller's call counter (an attempt is a
    # call placed) are the only other effects, and no push to anyone
    counter = ("UpdateItem", stack.table("RateLimitsTable"))
    assert [(e["operation"], e["target"]) for e in window.effects()] == [
        counter,
        ("SendMessage", ring_queue),
        ("PutItem", stack.table("CallsTable")),
    ]
    # Alice, in a call already, cannot start another; nothing is stored or pushed
    window = InProcess().window()
    reply = alice.call(
        "call:initiate", {"calleeId": carol.user_id, "media": "audio", "offer": OFFER}
    )
    assert reply["error"]["details"]["reason"] == "already_in_call"
    assert [(e["operation"], e["target"]) for e in window.effects()] == [
        counter,
        ("SendMessage", ring_queue),
    ]
    busy = stack.client("dynamodb").scan(
        TableName=stack.table("CallsTable"),
        FilterExpression="callerId = :c",
        ExpressionAttributeValues={":c": {"S": carol.user_id}},
    )["Items"]
    assert [i["state"]["S"] for i in busy] == ["busy"]
    # When the two refused attempts' timeouts arrive, they find nothing to end
    # (the queue is shared with the other tests' calls: these people's are picked out)
    timeouts = [
        t
        for t in drain(ring_queue, stack)
        if t["callId"] != ringing and set(t["userIds"]) & {bob.user_id, carol.user_id}
    ]
    assert sorted(t["userIds"] for t in timeouts) == [[bob.user_id], [carol.user_id]]
    window = InProcess().window()
    result = apps["ring"].lambda_handler(sqs_event(*timeouts), FakeContext())
    assert result == {"batchItemFailures": []}
    window.assert_nothing_happened("the ring timeout of a refused call:initiate")
    assert alice.frames("call:ended") == bob.frames("call:ended") == []


def test_ice_goes_only_to_the_in_call_connection(
    stack: Stack, apps: dict[str, ModuleType], people: Any
) -> None:
    alice, bob, mallory = people("alice", "bob", "mallory")
    bob_laptop = device(stack, apps, bob.user_id)
    call_id = initiate(alice, bob)
    early = {"candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host", "sdpMid": "0"}
    # Before the answer, alice's candidates are kept (nobody is in the call on bob's side)
    sent = alice.ok("call:ice-candidate", {"callId": call_id, "candidate": early})
    assert sent == {"callId": call_id, "sent": False}
    assert bob.frames("call:ice-candidate") == bob_laptop.frames("call:ice-candidate") == []
    bob_laptop.ok("call:answer", {"callId": call_id, "answer": ANSWER})
    # The answering device gets them; the other device never does
    [kept] = bob_laptop.frames("call:ice-candidate")
    assert kept["data"] == {"callId": call_id, "candidate": early, "fromUserId": alice.user_id}
    later = {"candidate": "candidate:2 1 udp 1 127.0.0.1 50001 typ host", "sdpMLineIndex": 0}
    assert alice.ok("call:ice-candidate", {"callId": call_id, "candidate": later})["sent"] is True
    assert [f["data"]["candidate"] for f in bob_laptop.frames("call:ice-candidate")] == [
        early,
        later,
    ]
    assert bob.frames("call:ice-candidate") == []
    # Bob's other device and a stranger cannot signal in the call
    assert bob.error("call:ice-candidate", {"callId": call_id, "candidate": later}) == "forbidden"
    assert (
        mallory.error("call:ice-candidate", {"callId": call_id, "candidate": later}) == "forbidden"
    )
    assert mallory.error("call:end", {"callId": call_id}) == "forbidden"
    assert mallory.error("call:answer", {"callId": call_id, "answer": ANSWER}) == "forbidden"
    assert mallory.error("call:end", {"callId": "no-such-call"}) == "not_found"
    # The in-call connection answers back to alice's connection
    bob_laptop.ok("call:ice-candidate", {"callId": call_id, "candidate": later})
    assert alice.frames("call:ice-candidate")[0]["data"]["fromUserId"] == bob.user_id


def test_reject_tells_the_caller(stack: Stack, people: Any) -> None:
    alice, bob = people("alice", "bob")
    call_id = initiate(alice, bob)
    assert (
        bob.ok("call:reject", {"callId": call_id, "reason": "busy-at-work"})["state"] == "rejected"
    )
    assert alice.frames("call:rejected")[0]["data"] == {
        "callId": call_id,
        "userId": bob.user_id,
        "reason": "busy-at-work",
    }
    assert call_item(stack, call_id)["state"]["S"] == "rejected"


def test_ring_timeout_misses_the_call_and_queues_a_notification(
    stack: Stack, apps: dict[str, ModuleType], people: Any
) -> None:
    alice, bob = people("alice", "bob")
    ring_queue = stack.env("SignalingFunction")["RING_TIMEOUT_QUEUE_URL"]
    notification_queue = stack.env("SignalingFunction")["NOTIFICATION_QUEUE_URL"]
    drain(ring_queue, stack)
    call_id = initiate(alice, bob)
    # The initiate scheduled a delayed ring timeout
    timeouts = [b for b in drain(ring_queue, stack) if b["callId"] == call_id]
    assert timeouts == [{"callId": call_id, "userIds": [bob.user_id]}]
    drain(notification_queue, stack)
    # When it arrives
    result = apps["ring"].lambda_handler(sqs_event(*timeouts), FakeContext())
    assert result == {"batchItemFailures": []}
    # Then the call is missed, both sides told, a missed-call notification queued for bob
    assert call_item(stack, call_id)["state"]["S"] == "missed"
    assert alice.frames("call:ended")[0]["data"] == {"callId": call_id, "reason": "missed"}
    assert bob.frames("call:ended")[0]["data"] == {"callId": call_id, "reason": "missed"}
    jobs = [j for j in drain(notification_queue, stack) if j["kind"] == "missed_call"]
    assert [(j["user_id"], j["data"]["callId"], j["data"]["callerId"]) for j in jobs] == [
        (bob.user_id, call_id, alice.user_id)
    ]
    # A duplicate delivery of the timeout changes nothing
    apps["ring"].lambda_handler(sqs_event(*timeouts), FakeContext())
    assert len(alice.frames("call:ended")) == 1


def test_disconnect_of_the_in_call_connection_ends_the_call(
    stack: Stack, apps: dict[str, ModuleType], people: Any
) -> None:
    alice, bob = people("alice", "bob")
    bob_laptop = device(stack, apps, bob.user_id)
    call_id = initiate(alice, bob)
    bob_laptop.ok("call:answer", {"callId": call_id, "answer": ANSWER})
    # Bob's phone (not in the call) closing changes nothing
    apps["events"].lambda_handler(disconnect_record(bob), FakeContext())
    assert call_item(stack, call_id)["state"]["S"] == "active"
    # The laptop closing ends the call, and alice is told
    apps["events"].lambda_handler(disconnect_record(bob_laptop), FakeContext())
    item = call_item(stack, call_id)
    assert item["state"]["S"] == "ended" and item["endReason"]["S"] == "disconnected"
    assert alice.frames("call:ended")[0]["data"] == {"callId": call_id, "reason": "disconnected"}


@pytest.mark.parametrize("group", [False, True])
def test_a_join_handled_after_its_connection_closed_holds_nobody(
    stack: Stack, apps: dict[str, ModuleType], people: Any, group: bool
) -> None:
    alice, bob, carol = people("alice", "bob", "carol")
    bob_laptop = device(stack, apps, bob.user_id)
    if group:
        data = {"calleeIds": [bob.user_id, carol.user_id], "media": "video"}
        call_id = alice.ok("call:initiate", data)["callId"]
        carol.ok("call:join", {"callId": call_id})
    else:
        call_id = initiate(alice, bob)
    # Given bob's laptop closed while ringing: $disconnect removed the connection and the
    # teardown its removal drives found nothing to end
    apps["connect"].lambda_handler(
        ws_event("$disconnect", connection_id=bob_laptop.connection_id, user_id=bob.user_id),
        FakeContext(),
    )
    apps["events"].lambda_handler(disconnect_record(bob_laptop), FakeContext())
    assert call_item(stack, call_id)["participants"]["M"][bob.user_id]["M"]["state"]["S"] == (
        "invited"
    )
    # When the answer (or join) it sent just before closing is handled only now
    if group:
        bob_laptop.call("call:join", {"callId": call_id})
    else:
        bob_laptop.call("call:answer", {"callId": call_id, "answer": ANSWER})
    # Then his part ends at once, as the disconnect would have ended it: the others are
    # told, and nobody is held busy by a participant no frame can reach
    part = call_item(stack, call_id)["participants"]["M"][bob.user_id]["M"]
    assert (part["state"]["S"], part["reason"]["S"]) == ("left", "disconnected")
    assert active_item(stack, bob.user_id) is None
    if group:
        left = [f["data"] for f in alice.frames("call:participant-left")]
        assert left == [{"callId": call_id, "userId": bob.user_id, "reason": "disconnected"}]
        assert call_item(stack, call_id)["state"]["S"] == "active"  # alice and carol go on
    else:
        assert alice.frames("call:ended")[-1]["data"] == {
            "callId": call_id,
            "reason": "disconnected",
        }
        assert active_item(stack, alice.user_id) is None


def test_get_active_and_ice_servers(stack: Stack, people: Any) -> None:
    alice, bob = people("alice", "bob")
    assert bob.ok("call:get-active") == {"call": None}
    call_id = initiate(alice, bob)
    active = bob.ok("call:get-active")["call"]
    assert active["callId"] == call_id and active["state"] == "ringing"
    assert active["offer"] == OFFER  # a device that connects while ringing can answer
    assert "offer" not in alice.ok("call:get-active")["call"]
    # ICE servers: TURN credentials signed with the template's TurnSecret, for the call
    servers = alice.ok("call:ice-servers", {"callId": call_id})
    [turn] = servers["iceServers"]
    secret_arn = stack.env("SignalingFunction")["TURN_SECRET_ARN"]
    secret = stack.client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"]
    expiry = servers["expiresAt"]
    assert turn["urls"] == [TURN_URL]
    assert (turn["username"], turn["credential"]) == turn_credentials(secret, alice.user_id, expiry)
    assert turn["username"].endswith(f":{alice.user_id}")


def test_bad_input_is_a_typed_error(people: Any) -> None:
    alice, bob = people("alice", "bob")
    assert (
        alice.error("call:initiate", {"calleeId": bob.user_id, "media": "audio"}) == "bad_request"
    )
    assert (
        alice.error("call:initiate", {"calleeId": alice.user_id, "media": "audio", "offer": OFFER})
        == "bad_request"
    )
    big = {"type": "offer", "sdp": "x" * 30_000}
    assert (
        alice.error("call:initiate", {"calleeId": bob.user_id, "media": "audio", "offer": big})
        == "bad_request"
    )
    assert alice.error("call:answer", {"callId": "../x", "answer": ANSWER}) == "bad_request"


# ---------------------------------------------------------------------- group calls


def test_group_call_join_offer_leave_and_the_fifth_is_refused(stack: Stack, people: Any) -> None:
    alice, bob, carol, dave, erin = people("alice", "bob", "carol", "dave", "erin")
    # Five people is one too many for a mesh
    reply = alice.call(
        "call:initiate",
        {"calleeIds": [bob.user_id, carol.user_id, dave.user_id, erin.user_id], "media": "audio"},
    )
    assert reply["error"]["code"] == "conflict"
    assert reply["error"]["details"] == {"reason": "call_full", "maxParticipants": 4}
    data = alice.ok(
        "call:initiate", {"calleeIds": [bob.user_id, carol.user_id, dave.user_id], "media": "audio"}
    )
    call_id = data["callId"]
    assert bob.frames("call:incoming")[0]["data"]["group"] is True
    # Bob joins: alice hears of it; bob offers to alice, who answers back
    joined = bob.ok("call:join", {"callId": call_id})
    assert {p["userId"]: p["state"] for p in joined["participants"]}[alice.user_id] == "joined"
    assert alice.frames("call:participant-joined")[0]["data"]["userId"] == bob.user_id
    bob.ok("call:offer", {"callId": call_id, "toUserId": alice.user_id, "offer": OFFER})
    assert alice.frames("call:offer")[0]["data"] == {
        "callId": call_id,
        "offer": OFFER,
        "fromUserId": bob.user_id,
    }
    alice.ok("call:answer", {"callId": call_id, "toUserId": bob.user_id, "answer": ANSWER})
    assert bob.frames("call:answered")[0]["data"]["fromUserId"] == alice.user_id
    # ICE in a group call names its target
    candidate = {"candidate": "candidate:1 1 udp 1 127.0.0.1 1 typ host"}
    assert (
        bob.error("call:ice-candidate", {"callId": call_id, "candidate": candidate})
        == "bad_request"
    )
    # A fifth person cannot be invited in
    reply = bob.call("call:invite", {"callId": call_id, "userIds": [erin.user_id]})
    assert reply["error"]["details"]["reason"] == "call_full"
    # Carol joins, bob leaves: the others are told
    carol.ok("call:join", {"callId": call_id})
    assert [f["data"]["userId"] for f in bob.frames("call:participant-joined")] == [carol.user_id]
    bob.ok("call:leave", {"callId": call_id})
    for d in (alice, carol):
        left = d.frames("call:participant-left")
        assert left[-1]["data"] == {"callId": call_id, "userId": bob.user_id, "reason": "left"}
    assert call_item(stack, call_id)["state"]["S"] == "active"
    assert active_item(stack, bob.user_id) is None
    # Dave declines; then carol leaves and the call ends for alice
    dave.ok("call:reject", {"callId": call_id})
    carol.ok("call:leave", {"callId": call_id})
    assert alice.frames("call:ended")[-1]["data"]["callId"] == call_id
    assert call_item(stack, call_id)["state"]["S"] == "ended"


def test_calls_table_streams_both_images_for_the_analytics(stack: Stack) -> None:
    table = stack.client("dynamodb").describe_table(TableName=stack.table("CallsTable"))["Table"]
    assert table["StreamSpecification"] == {
        "StreamEnabled": True,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }


def test_sample_events_in_events_dir_run_against_the_handlers(
    stack: Stack, apps: dict[str, ModuleType]
) -> None:
    # `sam local invoke -e events/call-*.json` inputs: each is a valid event for its handler
    root = Path(__file__).resolve().parents[2] / "events"
    # (the sample's alice asks for credentials to call bob: they are contacts)
    message = stack.handler("MessageFunction")
    created = Client(stack, message, apps["connect"], "alice").ok(
        "conversation:create", {"members": ["bob"]}
    )
    Client(stack, message, apps["connect"], "bob").call(
        "conversation:accept", {"conversationId": created["conversationId"]}
    )
    servers = json.loads(
        apps["signaling"].lambda_handler(
            json.loads((root / "call-ice-servers.json").read_text()), FakeContext()
        )["body"]
    )
    assert servers["ok"] and servers["data"]["iceServers"][0]["urls"] == [TURN_URL]
    bad_callee = json.loads(
        apps["signaling"].lambda_handler(
            json.loads((root / "call-initiate.json").read_text()), FakeContext()
        )["body"]
    )
    assert bad_callee["ok"] or bad_callee["error"]["code"] == "conflict"
    # A ring timeout for a call that does not exist (any more) is a quiet no-op
    result = apps["ring"].lambda_handler(
        json.loads((root / "call-ring-timeout.json").read_text()), FakeContext()
    )
    assert result == {"batchItemFailures": []}


def test_a_call_from_a_conversation_needs_both_to_be_members(
    stack: Stack, apps: dict[str, ModuleType], people: Any
) -> None:
    alice, bob, mallory = people("alice", "bob", "mallory")
    messages = stack.handler("MessageFunction")
    alice_messaging = Client(stack, messages, apps["connect"], alice.user_id)
    conversation = alice_messaging.ok("conversation:create", {"members": [bob.user_id]})
    conversation_id = conversation["conversationId"]
    # A stranger to the conversation cannot be called from it, nor call from it
    assert (
        alice.error(
            "call:initiate",
            {
                "calleeId": mallory.user_id,
                "media": "audio",
                "offer": OFFER,
                "conversationId": conversation_id,
            },
        )
        == "forbidden"
    )
    # (mallory, no member, is told what she would be of a conversation that does not
    # exist: tests/integration/test_conversation_oracle.py)
    assert (
        mallory.error(
            "call:initiate",
            {
                "calleeId": bob.user_id,
                "media": "audio",
                "offer": OFFER,
                "conversationId": conversation_id,
            },
        )
        == "not_found"
    )
    call_id = initiate(alice, bob, conversationId=conversation_id)
    assert bob.frames("call:incoming")[-1]["data"]["conversationId"] == conversation_id
    assert call_item(stack, call_id)["conversationId"]["S"] == conversation_id


def test_a_call_from_a_conversation_rings_in_only_its_members(
    stack: Stack, apps: dict[str, ModuleType], people: Any
) -> None:
    """An attacker's finding: ``call:initiate`` in a conversation refuses a callee who is
    not a member, but ``call:invite`` let any participant ring in any contact of theirs:
    the invitee got the group's id and its members' tiles, unasked by the others."""
    alice, bob, carol, erin = people("alice", "bob", "carol", "erin")
    messages = stack.handler("MessageFunction")
    alice_messaging = Client(stack, messages, apps["connect"], alice.user_id)
    created = alice_messaging.ok("conversation:create", {"members": [bob.user_id, carol.user_id]})
    group = created["conversationId"]
    for member in (bob, carol):
        Client(stack, messages, apps["connect"], member.user_id).ok(
            "conversation:accept", {"conversationId": group}
        )
    call_id = alice.ok(
        "call:initiate", {"calleeIds": [bob.user_id], "media": "audio", "conversationId": group}
    )["callId"]
    bob.ok("call:join", {"callId": call_id})
    # When bob rings in erin, his contact but no member of the group
    window = InProcess().window()
    reply = bob.call("call:invite", {"callId": call_id, "userIds": [erin.user_id]})
    # Then it is refused as a callee of call:initiate is, and nobody heard of it
    assert reply["error"] == {
        "code": "forbidden",
        "message": "every participant must be a member of the conversation",
    }, reply
    window.assert_nothing_happened("call:invite of a non-member into the group's call")
    assert erin.frames("call:incoming") == []
    # ... while a member is rung in
    bob.ok("call:invite", {"callId": call_id, "userIds": [carol.user_id]})
    assert carol.frames("call:incoming")[-1]["data"]["conversationId"] == group


def test_aws_calls_per_call_action(stack: Stack, apps: dict[str, ModuleType], people: Any) -> None:
    # The hot path (ICE during a call) is one GetItem; no call action ever Scans.
    from switchboard import aws

    from bench.counting import counting

    alice, bob = people("alice", "bob")
    bob_laptop = device(stack, apps, bob.user_id)
    with counting([aws.dynamodb(), aws.sqs()]) as calls:
        call_id = initiate(alice, bob)
        initiate_calls = calls.snapshot()
        calls.clear()
        bob_laptop.ok("call:answer", {"callId": call_id, "answer": ANSWER})
        answer_calls = calls.snapshot()
        calls.clear()
        alice.ok("call:ice-candidate", {"callId": call_id, "candidate": {"candidate": "c"}})
        ice_calls = calls.snapshot()
        calls.clear()
        alice.ok("call:end", {"callId": call_id})
        end_calls = calls.snapshot()
    assert ice_calls == {"dynamodb.GetItem": 1}
    for snapshot in (initiate_calls, answer_calls, ice_calls, end_calls):
        assert not any(name.endswith(("Scan", "Query")) for name in snapshot), snapshot
    # Measured: initiate = the consent reads (the callee's block list, the 1:1 conversation
    # by key: 2 BatchGets) + the call counter (an UpdateItem) + presence BatchGet + one
    # transaction + the ring-timeout message; answer = GetItem + one transaction +
    # presence (answered-elsewhere) + the answering connection read after the write (a
    # join landing after a close); end = 2.
    assert initiate_calls == {
        "dynamodb.BatchGetItem": 3,
        "dynamodb.UpdateItem": 1,
        "dynamodb.TransactWriteItems": 1,
        "sqs.SendMessage": 1,
    }
    assert answer_calls == {
        "dynamodb.GetItem": 2,
        "dynamodb.TransactWriteItems": 1,
        "dynamodb.BatchGetItem": 1,
    }
    assert end_calls == {"dynamodb.GetItem": 1, "dynamodb.TransactWriteItems": 1}


def test_renegotiation_in_a_one_to_one_call(
    stack: Stack, apps: dict[str, ModuleType], people: Any
) -> None:
    alice, bob = people("alice", "bob")
    bob_laptop = device(stack, apps, bob.user_id)
    call_id = initiate(alice, bob)
    bob_laptop.ok("call:answer", {"callId": call_id, "answer": ANSWER})
    # Alice adds video: a new offer to the peer (no toUserId needed in a 1:1 call)
    renegotiate = {"type": "offer", "sdp": "v=0\r\no=- 1 3 IN IP4 127.0.0.1\r\n"}
    assert alice.ok("call:offer", {"callId": call_id, "offer": renegotiate})["sent"] is True
    [offer] = bob_laptop.frames("call:offer")
    assert offer["data"] == {"callId": call_id, "offer": renegotiate, "fromUserId": alice.user_id}
    assert bob.frames("call:offer") == []
    # Bob's in-call device answers it with call:answer: relayed, the call state is untouched
    second = {"type": "answer", "sdp": "v=0\r\no=- 3 5 IN IP4 127.0.0.1\r\n"}
    assert bob_laptop.ok("call:answer", {"callId": call_id, "answer": second})["sent"] is True
    assert [f["data"]["answer"] for f in alice.frames("call:answered")] == [ANSWER, second]
    assert call_item(stack, call_id)["state"]["S"] == "active"
    # Bob's other device still cannot answer anything
    assert bob.error("call:answer", {"callId": call_id, "answer": second}) == "conflict"


def test_two_callers_ringing_one_callee_at_once_one_gets_busy(people: Any) -> None:
    bob, *callers = people("bob", "carol", "dave", "erin")
    replies: list[dict[str, Any]] = []
    barrier = threading.Barrier(len(callers))

    def ring(caller: Client) -> None:
        barrier.wait()
        replies.append(
            caller.call(
                "call:initiate", {"calleeId": bob.user_id, "media": "audio", "offer": OFFER}
            )
        )

    threads = [threading.Thread(target=ring, args=(c,)) for c in callers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(replies) == len(callers)
    assert len([r for r in replies if r["ok"]]) == 1, replies
    assert [r["error"]["details"]["reason"] for r in replies if not r["ok"]] == ["busy"] * 2
    assert len(bob.frames("call:incoming")) == 1


def test_turn_credentials_go_only_to_the_participants_of_a_live_call(
    stack: Stack, people: Any, apps: dict[str, ModuleType]
) -> None:
    alice, bob, mallory = people("alice", "bob", "mallory")

    def has_turn(reply: dict[str, Any]) -> bool:
        return any("credential" in server for server in reply["data"]["iceServers"])

    # Abuse: anyone asked at any time, for a credential that lived an hour
    assert not has_turn(mallory.call("call:ice-servers", {}))  # no call: STUN only
    call_id = initiate(alice, bob)
    assert has_turn(bob.call("call:ice-servers", {"callId": call_id}))  # ringing: yes
    assert mallory.error("call:ice-servers", {"callId": call_id}) == "not_found"
    bob.ok("call:answer", {"callId": call_id, "answer": ANSWER})
    servers = alice.ok("call:ice-servers", {"callId": call_id})
    assert servers["ttl"] == 120 and servers["expiresAt"] <= time.time() + 120
    alice.ok("call:end", {"callId": call_id})
    assert bob.error("call:ice-servers", {"callId": call_id}) == "conflict"  # ended: no
    # A caller about to place a call gets them only for someone she shares a conversation
    # with (an attacker's finding: any calleeId did), counted per user
    signaling = stack.handler("SignalingFunction", TURN_URLS=TURN_URL, TURN_ISSUES_PER_MINUTE="2")
    limited = Client(stack, signaling, apps["connect"], mallory.user_id)
    assert limited.error("call:ice-servers", {"calleeId": bob.user_id}) == "forbidden"
    assert limited.error("call:ice-servers", {"calleeId": "nobody-at-all"}) == "forbidden"
    message_function = stack.handler("MessageFunction")
    messages = Client(stack, message_function, apps["connect"], mallory.user_id)
    created = messages.ok("conversation:create", {"members": [bob.user_id]})
    # A request is not enough (a call rings only contacts): bob accepts it
    assert limited.error("call:ice-servers", {"calleeId": bob.user_id}) == "forbidden"
    Client(stack, message_function, apps["connect"], bob.user_id).ok(
        "conversation:accept", {"conversationId": created["conversationId"]}
    )
    replies = [limited.call("call:ice-servers", {"calleeId": bob.user_id}) for _ in range(3)]
    assert [r["ok"] for r in replies] == [True, True, False]
    assert replies[2]["error"]["code"] == "rate_limited"
    assert limited.error("call:ice-servers", {"calleeId": mallory.user_id}) == "bad_request"
