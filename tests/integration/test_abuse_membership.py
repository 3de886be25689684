"""Forced membership: anyone can put anyone in conversations, so what
one of the victim's requests costs must not grow with how many they were put in. Each test
puts the victim in more conversations than the bounded window reads (the window is made
small here, so the test stays quick) and checks what the DynamoDB calls asked for."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest
from switchboard import aws, backlog, presence
from switchboard.dal import conversations as dal
from switchboard.limits import MAX_MESSAGE_BYTES

from tests.integration.conftest import FakeContext, Stack
from tests.integration.test_messaging import Client, new_conversation, send
from tests.support.events import frame, ws_event

WINDOW = 6  # stands in for RECENT_CONVERSATIONS
PUT_IN = 15  # conversations the attacker puts the victim in: more than the window


@dataclass
class Call:
    operation: str
    params: dict[str, Any]

    def keys_read(self, table: str) -> int:
        return len(self.params.get("RequestItems", {}).get(table, {}).get("Keys", []))


@pytest.fixture
def calls() -> Iterator[list[Call]]:
    """Every DynamoDB call the handlers make, with its parameters (botocore's own hook)."""
    seen: list[Call] = []

    def record(params: dict[str, Any], event_name: str, **_: Any) -> None:
        seen.append(Call(event_name.rsplit(".", 1)[1], params))

    client = aws.dynamodb()
    client.meta.events.register("provide-client-params.dynamodb.*", record)
    yield seen
    client.meta.events.unregister("provide-client-params.dynamodb.*", record)


@pytest.fixture(scope="module")
def apps(stack: Stack) -> dict[str, ModuleType]:
    return {
        "message": stack.handler("MessageFunction", CREATE_LIMIT_PER_USER="1000"),
        "connect": stack.handler("ConnectionFunction"),
        "events": stack.handler("ConnectionEventsFunction"),
    }


@pytest.fixture
def victim_put_in_many(
    stack: Stack, apps: dict[str, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> tuple[Client, Client, list[str]]:
    """A victim whom an attacker put in PUT_IN conversations, one message in each; the
    victim's own contact (a friend) talked to them before all that."""
    monkeypatch.setattr(dal, "RECENT_CONVERSATIONS", WINDOW)
    monkeypatch.setattr(backlog, "RECENT_CONVERSATIONS", WINDOW)
    tag = uuid.uuid4().hex[:6]
    make = lambda name: Client(stack, apps["message"], apps["connect"], f"{name}-{tag}")  # noqa: E731
    victim, attacker = make("victim"), make("attacker")
    ids = []
    for i in range(PUT_IN):
        conversation = new_conversation(attacker, victim, listingId=f"L{i}")
        send(attacker, conversation, f"spam {i}")
        ids.append(conversation)
    return victim, attacker, ids


def conversation_keys_read(calls: list[Call], stack: Stack) -> int:
    table = stack.table("ConversationsTable")
    return sum(c.keys_read(table) for c in calls if c.operation == "BatchGetItem")


def test_conversation_list_reads_one_page_whatever_the_membership_count(
    stack: Stack, victim_put_in_many: Any, calls: list[Call]
) -> None:
    victim, _, ids = victim_put_in_many
    calls.clear()
    # When the victim lists one conversation
    page = victim.ok("conversation:list", {"limit": 1})
    # Then one index page of limit + 1 items and one conversation were read
    queries = [c for c in calls if c.operation == "Query"]
    assert [q.params.get("Limit") for q in queries] == [2]
    assert conversation_keys_read(calls, stack) == 1
    assert [c["conversationId"] for c in page["conversations"]] == [ids[-1]]
    # And paging still reaches every conversation, most recent first, each once
    seen, cursor = [], None
    while True:
        reply = victim.ok(
            "conversation:list", {"limit": 4, **({"cursor": cursor} if cursor else {})}
        )
        seen += [c["conversationId"] for c in reply["conversations"]]
        cursor = reply["cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]


def test_presence_query_reads_a_bounded_window(
    stack: Stack, victim_put_in_many: Any, calls: list[Call]
) -> None:
    victim, attacker, _ = victim_put_in_many
    calls.clear()
    presence_reply = victim.ok("presence:query", {"userIds": [attacker.user_id]})
    assert presence_reply["presence"][0]["userId"] == attacker.user_id
    queries = [c for c in calls if c.operation == "Query"]
    assert [q.params.get("Limit") for q in queries] == [WINDOW + 1]
    # the window, and the two member items of the 1:1 conversation (read by key)
    assert conversation_keys_read(calls, stack) <= WINDOW + 2


def test_presence_announcement_reads_a_bounded_window_and_audience(
    stack: Stack,
    apps: dict[str, ModuleType],
    victim_put_in_many: Any,
    calls: list[Call],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    victim, _, _ = victim_put_in_many
    monkeypatch.setattr(presence, "PRESENCE_AUDIENCE", 1)
    calls.clear()
    apps["events"].events.presence.announce(victim.user_id, online=True, last_seen=None)
    assert [q.params.get("Limit") for q in calls if q.operation == "Query"] == [WINDOW + 1]
    assert conversation_keys_read(calls, stack) <= WINDOW
    users = stack.table("UsersTable")
    # the audience of one, and the victim's own item (whom they blocked), in one read
    assert sum(c.keys_read(users) for c in calls if c.operation == "BatchGetItem") == 2


def test_the_backlog_of_one_connect_is_capped(
    stack: Stack,
    apps: dict[str, ModuleType],
    victim_put_in_many: Any,
    calls: list[Call],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    victim, _, _ = victim_put_in_many
    monkeypatch.setattr(backlog, "BACKLOG_MAX_MESSAGES", 4)
    live = len(victim.frames("message:new"))  # the spam's live pushes, before the backlog
    calls.clear()
    # When the victim connects with PUT_IN conversations of unacked messages
    result = apps["events"].events.backlog.deliver(
        victim.connection_id, victim.user_id, connected_at=0
    )
    # Then at most the cap is pushed, from a bounded window of conversations
    assert result.pushed == 4
    assert len(victim.frames("message:new")) == live + 4
    message_queries = [
        c
        for c in calls
        if c.operation == "Query" and c.params["TableName"] == stack.table("MessagesTable")
    ]
    assert len(message_queries) == 4
    assert conversation_keys_read(calls, stack) <= WINDOW
    # And the rest is there for message:sync (conversation:list gives the cursors)
    listing = victim.ok("conversation:list", {"limit": 100})["conversations"]
    assert sum(c["lastSeq"] - c["ackedSeq"] for c in listing) == PUT_IN


def test_a_connect_pushes_a_contacts_backlog_before_the_requests_and_then_theirs(
    stack: Stack, apps: dict[str, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a victim with two unread messages from a contact, then newer message requests
    # from three strangers, one message each: more than one connect pushes
    monkeypatch.setattr(backlog, "BACKLOG_MAX_MESSAGES", 3)
    tag = uuid.uuid4().hex[:6]
    make = lambda name: Client(stack, apps["message"], apps["connect"], f"{name}-{tag}")  # noqa: E731
    victim, friend = make("victim"), make("friend")
    chat = new_conversation(friend, victim)
    for i in range(2):
        send(friend, chat, f"friend {i}")
    for i in range(3):
        stranger = make(f"stranger{i}")
        send(stranger, new_conversation(stranger, victim, accept=False), f"spam {i}")
    live = len(victim.frames("message:new"))
    # When the victim connects
    result = apps["events"].events.backlog.deliver(
        victim.connection_id, victim.user_id, connected_at=0
    )
    # Then the contact's messages come first, however recent the requests, and a request's
    # message (delivered as usual) fills what is left of the cap
    bodies = [f["data"]["body"] for f in victim.frames("message:new")[live:]]
    assert result.pushed == 3
    assert bodies[:2] == ["friend 0", "friend 1"] and bodies[2].startswith("spam "), bodies


def test_groups_from_strangers_cannot_hide_a_contact(
    stack: Stack, apps: dict[str, ModuleType], calls: list[Call]
) -> None:
    # Given alice and bob, who talked 1:1, then 10 strangers who each put alice in 10
    # groups (with someone else): 100 newer conversations fill her whole recent window
    tag = uuid.uuid4().hex[:6]
    make = lambda name: Client(stack, apps["message"], apps["connect"], f"{name}-{tag}")  # noqa: E731
    alice, bob = make("alice"), make("bob")
    send(bob, new_conversation(bob, alice), "is the bike still available?")
    for m in range(10):
        mallory = make(f"mallory{m}")
        for g in range(10):
            mallory.ok(
                "conversation:create",
                {"members": [alice.user_id, f"x{g}-{tag}"], "title": f"group {m}.{g}"},
            )
    # Then those groups are requests for alice, in their own folder: her page of accepted
    # conversations (her presence audience) still has bob
    assert stack_contacts(apps, alice.user_id) == [bob.user_id]
    requests = alice.ok("conversation:list", {"folder": "requests", "limit": 100})
    assert len(requests["conversations"]) == 100
    assert all(c["request"] for c in requests["conversations"])
    assert alice.ok("conversation:list", {"limit": 100})["conversations"][0]["members"] == sorted(
        [alice.user_id, bob.user_id]
    )
    # When alice asks for bob's presence
    calls.clear()
    reply = alice.ok("presence:query", {"userIds": [bob.user_id]})
    # Then she gets it (the 1:1 conversation is read by key: no window read at all)
    assert [p["userId"] for p in reply["presence"]] == [bob.user_id]
    assert [q for q in calls if q.operation == "Query"] == []
    # and a stranger's presence is still refused
    assert alice.error("presence:query", {"userIds": [f"nobody-{tag}", bob.user_id]}) == "forbidden"


def stack_contacts(apps: dict[str, ModuleType], user_id: str) -> list[str]:
    repository: dal.ConversationRepository = apps["events"].events.presence.conversations
    return repository.recent_contacts(user_id)


def test_a_conversation_page_always_fits_in_one_reply(
    stack: Stack, apps: dict[str, ModuleType]
) -> None:
    """A route's reply is one WebSocket message: API Gateway sends none over 128 KB. Group
    invitations from a stranger, each naming 49 made-up members of 120 characters (all
    pending) under a title of 200 emoji (12 bytes each in JSON), made the victim's
    requests folder (the demo asks for 50) a reply of 200 KB, which never arrived: she
    could not see, accept or decline a request any more."""
    tag = uuid.uuid4().hex[:6]
    attacker, victim = (
        Client(stack, apps["message"], apps["connect"], f"{n}-{tag}") for n in ("a", "v")
    )
    made_up = [f"{i:03d}" + "x" * 117 for i in range(48)]
    invitations = {
        attacker.ok(
            "conversation:create",
            {"members": [victim.user_id, *made_up], "title": "\U0001f600" * 200},
        )["conversationId"]
        for _ in range(12)
    }
    listed: set[str] = set()
    cursor = None
    for _ in range(12):
        data = {"folder": "requests", "limit": 50, "cursor": cursor}
        event = ws_event(
            "conversation:list",
            body=frame("conversation:list", data),
            connection_id=victim.connection_id,
            user_id=victim.user_id,
        )
        body = apps["message"].lambda_handler(event, FakeContext())["body"]
        # Then every page is a reply API Gateway sends ...
        assert len(body.encode()) <= MAX_MESSAGE_BYTES
        page = json.loads(body)["data"]
        listed |= {c["conversationId"] for c in page["conversations"]}
        cursor = page["cursor"]
        if cursor is None:
            break
    # ... and going on through the cursor lists every invitation
    assert listed == invitations
