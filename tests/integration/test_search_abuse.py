"""An attacker's findings against the document search index, each a test that failed on
the code before its fix (docs/security.md has a row for each)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from types import ModuleType

import pytest
from switchboard import aws

from bench.counting import CallCounter
from tests.integration.conftest import Stack
from tests.integration.test_messaging import Client, new_conversation, send
from tests.integration.test_search import Index


@pytest.fixture(scope="module")
def apps(stack: Stack) -> dict[str, ModuleType]:
    return {
        "message": stack.handler("MessageFunction", CREATE_LIMIT_PER_USER="1000"),
        "connect": stack.handler("ConnectionFunction"),
        "search": stack.handler("SearchFunction", SEARCH_DOCUMENTS_PER_READ="2"),
        "indexer": stack.handler("SearchIndexerFunction"),
    }


def people(stack: Stack, apps: dict[str, ModuleType], *names: str) -> list[Client]:
    tag = uuid.uuid4().hex[:6]
    return [Client(stack, apps["message"], apps["connect"], f"{n}-{tag}") for n in names]


def searcher(stack: Stack, apps: dict[str, ModuleType], user: Client) -> Client:
    return Client(stack, apps["search"], apps["connect"], user.user_id)


def scope_documents(stack: Stack, user: Client) -> list[str]:
    items = aws.dynamodb().query(
        TableName=stack.table("SearchIndexTable"),
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"u#{user.user_id}"}},
    )["Items"]
    return [item["d"]["S"] for item in items]


def test_a_former_member_never_finds_an_edit_made_after_they_left(
    stack: Stack, apps: dict[str, ModuleType]
) -> None:
    alice, bob, carol = people(stack, apps, "alice", "bob", "carol")
    index = Index(stack, apps["indexer"])
    group = new_conversation(alice, bob, carol, title="plans")
    send(alice, group, "meet at the usual place")
    index.catch_up()
    bob.ok("conversation:leave", {"conversationId": group})
    time.sleep(0.01)  # the edit's editedAt is after bob's leftAt (ms)
    alice.ok(
        "message:edit",
        {"conversationId": group, "seq": 1, "body": "meet at the usual place, door code kumquat"},
    )
    index.catch_up()
    # history withholds the late edit from bob (message_ops.as_left), and so does search,
    # through the conversation's scope and through his own
    history = bob.ok("message:history", {"conversationId": group})["messages"]
    assert "kumquat" not in json.dumps(history)
    for scope in ({"conversationId": group}, {}):
        for query in ("kumquat", "usual place"):
            reply = searcher(stack, apps, bob).ok("message:search", {"query": query, **scope})
            assert "kumquat" not in json.dumps(reply["hits"]), (scope, query, reply["hits"])
    # while carol, still a member, finds it
    found = searcher(stack, apps, carol).ok("message:search", {"query": "kumquat"})["hits"]
    assert [(h["conversationId"], h["seq"]) for h in found] == [(group, 1)]


def test_a_former_members_cursor_reveals_nothing_sent_after_they_left(
    stack: Stack, apps: dict[str, ModuleType]
) -> None:
    alice, bob, carol = people(stack, apps, "alice", "bob", "carol")
    index = Index(stack, apps["indexer"])
    group = new_conversation(alice, bob, carol, title="plans")
    send(alice, group, "hello everyone")
    bob.ok("conversation:leave", {"conversationId": group})
    left_seq = 2  # the message, then bob's leave
    for n in range(12):
        send(alice, group, f"later news number {n}")
    index.catch_up()
    search = searcher(stack, apps, bob)
    reply = search.ok("message:search", {"query": "hello", "conversationId": group})
    # the one message he had is found in the first window read (nothing newer is read)
    assert [h["seq"] for h in reply["hits"]] == [1]
    reply = search.ok("message:search", {"query": "zzzzz ", "conversationId": group})
    assert reply["hits"] == []
    cursor = reply["cursor"]
    while cursor:
        before, _offset, _digest = json.loads(base64.urlsafe_b64decode(cursor))
        seq = int(before.rstrip("~").rsplit("#", 1)[1])
        assert seq <= left_seq, f"the cursor names seq {seq} > leftSeq {left_seq}: {before}"
        cursor = search.ok(
            "message:search", {"query": "zzzzz ", "conversationId": group, "cursor": cursor}
        )["cursor"]


def test_stale_candidates_cost_a_bounded_number_of_fetches(
    stack: Stack, apps: dict[str, ModuleType]
) -> None:
    # 30 indexed messages deleted before the indexer caught up: 30 stale candidates. At
    # limit 1 each used to cost its own BatchGetItem; the rounds are bounded, and the
    # cursor goes on from where they stopped.
    search_app = stack.handler("SearchFunction", SEARCH_DOCUMENTS_PER_READ="30")
    alice, bob = people(stack, apps, "alice", "bob")
    index = Index(stack, apps["indexer"])
    conversation = new_conversation(alice, bob)
    for n in range(30):
        send(alice, conversation, f"rhubarb {n}")
    index.catch_up()
    for seq in range(1, 31):
        alice.ok("message:delete", {"conversationId": conversation, "seq": seq})
    client = Client(stack, search_app, apps["connect"], alice.user_id)
    counter = CallCounter().watch(aws.dynamodb())
    try:
        reply = client.ok("message:search", {"query": "rhubarb", "limit": 1})
    finally:
        counter.close()
    assert reply["hits"] == []
    assert counter.calls["dynamodb.BatchGetItem"] <= 3, counter.calls
    assert reply["cursor"] is not None  # the rest is for the next request


def test_a_stem_that_is_no_word_matches_no_prefix(
    stack: Stack, apps: dict[str, ModuleType]
) -> None:
    alice, bob = people(stack, apps, "alice", "bob")
    index = Index(stack, apps["indexer"])
    conversation = new_conversation(alice, bob)
    for n in range(5):
        send(alice, conversation, f"dying {n}")
    index.catch_up()
    counter = CallCounter().watch(aws.dynamodb())
    try:
        reply = searcher(stack, apps, alice).ok("message:search", {"query": "di", "limit": 1})
    finally:
        counter.close()
    assert reply["hits"] == []
    assert counter.calls.get("dynamodb.BatchGetItem", 0) == 0, counter.calls  # no candidate


def test_a_strangers_request_cannot_bury_a_contacts_message(
    stack: Stack, apps: dict[str, ModuleType]
) -> None:
    alice, bob, mallory = people(stack, apps, "alice", "bob", "mallory")
    index = Index(stack, apps["indexer"])
    contact = new_conversation(alice, bob)
    send(bob, contact, "the invoice is attached")
    # a stranger's message request (alice never accepts it): 4 windows of 2 documents
    spam = new_conversation(mallory, alice, accept=False)
    for n in range(8):
        send(mallory, spam, f"buy cheap watches, invoice {n}")
    index.catch_up()
    assert not any("watch" in d for d in scope_documents(stack, alice))
    reply = searcher(stack, apps, alice).ok("message:search", {"query": "invoice "})
    assert [h["conversationId"] for h in reply["hits"]] == [contact], reply
    # naming the request still searches it (its own scope), and mallory finds his own
    named = searcher(stack, apps, alice).ok(
        "message:search", {"query": "watches", "conversationId": spam}
    )
    assert len(named["hits"]) == 2 or named["cursor"]  # windows of 2
    assert searcher(stack, apps, mallory).ok("message:search", {"query": "watches"})["hits"]


def test_a_deleted_message_leaves_no_words_in_any_scope(
    stack: Stack, apps: dict[str, ModuleType]
) -> None:
    alice, bob, carol = people(stack, apps, "alice", "bob", "carol")
    index = Index(stack, apps["indexer"])
    group = new_conversation(alice, bob, carol, title="plans")
    send(alice, group, "my home address is 12 marigold lane")
    index.catch_up()
    assert any("marigold" in d for d in scope_documents(stack, bob))
    bob.ok("conversation:leave", {"conversationId": group})
    alice.ok("message:delete", {"conversationId": group, "seq": 1})
    index.catch_up()
    for user in (alice, bob, carol):
        assert not any("marigold" in d for d in scope_documents(stack, user)), user.user_id
