"""Consent and membership (membership.py), handlers called in-process under moto: message
requests, contacts-only presence/typing/receipts, blocks, leaving, group roles. Refusals
are proven by the effect log (tests/support/effects.py): nothing happened, to anyone;
"nothing arrives" by a sentinel push on the same connection."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from switchboard import aws
from switchboard.dal.conversations import ConversationRepository, SeqConflict, StoredMessage
from switchboard.membership import REFUSED

from tests.integration.conftest import FakeContext, Stack
from tests.integration.test_messaging import Client, new_conversation, send
from tests.integration.test_search import Index
from tests.support.effects import InProcess
from tests.support.events import ws_event


@pytest.fixture(scope="module")
def apps(stack: Stack) -> dict[str, ModuleType]:
    return {
        "message": stack.handler("MessageFunction", CREATE_LIMIT_PER_USER="1000"),
        "connect": stack.handler("ConnectionFunction"),
        "events": stack.handler("ConnectionEventsFunction"),
        "search": stack.handler("SearchFunction"),
        "indexer": stack.handler("SearchIndexerFunction"),
    }


@pytest.fixture
def people(stack: Stack, apps: dict[str, ModuleType]) -> Any:
    def make(*names: str) -> list[Client]:
        tag = uuid.uuid4().hex[:6]
        return [Client(stack, apps["message"], apps["connect"], f"{n}-{tag}") for n in names]

    return make


@pytest.fixture
def operations() -> Iterator[list[str]]:
    """The DynamoDB operations the handlers call, in order (botocore's own hook)."""
    seen: list[str] = []

    def record(event_name: str, **_: Any) -> None:
        seen.append(event_name.rsplit(".", 1)[1])

    client = aws.dynamodb()
    client.meta.events.register("provide-client-params.dynamodb.*", record)
    yield seen
    client.meta.events.unregister("provide-client-params.dynamodb.*", record)


def types(client: Client) -> list[str]:
    return [f["type"] for f in client.frames()]


def refusal(reply: dict[str, Any]) -> tuple[str, str]:
    assert not reply["ok"], reply
    return reply["error"]["code"], reply["error"]["message"]


def sentinel(sender: Client, to: Client, text: str = "sentinel") -> None:
    """A message to ``to`` in their 1:1 with ``sender``: pushes are in order per
    connection, so a frame missing before it never arrived."""
    dm = new_conversation(sender, to)
    send(sender, dm, text)
    assert to.frames("message:new")[-1]["data"]["body"] == text


# ---------------------------------------------------------------------- requests


def test_a_strangers_conversation_is_a_request_until_accepted(people: Any) -> None:
    alice, bob, carol = people("alice", "bob", "carol")
    # When alice, a stranger to bob, starts a conversation and writes
    conversation = new_conversation(alice, bob, accept=False)
    send(alice, conversation, "is the bike still available?")
    # Then bob gets the request and the message, listed under requests only
    [request] = bob.frames("conversation:request")
    assert request["data"]["fromUserId"] == alice.user_id
    assert request["data"]["conversationId"] == conversation
    assert bob.frames("message:new")[-1]["data"]["body"] == "is the bike still available?"
    [listed] = bob.ok("conversation:list", {"folder": "requests"})["conversations"]
    assert listed["request"] is True and listed["pending"] == [bob.user_id]
    assert bob.ok("conversation:list", {})["conversations"] == []
    assert alice.ok("conversation:list", {})["conversations"][0]["request"] is False
    # And until he accepts, neither sees the other's presence, typing or receipts
    assert alice.error("presence:query", {"userIds": [bob.user_id]}) == "forbidden"
    assert bob.error("presence:query", {"userIds": [alice.user_id]}) == "forbidden"
    assert bob.ok("typing:start", {"conversationId": conversation}) == {"sent": False}
    assert bob.ok("message:read", {"conversationId": conversation, "seq": 1})["moved"] is True
    sentinel(carol, alice)
    assert "typing" not in types(alice) and "message:read" not in types(alice)
    assert "message:delivered" not in types(alice)
    # When bob accepts
    assert bob.ok("conversation:accept", {"conversationId": conversation})["changed"] is True
    # Then alice is told, they are contacts, and receipts and typing flow
    accepted = alice.frames("conversation:accepted")
    assert [f["data"] for f in accepted] == [
        # with the receipts held back while it was a request
        {"conversationId": conversation, "userId": bob.user_id, "ackedSeq": 1, "readSeq": 1}
    ]
    assert alice.ok("presence:query", {"userIds": [bob.user_id]})["presence"][0]["online"]
    assert bob.ok("typing:start", {"conversationId": conversation}) == {"sent": True}
    assert alice.frames("typing")[-1]["data"]["userId"] == bob.user_id
    assert bob.ok("conversation:list", {})["conversations"][0]["request"] is False
    assert bob.ok("conversation:accept", {"conversationId": conversation})["changed"] is False


def test_replying_accepts_the_request(people: Any, operations: list[str]) -> None:
    alice, bob = people("alice", "bob")
    conversation = new_conversation(alice, bob, accept=False)
    send(alice, conversation, "hello?")
    operations.clear()
    send(bob, conversation, "hi!")
    # The reply's own transaction moved bob's item to his inbox (no extra write)
    assert operations.count("TransactWriteItems") == 1
    assert "UpdateItem" not in operations and "PutItem" not in operations
    assert alice.frames("conversation:accepted")[-1]["data"]["userId"] == bob.user_id
    assert bob.ok("conversation:list", {"folder": "requests"})["conversations"] == []
    assert alice.ok("presence:query", {"userIds": [bob.user_id]})["presence"]


@pytest.mark.parametrize("action", ["message:ack", "message:read"])
@pytest.mark.parametrize("accepted", ["before", "between the read and the write", "after"])
def test_held_back_receipts_reach_the_sender_however_the_accept_falls(
    people: Any,
    apps: dict[str, ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    action: str,
    accepted: str,
) -> None:
    """Bob acks (or reads) what a stranger's request brought and accepts it: before, after,
    or exactly between his ack's read of the conversation (still a request) and its cursor
    write, as two Lambda invocations can interleave (the test puts the accept there). Alice
    ends up told either way: by conversation:accepted or by the receipt."""
    alice, bob = people("alice", "bob")
    conversation = new_conversation(alice, bob, accept=False)
    for n in (1, 2, 3):
        send(alice, conversation, f"message {n}")
    accept = {"conversationId": conversation}
    repository = apps["message"].service.conversations
    read = repository.get
    racing: list[bool] = []
    raced: list[Any] = []

    def read_then_accept(conversation_id: str) -> Any:
        found = read(conversation_id)
        if not racing:  # once, and not for the accept's own read
            racing.append(True)
            raced.append(bob.ok("conversation:accept", accept))
        return found

    if accepted == "before":
        assert bob.ok("conversation:accept", accept)["changed"] is True
    if accepted == "between the read and the write":
        monkeypatch.setattr(repository, "get", read_then_accept)
    assert bob.ok(action, {"conversationId": conversation, "seq": 3})["moved"] is True
    monkeypatch.undo()
    if accepted == "between the read and the write":
        assert raced == [{"conversationId": conversation, "changed": True}]
    receipt, field = {
        "message:ack": ("message:delivered", "ackedSeq"),
        "message:read": ("message:read", "readSeq"),
    }[action]
    if accepted == "after":
        assert alice.frames(receipt) == []  # held back while it is a request
        assert bob.ok("conversation:accept", accept)["changed"] is True
    # Then alice holds a receipt up to seq 3
    told = [f["data"][field] for f in alice.frames("conversation:accepted")]
    receipts = [f["data"]["seq"] for f in alice.frames(receipt)]
    assert max(told + receipts) == 3, alice.frames()
    if accepted == "between the read and the write":
        # (the accept read bob's cursor before it moved: the receipt is what carries it)
        assert (told, receipts) == ([0], [3])


@pytest.mark.parametrize("action", ["message:ack", "message:read"])
@pytest.mark.parametrize("went", ["declined", "removed"])
def test_no_receipt_from_someone_who_went_while_their_ack_was_in_flight(
    people: Any,
    apps: dict[str, ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    action: str,
    went: str,
) -> None:
    """Bob's device acks (or reads) as he declines a stranger's request, or as a group's
    owner removes him: the decline or removal lands between his ack's read of the
    conversation (bob still a member there) and its cursor write (the test puts it
    there). The cursor moves, on an item that is in no folder any more: no receipt goes.
    A declined requester is never told anything of bob (a decline is silent), and members
    hear nothing more from someone already gone."""
    alice, bob, carol = people("alice", "bob", "carol")
    if went == "declined":
        conversation = new_conversation(alice, bob, accept=False)
    else:
        conversation = new_conversation(alice, bob, carol)
    for n in (1, 2, 3):
        send(alice, conversation, f"message {n}")
    repository = apps["message"].service.conversations
    read = repository.get
    racing: list[bool] = []

    def read_then_go(conversation_id: str) -> Any:
        found = read(conversation_id)
        if not racing:  # once, and not for the decline's or removal's own read
            racing.append(True)
            if went == "declined":
                bob.ok("conversation:decline", {"conversationId": conversation})
            else:
                alice.ok(
                    "conversation:remove-member",
                    {"conversationId": conversation, "userId": bob.user_id},
                )
        return found

    monkeypatch.setattr(repository, "get", read_then_go)
    bob.call(action, {"conversationId": conversation, "seq": 3})
    monkeypatch.undo()
    assert racing == [True]
    # Then nobody hears a receipt from bob (sentinels: pushes are in order per connection)
    sentinel(carol, alice)
    sentinel(alice, carol, "sentinel 2")
    receipt = {"message:ack": "message:delivered", "message:read": "message:read"}[action]
    assert alice.frames(receipt) == [] and carol.frames(receipt) == []


def test_a_request_accepted_while_the_backlog_is_read_is_still_in_it(
    people: Any, apps: dict[str, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bob's device connects to a stranger's request and he accepts it at once: the accept
    lands between the backlog's reads of his two folders (the test puts it there). The
    conversation moved from one to the other, and its messages are pushed all the same,
    once each."""
    alice, bob = people("alice", "bob")
    conversation = new_conversation(alice, bob, accept=False)
    for n in (1, 2, 3):
        send(alice, conversation, f"message {n}")
    live = len(bob.frames("message:new"))  # pushed as they were sent
    repository = apps["events"].events.backlog.conversations
    read = repository.inbox
    folders: list[bool] = []

    def read_then_accept(user_id: str, limit: int, *args: Any, **kwargs: Any) -> Any:
        page = read(user_id, limit, *args, **kwargs)
        folders.append(bool(kwargs.get("requests")))
        if len(folders) == 1:
            bob.ok("conversation:accept", {"conversationId": conversation})
        return page

    monkeypatch.setattr(repository, "inbox", read_then_accept)
    result = apps["events"].events.backlog.deliver(bob.connection_id, bob.user_id, connected_at=0)
    assert len(folders) == 2  # (the accept came between the two reads)
    assert result.pushed == 3
    backlog = [f["data"]["body"] for f in bob.frames("message:new")[live:]]
    assert backlog == ["message 1", "message 2", "message 3"]


def test_a_declined_request_takes_the_decliner_out(people: Any) -> None:
    alice, bob = people("alice", "bob")
    conversation = new_conversation(alice, bob, accept=False)
    send(alice, conversation, "buy my stuff")
    assert bob.ok("conversation:decline", {"conversationId": conversation})["changed"] is True
    assert bob.ok("conversation:list", {"folder": "requests"})["conversations"] == []
    # bob keeps what was delivered; alice's next send is refused as a block's would be
    history = bob.ok("message:history", {"conversationId": conversation})
    assert [m["body"] for m in history["messages"]] == ["buy my stuff"]
    reply = alice.call(
        "message:send", {"conversationId": conversation, "clientMessageId": "x", "body": "hey"}
    )
    assert refusal(reply) == ("forbidden", REFUSED)
    assert bob.ok("conversation:decline", {"conversationId": conversation})["changed"] is False
    # Starting it again is refused too, exactly as it would be after a block
    again = alice.call("conversation:create", {"members": [bob.user_id]})
    assert refusal(again) == ("forbidden", REFUSED)
    # And alice's listing still shows bob, not yet accepting, as before the decline
    [listed] = alice.ok("conversation:list", {})["conversations"]
    assert listed["members"] == sorted([alice.user_id, bob.user_id])
    assert listed["pending"] == [bob.user_id]


def test_refused_requests_and_blocks_look_alike_and_change_nothing(
    people: Any, operations: list[str]
) -> None:
    alice, closed, blocker = people("alice", "closed", "blocker")
    closed.ok("preferences:set", {"acceptRequests": False})
    blocker.ok("user:block", {"userId": alice.user_id})
    assert blocker.ok("user:blocks", {}) == {"userIds": [alice.user_id]}
    seen: dict[str, tuple[tuple[str, str], list[str]]] = {}
    for target in (closed, blocker):
        window = InProcess().window()
        operations.clear()
        reply = alice.call("conversation:create", {"members": [target.user_id]})
        seen[target.user_id] = (refusal(reply), list(operations))
        window.assert_nothing_happened(f"a conversation with {target.user_id}")
    # The same code, message and path (the same reads, in the same order)
    (first, first_path), (second, second_path) = seen.values()
    assert first == second == ("forbidden", REFUSED)
    assert first_path == second_path
    # A group with either of them is refused alike; a contact of theirs is not refused
    for target in (closed, blocker):
        group = alice.call("conversation:create", {"members": [target.user_id, "x-1"]})
        assert refusal(group) == ("forbidden", REFUSED)
    friend = people("friend")[0]
    new_conversation(closed, friend)  # closed started it, friend accepted: contacts now
    assert friend.ok("conversation:create", {"members": [closed.user_id, "x-2"]})["created"]


def test_a_block_refuses_1to1_sends_in_the_sends_own_transaction(
    people: Any, operations: list[str]
) -> None:
    alice, bob, carol = people("alice", "bob", "carol")
    dm = new_conversation(alice, bob)
    group = new_conversation(alice, bob, carol)
    send(alice, dm, "before")
    bob.ok("user:block", {"userId": alice.user_id})
    window = InProcess().window()
    operations.clear()
    reply = alice.call("message:send", {"conversationId": dm, "clientMessageId": "b", "body": "x"})
    assert refusal(reply) == ("forbidden", REFUSED)
    blocked_path = list(operations)
    window.assert_nothing_happened("a send to someone who blocked the sender")
    assert blocked_path == ["GetItem", "TransactWriteItems"]
    # A declined 1:1 refuses on the same path (a read, a refused transaction)
    dave = people("dave")[0]
    declined = new_conversation(alice, dave, accept=False)
    dave.ok("conversation:decline", {"conversationId": declined})
    operations.clear()
    reply = alice.call(
        "message:send", {"conversationId": declined, "clientMessageId": "d", "body": "x"}
    )
    assert refusal(reply) == ("forbidden", REFUSED)
    assert operations == blocked_path
    # In a group the message still goes out (bob's clients hide it); unblocking reopens
    send(alice, group, "in the group")
    assert bob.frames("message:new")[-1]["data"]["body"] == "in the group"
    bob.ok("user:unblock", {"userId": alice.user_id})
    send(alice, dm, "after")
    assert bob.frames("message:new")[-1]["data"]["body"] == "after"


def test_a_block_hides_presence_typing_and_receipts_both_ways(
    stack: Stack, apps: dict[str, ModuleType], people: Any
) -> None:
    alice, bob, carol = people("alice", "bob", "carol")
    dm = new_conversation(alice, bob)
    group = new_conversation(alice, bob, carol)
    send(alice, dm, "hi")
    bob.ok("user:block", {"userId": alice.user_id})
    # alice sees bob as someone who never connected (refusing would tell her of the block)
    [shown] = alice.ok("presence:query", {"userIds": [bob.user_id]})["presence"]
    assert shown == {"userId": bob.user_id, "online": False, "lastSeen": None}
    # Neither one's typing or receipts reach the other; carol's still do
    for who, conversation in ((bob, group), (alice, group)):
        assert who.ok("typing:start", {"conversationId": conversation})["sent"] is True
    bob.ok("message:read", {"conversationId": dm, "seq": 1})
    # And bob's presence announcement reaches carol, not alice
    apps["events"].events.presence.announce(bob.user_id, online=False, last_seen=1)
    sentinel(carol, alice)
    sentinel(alice, carol, "sentinel 2")
    assert [f["data"]["userId"] for f in alice.frames("typing")] == []
    assert "message:read" not in types(alice)
    assert not [f for f in alice.frames("presence") if f["data"]["userId"] == bob.user_id]
    assert [f["data"]["userId"] for f in carol.frames("typing")] == [bob.user_id, alice.user_id]
    assert [f["data"]["userId"] for f in carol.frames("presence")] == [bob.user_id]
    assert [f["data"]["userId"] for f in bob.frames("typing")] == []


def test_calls_ring_only_contacts_who_did_not_block_the_caller(
    stack: Stack, apps: dict[str, ModuleType], people: Any
) -> None:
    signaling = stack.handler("SignalingFunction", RING_TIMEOUT_SECONDS="0")
    alice, bob, stranger = people("alice", "bob", "stranger")
    new_conversation(alice, bob)
    caller = Client(stack, signaling, apps["connect"], alice.user_id)
    offer = {"type": "offer", "sdp": "v=0\r\n"}
    replies = {}
    bob.ok("user:block", {"userId": alice.user_id})
    for callee in (stranger, bob):
        window = InProcess().window()
        replies[callee.user_id] = refusal(
            caller.call(
                "call:initiate", {"calleeId": callee.user_id, "media": "audio", "offer": offer}
            )
        )
        window.assert_nothing_happened(f"a call to {callee.user_id}")
    assert set(replies.values()) == {("forbidden", REFUSED)}
    bob.ok("user:unblock", {"userId": alice.user_id})
    started = caller.ok(
        "call:initiate", {"calleeId": bob.user_id, "media": "audio", "offer": offer}
    )
    assert bob.frames("call:incoming")[-1]["data"]["callId"] == started["callId"]


# ---------------------------------------------------------------------- leaving


def test_a_leaver_keeps_history_up_to_the_leave_and_gets_nothing_after(
    stack: Stack, apps: dict[str, ModuleType], people: Any
) -> None:
    alice, bob, carol = people("alice", "bob", "carol")
    index = Index(stack, apps["indexer"])
    group = new_conversation(alice, bob, carol, title="bikes")
    send(alice, group, "before apples")
    index.catch_up()  # (indexed while bob is a member, as within seconds in production)
    # When bob leaves
    left = bob.ok("conversation:leave", {"conversationId": group})
    assert left["seq"] == 2 and left["members"] == sorted([alice.user_id, carol.user_id])
    # Then the others get the system entry ("bob left"), in the seq stream
    for other in (alice, carol):
        entry = other.frames("message:new")[-1]["data"]
        assert entry["seq"] == 2 and entry["body"] == ""
        assert entry["system"] == {"kind": "left", "by": bob.user_id, "userIds": [bob.user_id]}
    # And bob gets nothing more: no push, no listing, no presence
    frames_before = len(bob.frames())
    messages_before = len(bob.frames("message:new"))
    send(alice, group, "after apples")
    alice.ok("typing:start", {"conversationId": group})
    sentinel(carol, bob)
    assert [f["data"]["body"] for f in bob.frames("message:new")[messages_before:]] == ["sentinel"]
    assert "typing" not in types(bob)[frames_before:]
    assert group not in [
        c["conversationId"] for c in bob.ok("conversation:list", {})["conversations"]
    ]
    # His history, sync and search stop at his leave entry
    history = bob.ok("message:history", {"conversationId": group})
    assert [m["seq"] for m in history["messages"]] == [1, 2] and history["lastSeq"] == 2
    synced = bob.ok("message:sync", {"cursors": {group: 0}})["conversations"][group]
    assert [m["seq"] for m in synced["messages"]] == [1, 2] and synced["lastSeq"] == 2
    # He may no longer send or type there: not_found, as for a stranger (a send reads the
    # conversation alone, which cannot tell a former member from one who never was)
    assert (
        bob.error("message:send", {"conversationId": group, "clientMessageId": "z", "body": "x"})
        == "not_found"
    )
    assert bob.error("typing:start", {"conversationId": group}) == "not_found"
    # (search, in the conversation or in his own scope: the same bound)
    index.catch_up()
    for who, seqs in ((bob, [1]), (alice, [3, 1])):
        searcher = Client(stack, apps["search"], apps["connect"], who.user_id)
        for scope in ({"conversationId": group}, {}):
            hits = searcher.ok("message:search", {"query": "apples", **scope})["hits"]
            assert [h["seq"] for h in hits] == seqs, (who.user_id, scope)
    # And the others see the history tell the story
    full = alice.ok("message:history", {"conversationId": group})["messages"]
    assert [m.get("system", {}).get("kind") for m in full] == [None, "left", None]


def test_a_send_racing_a_leave_is_ordered_by_the_seq_condition(stack: Stack, people: Any) -> None:
    alice, bob, carol = people("alice", "bob", "carol")
    group = new_conversation(alice, bob, carol)
    repository = ConversationRepository(
        stack.table("ConversationsTable"), stack.table("MessagesTable")
    )
    stale = repository.get(group)
    assert stale is not None and bob.user_id in stale.members
    bob.ok("conversation:leave", {"conversationId": group})
    # A send that read the members before the leave cannot land after it
    message = StoredMessage(group, stale.last_seq + 1, "m", alice.user_id, "late", 1, "late")
    with pytest.raises(SeqConflict):
        repository.append(stale, message)
    # The real send reads again: bob is not among its recipients
    send(alice, group, "late")
    assert "late" not in [f["data"]["body"] for f in bob.frames("message:new")]


def test_the_owner_hands_over_when_leaving(people: Any) -> None:
    alice, bob, carol = people("alice", "bob", "carol")
    group = new_conversation(alice, bob, carol)
    alice.ok(
        "conversation:set-role", {"conversationId": group, "userId": carol.user_id, "role": "admin"}
    )
    alice.ok("conversation:leave", {"conversationId": group})
    entry = bob.frames("message:new")[-1]["data"]["system"]
    assert entry == {
        "kind": "left",
        "by": alice.user_id,
        "userIds": [alice.user_id],
        "owner": carol.user_id,
    }
    [summary] = carol.ok("conversation:list", {})["conversations"]
    assert summary["roles"] == {carol.user_id: "owner"}
    assert carol.ok("conversation:set-title", {"conversationId": group, "title": "ours"})["seq"]


def test_a_1to1_conversation_cannot_be_left(people: Any) -> None:
    alice, bob = people("alice", "bob")
    dm = new_conversation(alice, bob)
    window = InProcess().window()
    assert alice.error("conversation:leave", {"conversationId": dm}) == "bad_request"
    window.assert_nothing_happened("leaving a 1:1 conversation")


# ---------------------------------------------------------------------- groups


def test_owners_and_admins_manage_members_and_every_change_is_an_entry(
    stack: Stack, apps: dict[str, ModuleType], people: Any
) -> None:
    alice, bob, carol, dave, erin = people("alice", "bob", "carol", "dave", "erin")
    group = new_conversation(alice, bob, carol)
    new_conversation(alice, dave)  # dave is alice's contact
    requests_before = len(dave.frames("conversation:request"))
    # A plain member may not add or remove (nothing happens)
    window = InProcess().window()
    assert (
        bob.error("conversation:add-members", {"conversationId": group, "members": [erin.user_id]})
        == "forbidden"
    )
    assert (
        bob.error("conversation:remove-member", {"conversationId": group, "userId": carol.user_id})
        == "forbidden"
    )
    assert (
        bob.error(
            "conversation:set-role",
            {"conversationId": group, "userId": carol.user_id, "role": "admin"},
        )
        == "forbidden"
    )
    window.assert_nothing_happened("membership changes by a plain member")
    # The owner adds a contact and a stranger: an invitation for both (joining a group
    # makes its members one's contacts, so a contact cannot do that for dave either)
    added = alice.ok(
        "conversation:add-members",
        {"conversationId": group, "members": [dave.user_id, erin.user_id]},
    )
    assert set(added["members"]) == {
        alice.user_id,
        bob.user_id,
        carol.user_id,
        dave.user_id,
        erin.user_id,
    }
    for invited in (dave, erin):
        assert invited.frames("conversation:request")[-1]["data"]["conversationId"] == group
        requests = invited.ok("conversation:list", {"folder": "requests"})["conversations"]
        assert [(c["conversationId"], c["request"]) for c in requests] == [(group, True)]
    assert len(dave.frames("conversation:request")) == requests_before + 1
    assert dave.frames("message:new")[-1]["data"]["system"]["kind"] == "added"
    # Until dave accepts, he cannot be made an admin; then he can
    assert (
        alice.error(
            "conversation:set-role",
            {"conversationId": group, "userId": dave.user_id, "role": "admin"},
        )
        == "bad_request"
    )
    dave.ok("conversation:accept", {"conversationId": group})
    assert group in [c["conversationId"] for c in dave.ok("conversation:list", {})["conversations"]]
    # An admin removes a plain member, who stops receiving at once
    alice.ok(
        "conversation:set-role", {"conversationId": group, "userId": bob.user_id, "role": "admin"}
    )
    bob.ok("conversation:remove-member", {"conversationId": group, "userId": carol.user_id})
    removal = carol.frames("message:new")[-1]["data"]
    assert removal["system"] == {"kind": "removed", "by": bob.user_id, "userIds": [carol.user_id]}
    count = len(carol.frames("message:new"))
    send(alice, group, "carol is gone")
    sentinel(dave, carol)
    assert [f["data"]["body"] for f in carol.frames("message:new")[count:]] == ["sentinel"]
    # An admin may not remove the owner, nor another admin; the owner may
    assert (
        bob.error("conversation:remove-member", {"conversationId": group, "userId": alice.user_id})
        == "forbidden"
    )
    alice.ok(
        "conversation:set-role", {"conversationId": group, "userId": dave.user_id, "role": "admin"}
    )
    assert (
        bob.error("conversation:remove-member", {"conversationId": group, "userId": dave.user_id})
        == "forbidden"
    )
    alice.ok("conversation:remove-member", {"conversationId": group, "userId": dave.user_id})
    # The history tells the story
    kinds = [
        (m["system"]["kind"] if "system" in m else "text")
        for m in alice.ok("message:history", {"conversationId": group})["messages"]
    ]
    assert kinds == ["added", "role", "removed", "text", "role", "removed"]


def test_the_member_cap_holds_for_adds(
    stack: Stack, apps: dict[str, ModuleType], people: Any
) -> None:
    alice, bob, carol = people("alice", "bob", "carol")
    group = new_conversation(alice, bob, carol)
    window = InProcess().window()
    many = [f"x{i}-{uuid.uuid4().hex[:4]}" for i in range(48)]
    assert (
        alice.error("conversation:add-members", {"conversationId": group, "members": many})
        == "bad_request"
    )
    window.assert_nothing_happened("an add past the member cap")
    assert alice.ok("conversation:add-members", {"conversationId": group, "members": many[:47]})[
        "members"
    ]


def test_requests_per_day_are_capped(stack: Stack, apps: dict[str, ModuleType]) -> None:
    message = stack.handler("MessageFunction", CREATE_LIMIT_PER_USER="1000")
    message.service.limits = type(message.service.limits)(requests_per_day=2, creates_per_user=1000)
    spammer = Client(stack, message, apps["connect"], f"spammer-{uuid.uuid4().hex[:6]}")
    for i in range(2):
        spammer.ok("conversation:create", {"members": [f"victim{i}-{uuid.uuid4().hex[:4]}"]})
    window = InProcess().window()
    assert spammer.error("conversation:create", {"members": ["victim-last"]}) == "rate_limited"
    window.assert_nothing_happened("a request past the daily cap")


def test_a_disconnected_leaver_gets_no_notification(
    stack: Stack, apps: dict[str, ModuleType], people: Any
) -> None:
    alice, bob, carol = people("alice", "bob", "carol")
    group = new_conversation(alice, bob, carol)
    bob.ok("conversation:leave", {"conversationId": group})
    apps["connect"].lambda_handler(
        ws_event("$disconnect", connection_id=bob.connection_id, user_id=bob.user_id), FakeContext()
    )
    window = InProcess().window()
    send(alice, group, "anyone?")
    jobs = [
        e
        for e in window.effects()
        if e["service"] == "sqs" and bob.user_id in str(e.get("detail", ""))
    ]
    assert jobs == []
    queued = [e for e in window.effects() if e["service"] == "sqs"]
    assert queued == [], queued  # carol is online, bob is no member: nobody to notify


def test_a_contact_cannot_make_strangers_your_contacts_nor_pull_you_back_into_a_group(
    stack: Stack, apps: dict[str, ModuleType], people: Any
) -> None:
    alice, bob, mallory = people("alice", "bob", "mallory")
    new_conversation(alice, bob)  # alice and bob are contacts; mallory is a stranger to bob
    # Alice puts bob into a group with mallory: an invitation for bob, not a membership
    group = alice.ok("conversation:create", {"members": [bob.user_id, mallory.user_id]})[
        "conversationId"
    ]
    mallory.ok("conversation:accept", {"conversationId": group})
    assert bob.frames("conversation:request")[-1]["data"]["conversationId"] == group
    # ... so mallory sees none of bob's presence, and cannot ring him through the group
    window = InProcess().window()
    assert mallory.error("presence:query", {"userIds": [bob.user_id]}) == "forbidden"
    window.assert_nothing_happened("presence:query of an invitee who has not accepted")
    # Bob accepts: now they share an accepted conversation, by his own choice
    bob.ok("conversation:accept", {"conversationId": group})
    assert [
        p["userId"] for p in mallory.ok("presence:query", {"userIds": [bob.user_id]})["presence"]
    ] == [bob.user_id]
    # Bob leaves; alice (a contact) adds him back: an invitation again, not a membership
    bob.ok("conversation:leave", {"conversationId": group})
    requests = len(bob.frames("conversation:request"))
    alice.ok("conversation:add-members", {"conversationId": group, "members": [bob.user_id]})
    assert len(bob.frames("conversation:request")) == requests + 1
    listed = bob.ok("conversation:list", {"folder": "requests"})["conversations"]
    assert [(c["conversationId"], c["request"]) for c in listed] == [(group, True)]
    assert mallory.error("presence:query", {"userIds": [bob.user_id]}) == "forbidden"


def test_title_role_and_remove_changes_are_rate_limited(
    stack: Stack, apps: dict[str, ModuleType], people: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob, carol = people("alice", "bob", "carol")
    group = new_conversation(alice, bob, carol)
    # One rate window for the whole test: a minute boundary between the changes reset the
    # count (the 11th change was accepted in one full run)
    now = time.time()
    monkeypatch.setattr(apps["message"].membership, "_clock", lambda: now)
    limit = apps["message"].membership.limits.manages_per_minute
    for i in range(limit):
        alice.ok("conversation:set-title", {"conversationId": group, "title": f"t{i}"})
    # One more, of any kind, is refused with a retry hint, and nothing happens to anyone
    window = InProcess().window()
    for action, data in (
        ("conversation:set-title", {"conversationId": group, "title": "spam"}),
        (
            "conversation:set-role",
            {"conversationId": group, "userId": bob.user_id, "role": "admin"},
        ),
        ("conversation:remove-member", {"conversationId": group, "userId": carol.user_id}),
    ):
        reply = alice.call(action, data)
        assert reply["error"]["code"] == "rate_limited", reply
        assert reply["error"]["details"]["retryAfterMs"] > 0
    window.assert_nothing_happened("membership changes past the rate limit")
    # Leaving is never limited
    bob.ok("conversation:leave", {"conversationId": group})


def test_block_list_changes_are_rate_limited(
    apps: dict[str, ModuleType], people: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A block list lives on its owner's Users item (up to 1,000 ids of up to 128
    characters): each change rewrites the whole item, ~130 write units when it is full, so
    toggling one block in a loop was a write amplifier with no limit."""
    (mallory,) = people("mallory")
    now = time.time()  # one rate window for the whole test
    monkeypatch.setattr(apps["message"].membership, "_clock", lambda: now)
    limit = apps["message"].membership.limits.block_changes_per_minute
    for i in range(limit // 2):
        mallory.ok("user:block", {"userId": "x" * 100 + str(i)})
        mallory.ok("user:unblock", {"userId": "x" * 100 + str(i)})
    # One more change of either kind is refused with a retry hint, and changes nothing
    window = InProcess().window()
    for action in ("user:block", "user:unblock"):
        reply = mallory.call(action, {"userId": "x" * 100})
        assert reply["error"]["code"] == "rate_limited", reply
        assert reply["error"]["details"]["retryAfterMs"] > 0
    window.assert_nothing_happened("block list changes past the rate limit")
    assert mallory.ok("user:blocks", {}) == {"userIds": []}
