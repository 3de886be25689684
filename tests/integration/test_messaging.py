"""Messaging rules, handlers called in-process under moto (delivery through moto's
management API, whose received frames the test reads back)."""

from __future__ import annotations

import json
import threading
import uuid
from types import ModuleType
from typing import Any

import pytest

from tests.integration.conftest import FakeContext, Stack, pushed_frames
from tests.support.events import frame, ws_event


class Client:
    """One user's device, calling the message function the way API Gateway would."""

    def __init__(self, stack: Stack, app: ModuleType, connect: ModuleType, user_id: str) -> None:
        self.app, self.user_id = app, user_id
        self.connection_id = f"{user_id}-{uuid.uuid4().hex[:6]}"
        connect.lambda_handler(
            ws_event("$connect", connection_id=self.connection_id, user_id=user_id), FakeContext()
        )

    def call(self, action: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        event = ws_event(
            action, body=frame(action, data), connection_id=self.connection_id, user_id=self.user_id
        )
        reply: dict[str, Any] = json.loads(self.app.lambda_handler(event, FakeContext())["body"])
        return reply

    def ok(self, action: str, data: dict[str, Any] | None = None) -> Any:
        reply = self.call(action, data)
        assert reply["ok"], reply
        return reply["data"]

    def error(self, action: str, data: dict[str, Any] | None = None) -> str:
        reply = self.call(action, data)
        assert not reply["ok"], reply
        code: str = reply["error"]["code"]
        return code

    def frames(self, event_type: str | None = None) -> list[dict[str, Any]]:
        return [f for f in pushed_frames(self.connection_id) if event_type in (None, f["type"])]


@pytest.fixture(scope="module")
def apps(stack: Stack) -> tuple[ModuleType, ModuleType]:
    return stack.handler("MessageFunction"), stack.handler("ConnectionFunction")


@pytest.fixture
def people(stack: Stack, apps: tuple[ModuleType, ModuleType]) -> Any:
    app, connect = apps

    def make(*names: str) -> list[Client]:
        tag = uuid.uuid4().hex[:6]
        return [Client(stack, app, connect, f"{name}-{tag}") for name in names]

    return make


def new_conversation(owner: Client, *others: Client, accept: bool = True, **extra: Any) -> str:
    """A conversation between contacts: each other member accepts it (it was a message
    request for them, as everyone is a stranger at first). ``accept=False``: left a
    request."""
    data = owner.ok("conversation:create", {"members": [o.user_id for o in others], **extra})
    conversation_id: str = data["conversationId"]
    if accept:
        for other in others:
            other.ok("conversation:accept", {"conversationId": conversation_id})
    return conversation_id


def befriend(message_app: ModuleType, *clients: Client) -> None:
    """Makes every pair of ``clients`` contacts (an accepted 1:1 conversation), through
    the message function whatever function the clients were made for: calls ring only
    contacts, presence shows only contacts."""

    def call(client: Client, action: str, data: dict[str, Any]) -> dict[str, Any]:
        event = ws_event(
            action,
            body=frame(action, data),
            connection_id=client.connection_id,
            user_id=client.user_id,
        )
        reply = json.loads(message_app.lambda_handler(event, FakeContext())["body"])
        assert reply["ok"], reply
        result: dict[str, Any] = reply["data"]
        return result

    for i, first in enumerate(clients):
        for second in clients[i + 1 :]:
            created = call(first, "conversation:create", {"members": [second.user_id]})
            call(second, "conversation:accept", {"conversationId": created["conversationId"]})


def send(
    client: Client, conversation_id: str, body: str, client_id: str | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = client.ok(
        "message:send",
        {
            "conversationId": conversation_id,
            "clientMessageId": client_id or uuid.uuid4().hex,
            "body": body,
        },
    )
    return data


def test_one_to_one_conversation_is_reused_per_pair_and_listing(people: Any) -> None:
    alice, bob = people("alice", "bob")
    first = alice.ok("conversation:create", {"members": [bob.user_id], "listingId": "L1"})
    again = bob.ok("conversation:create", {"members": [alice.user_id], "listingId": "L1"})
    other_listing = alice.ok("conversation:create", {"members": [bob.user_id], "listingId": "L2"})
    assert first["created"] is True and again["created"] is False
    assert first["conversationId"] == again["conversationId"] != other_listing["conversationId"]


def test_seq_is_gapless_and_every_device_of_every_member_gets_the_message(
    people: Any, stack: Stack, apps: Any
) -> None:
    alice, bob = people("alice", "bob")
    bob_phone = Client(stack, apps[0], apps[1], bob.user_id)
    alice_laptop = Client(stack, apps[0], apps[1], alice.user_id)
    conversation = new_conversation(alice, bob)
    seqs = [send(alice, conversation, f"hello {i}")["seq"] for i in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    for device in (bob, bob_phone, alice_laptop):
        got = [
            f["data"]["seq"]
            for f in device.frames("message:new")
            if f["data"]["conversationId"] == conversation
        ]
        assert got == seqs, device.connection_id
    # the sending connection has its reply, not a push
    assert alice.frames("message:new") == []


def test_retried_send_is_idempotent(people: Any) -> None:
    alice, bob = people("alice", "bob")
    conversation = new_conversation(alice, bob)
    first = send(alice, conversation, "once", client_id="cm-1")
    second = send(alice, conversation, "once", client_id="cm-1")
    assert first == second
    history = alice.ok("message:history", {"conversationId": conversation})
    assert [m["body"] for m in history["messages"]] == ["once"]
    assert history["lastSeq"] == 1


def test_concurrent_senders_get_distinct_gapless_seqs(people: Any) -> None:
    alice, bob, carol = people("alice", "bob", "carol")
    conversation = new_conversation(alice, bob, carol)
    replies: list[int] = []
    lock = threading.Lock()

    errors: list[BaseException] = []

    def burst(client: Client) -> None:
        try:
            for i in range(6):
                data = {"conversationId": conversation, "clientMessageId": f"c{i}", "body": f"{i}"}
                # `conflict` means "too busy, retry" (docs/protocol.md): retry with the same
                # clientMessageId, as a client does; idempotency keeps it one message.
                for _ in range(20):
                    reply = client.call("message:send", data)
                    if reply["ok"] or reply["error"]["code"] != "conflict":
                        break
                assert reply["ok"], reply
                with lock:
                    replies.append(reply["data"]["seq"])
        except BaseException as exc:
            errors.append(exc)
            raise

    threads = [threading.Thread(target=burst, args=(c,)) for c in (alice, bob, carol)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(replies) == list(range(1, 19))
    history = carol.ok("message:history", {"conversationId": conversation, "limit": 100})
    assert [m["seq"] for m in history["messages"]] == list(range(1, 19))


def test_a_send_that_loses_the_seq_race_is_retried_by_the_server(
    people: Any, apps: tuple[ModuleType, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bob's send lands between alice's read of lastSeq and her write: her transaction is
    cancelled, and the server reads again and stores her message next - she never sees
    the race (deterministic: the test puts bob's send exactly there)."""
    alice, bob = people("alice", "bob")
    conversation = new_conversation(alice, bob)
    repository = apps[0].service.conversations
    read = repository.get
    raced: list[int] = []
    racing: list[bool] = []

    def read_then_race(conversation_id: str) -> Any:
        found = read(conversation_id)
        if not racing:  # once, and not for bob's own read
            racing.append(True)
            raced.append(send(bob, conversation, "in between")["seq"])
        return found

    monkeypatch.setattr(repository, "get", read_then_race)
    reply = alice.call(
        "message:send", {"conversationId": conversation, "clientMessageId": "a1", "body": "mine"}
    )
    assert raced == [1]
    assert reply["ok"], reply
    assert reply["data"]["seq"] == 2


@pytest.mark.parametrize(
    ("action", "extra"),
    [
        ("message:send", {"clientMessageId": "x", "body": "hi"}),
        ("message:history", {}),
        ("message:ack", {"seq": 1}),
        ("message:read", {"seq": 1}),
        ("typing:start", {}),
        ("typing:stop", {}),
    ],
)
def test_non_members_are_refused(people: Any, action: str, extra: dict[str, Any]) -> None:
    alice, bob, mallory = people("alice", "bob", "mallory")
    conversation = new_conversation(alice, bob)
    send(alice, conversation, "private")
    # not_found, as for a conversation that does not exist (tests/integration/
    # test_conversation_oracle.py compares the two replies field for field)
    assert mallory.error(action, {"conversationId": conversation, **extra}) == "not_found"
    assert mallory.error("message:sync", {"cursors": {conversation: 0}}) == "not_found"
    assert mallory.error("message:history", {"conversationId": "cv_doesnotexist"}) == "not_found"
    assert mallory.frames("message:new") == []


def test_body_limit_is_one_limit_one_code_one_message(people: Any) -> None:
    alice, bob = people("alice", "bob")
    conversation = new_conversation(alice, bob)
    assert send(alice, conversation, "x" * 4000)["seq"] == 1  # the limit itself is accepted
    # Just over it and far over it (past the wire model's old 20,000): the same refusal.
    for length in (4001, 20_000, 20_001, 100_000):
        data = {"conversationId": conversation, "clientMessageId": f"l{length}"}
        data["body"] = "y" * length
        reply = alice.call("message:send", data)
        assert reply["ok"] is False, length
        assert reply["error"] == {
            "code": "payload_too_large",
            "message": "body is longer than 4000 characters",
            "details": [{"field": "data.body", "message": "too long"}],
        }, length
    # Nothing was stored or pushed: bob saw only the accepted message, lastSeq is still 1.
    assert [f["data"]["seq"] for f in bob.frames("message:new")] == [1]
    history = bob.ok("message:history", {"conversationId": conversation})
    assert history["lastSeq"] == 1


def test_sending_moves_the_senders_own_cursors_in_the_same_transaction(people: Any) -> None:
    alice, bob = people("alice", "bob")
    conversation = new_conversation(alice, bob)

    def entry(client: Client) -> dict[str, Any]:
        listing = client.ok("conversation:list", {})["conversations"]
        found: dict[str, Any] = next(c for c in listing if c["conversationId"] == conversation)
        return found

    send(alice, conversation, "mine")
    assert {k: entry(alice)[k] for k in ("ackedSeq", "readSeq", "unread")} == {
        "ackedSeq": 1,
        "readSeq": 1,
        "unread": 0,
    }
    assert {k: entry(bob)[k] for k in ("ackedSeq", "readSeq", "unread")} == {
        "ackedSeq": 0,
        "readSeq": 0,
        "unread": 1,
    }
    # Bob answers: sending is reading, his cursors reach his own seq; alice has 1 unread.
    send(bob, conversation, "yours")
    assert (entry(bob)["readSeq"], entry(bob)["unread"]) == (2, 0)
    assert (entry(alice)["readSeq"], entry(alice)["unread"]) == (1, 1)
    # An ack behind the sender's cursor does not move it (nor push a receipt).
    assert alice.ok("message:ack", {"conversationId": conversation, "seq": 1})["moved"] is False
    assert bob.frames("message:delivered") == []


def test_blank_bodies_and_missing_ids(people: Any) -> None:
    alice, bob = people("alice", "bob")
    conversation = new_conversation(alice, bob)
    assert (
        alice.error(
            "message:send", {"conversationId": conversation, "clientMessageId": "b", "body": "  "}
        )
        == "bad_request"
    )
    assert (
        alice.error("message:send", {"conversationId": conversation, "body": "no client id"})
        == "bad_request"
    )


def test_cursors_only_move_forward_and_senders_get_receipts(people: Any) -> None:
    alice, bob = people("alice", "bob")
    conversation = new_conversation(alice, bob)
    for i in range(3):
        send(alice, conversation, f"m{i}")
    assert bob.ok("message:ack", {"conversationId": conversation, "seq": 3})["moved"] is True
    assert bob.ok("message:ack", {"conversationId": conversation, "seq": 1})["moved"] is False
    # beyond lastSeq is clamped
    assert bob.ok("message:read", {"conversationId": conversation, "seq": 99}) == {
        "conversationId": conversation,
        "seq": 3,
        "moved": True,
    }
    delivered = alice.frames("message:delivered")
    read = alice.frames("message:read")
    assert [f["data"]["seq"] for f in delivered] == [3]
    assert [(f["data"]["seq"], f["data"]["userId"]) for f in read] == [(3, bob.user_id)]
    listing = bob.ok("conversation:list", {})
    entry = next(c for c in listing["conversations"] if c["conversationId"] == conversation)
    assert entry["unread"] == 0 and entry["readSeq"] == 3 and entry["lastMessage"]["body"] == "m2"


def test_sync_returns_what_came_after_each_cursor(people: Any) -> None:
    alice, bob = people("alice", "bob")
    conversation = new_conversation(alice, bob)
    for i in range(5):
        send(alice, conversation, f"m{i}")
    synced = bob.ok("message:sync", {"cursors": {conversation: 2}})["conversations"][conversation]
    assert [m["seq"] for m in synced["messages"]] == [3, 4, 5]
    assert synced["hasMore"] is False and synced["lastSeq"] == 5
    page = bob.ok("message:sync", {"cursors": {conversation: 0}, "limit": 2})["conversations"][
        conversation
    ]
    assert [m["seq"] for m in page["messages"]] == [1, 2] and page["hasMore"] is True


def test_history_pages_backwards(people: Any) -> None:
    alice, bob = people("alice", "bob")
    conversation = new_conversation(alice, bob)
    for i in range(7):
        send(alice, conversation, f"m{i}")
    newest = bob.ok("message:history", {"conversationId": conversation, "limit": 3})
    older = bob.ok("message:history", {"conversationId": conversation, "beforeSeq": 5, "limit": 3})
    assert [m["seq"] for m in newest["messages"]] == [5, 6, 7]
    assert [m["seq"] for m in older["messages"]] == [2, 3, 4] and older["hasMore"] is True


def test_conversation_list_is_newest_first_and_paged(people: Any) -> None:
    alice, bob, carol, dave = people("alice", "bob", "carol", "dave")
    ids = [new_conversation(alice, other) for other in (bob, carol, dave)]
    send(alice, ids[0], "bump")  # the oldest conversation becomes the newest
    first = alice.ok("conversation:list", {"limit": 2})
    assert [c["conversationId"] for c in first["conversations"]] == [ids[0], ids[2]]
    second = alice.ok("conversation:list", {"limit": 2, "cursor": first["cursor"]})
    assert [c["conversationId"] for c in second["conversations"]] == [ids[1]]
    assert second["cursor"] is None
    assert bob.ok("conversation:list", {})["conversations"][0]["unread"] == 1


def test_typing_goes_to_other_members_and_is_rate_limited(people: Any) -> None:
    alice, bob = people("alice", "bob")
    conversation = new_conversation(alice, bob)
    alice.ok("typing:start", {"conversationId": conversation})
    assert alice.error("typing:start", {"conversationId": conversation}) == "rate_limited"
    alice.ok("typing:stop", {"conversationId": conversation})
    states = [(f["data"]["userId"], f["data"]["state"]) for f in bob.frames("typing")]
    assert states == [(alice.user_id, "start"), (alice.user_id, "stop")]
    assert alice.frames("typing") == []


def test_presence_query_is_limited_to_contacts(people: Any) -> None:
    alice, bob, stranger = people("alice", "bob", "stranger")
    new_conversation(alice, bob)
    presence = alice.ok("presence:query", {"userIds": [bob.user_id]})["presence"]
    assert presence == [{"userId": bob.user_id, "online": True, "lastSeen": None}]
    assert alice.error("presence:query", {"userIds": [stranger.user_id]}) == "forbidden"


def test_preferences_round_trip_and_validation(people: Any) -> None:
    (alice,) = people("alice")
    assert alice.ok("preferences:get") == {
        "emailOnOffline": False,
        "email": None,
        "emailVerified": False,
        "digestMinutes": 15,
        "acceptRequests": True,
    }
    assert alice.error("preferences:set", {"emailOnOffline": True}) == "bad_request"
    assert alice.error("preferences:set", {"email": "not-an-email"}) == "bad_request"
    saved = alice.ok(
        "preferences:set", {"emailOnOffline": True, "email": "a@example.com", "digestMinutes": 5}
    )
    assert (
        saved
        == alice.ok("preferences:get")
        == {
            "emailOnOffline": True,
            "email": "a@example.com",
            "emailVerified": False,
            "digestMinutes": 5,
            "acceptRequests": True,
        }
    )


def test_offline_members_get_a_notification_job(people: Any, stack: Stack, apps: Any) -> None:
    alice, bob = people("alice", "bob")
    conversation = new_conversation(alice, bob)
    apps[1].lambda_handler(
        ws_event("$disconnect", connection_id=bob.connection_id, user_id=bob.user_id), FakeContext()
    )
    send(alice, conversation, "are you there?")
    sqs = stack.client("sqs")
    queue = stack.resources["NotificationQueue"]
    jobs = []
    for _ in range(5):
        for message in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            body = json.loads(message["Body"])
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
            if body["user_id"] == bob.user_id:
                jobs.append(body)
        if jobs:
            break
    assert [(j["kind"], j["data"]["preview"]) for j in jobs] == [("message", "are you there?")]
