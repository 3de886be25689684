"""message:search under moto: messages sent through the message function, their Messages
stream records fed to the real indexer handler, searches through the search handler.

Privacy is checked by what a search does NOT return (a non-member never sees a hit of a
conversation it is not in, even for a word only that conversation contains) and by
what a refused search did not touch; edits, tombstones and removals by the stream's
MODIFY/REMOVE records; the cost bound by counting the AWS calls of hostile queries.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from switchboard.dal.conversations import Conversation, ConversationRepository, StoredMessage
from switchboard.search.index import postings_of

from bench.counting import CallCounter
from tests.integration.conftest import FakeContext, Stack
from tests.integration.test_analytics import StreamTap
from tests.integration.test_messaging import Client, new_conversation, send
from tests.support.events import frame, ws_event


class Searcher:
    """The search function as one user's connection calls it."""

    def __init__(self, app: ModuleType, client: Client) -> None:
        self.app, self.client = app, client

    def call(self, data: dict[str, Any]) -> dict[str, Any]:
        event = ws_event(
            "message:search",
            body=frame("message:search", data),
            connection_id=self.client.connection_id,
            user_id=self.client.user_id,
        )
        reply: dict[str, Any] = json.loads(self.app.lambda_handler(event, FakeContext())["body"])
        return reply

    def hits(self, query: str, **extra: Any) -> list[dict[str, Any]]:
        reply = self.call({"query": query, **extra})
        assert reply["ok"], reply
        hits: list[dict[str, Any]] = reply["data"]["hits"]
        return hits

    def seqs(self, query: str, **extra: Any) -> list[tuple[str, int]]:
        return [(h["conversationId"], h["seq"]) for h in self.hits(query, **extra)]


class Index:
    """Feeds the Messages stream's new records to the indexer handler."""

    def __init__(self, stack: Stack, indexer: ModuleType) -> None:
        self.tap = StreamTap(stack, ("MessagesTable",))
        self.indexer = indexer

    def catch_up(self) -> None:
        records = self.tap.new_records()
        self.tap.seen |= {r["eventID"] for r in records}
        for start in range(0, len(records), 100):
            self.indexer.lambda_handler({"Records": records[start : start + 100]}, FakeContext())


@pytest.fixture(scope="module")
def apps(stack: Stack) -> dict[str, ModuleType]:
    return {
        "message": stack.handler("MessageFunction"),
        "connect": stack.handler("ConnectionFunction"),
        "search": stack.handler("SearchFunction"),
        "indexer": stack.handler("SearchIndexerFunction"),
    }


@pytest.fixture
def world(stack: Stack, apps: dict[str, ModuleType]) -> Iterator[Any]:
    tag = uuid.uuid4().hex[:6]

    def person(name: str) -> Client:
        return Client(stack, apps["message"], apps["connect"], f"{name}-{tag}")

    index = Index(stack, apps["indexer"])
    yield person, index, (lambda c: Searcher(apps["search"], c))


def test_a_member_finds_words_with_stemming_diacritics_and_case(world: Any) -> None:
    person, index, searcher = world
    alice, bob = person("alice"), person("bob")
    conversation = new_conversation(alice, bob)
    send(alice, conversation, "Is the bike still available?")
    send(bob, conversation, "Yes! I was RIDING it to the Café yesterday")
    send(alice, conversation, "great, what is the address")
    index.catch_up()
    for user in (alice, bob):
        search = searcher(user)
        assert search.seqs("bikes ") == [(conversation, 1)]
        assert search.seqs("ride ") == [(conversation, 2)]
        assert search.seqs("CAFE ") == [(conversation, 2)]
        assert search.seqs("addresses ") == [(conversation, 3)]
    hit = searcher(bob).hits("riding ")[0]
    assert hit["senderId"] == bob.user_id
    assert hit["messageId"] and hit["createdAt"] > 0
    start, end = hit["highlights"][0]
    assert hit["snippet"][start:end] == "RIDING"


def test_a_non_member_never_sees_a_hit(world: Any, stack: Stack) -> None:
    person, index, searcher = world
    alice, bob, mallory = person("alice"), person("bob"), person("mallory")
    secret = f"zebra{uuid.uuid4().hex[:8]}"  # a word only alice's conversation contains
    conversation = new_conversation(alice, bob)
    send(alice, conversation, f"the {secret} code is 1234")
    own = new_conversation(mallory, person("trent"))
    send(mallory, own, f"{secret} what? (in mallory's own conversation)")
    index.catch_up()
    assert searcher(alice).seqs(secret + " ") == [(conversation, 1)]
    # mallory finds her own message and never alice's: not by a global search, not by the
    # prefix, and a search naming alice's conversation is refused before any index read.
    assert searcher(mallory).seqs(secret + " ") == [(own, 1)]
    assert searcher(mallory).seqs(secret[:6]) == [(own, 1)]
    counter = CallCounter().watch(apps_client(stack))
    try:
        reply = searcher(mallory).call({"query": secret, "conversationId": conversation})
    finally:
        counter.close()
    # (not_found, as for a conversation that does not exist: the refusal tells her nothing)
    assert not reply["ok"] and reply["error"]["code"] == "not_found"
    assert counter.calls["dynamodb.Query"] == 0
    assert counter.calls["dynamodb.UpdateItem"] == 0  # not even counted: nothing changed
    assert counter.calls["dynamodb.BatchGetItem"] == 0
    stranger = person("stranger")
    assert searcher(stranger).hits(secret) == []


def apps_client(stack: Stack) -> Any:
    from switchboard import aws

    return aws.dynamodb()


def test_conversation_scope_phrases_prefixes_and_attachments(world: Any, stack: Stack) -> None:
    person, index, searcher = world
    alice, bob = person("alice"), person("bob")
    conversation = new_conversation(alice, bob)
    other = new_conversation(alice, person("carol"))
    send(alice, conversation, "the red bike is the one from the photo")
    send(alice, conversation, "a bike, red as a fire truck")
    send(alice, other, "the red bike in the other chat")
    # An attachment's file name: stored as message:send stores it (the upload's own name).
    repo = ConversationRepository(stack.table("ConversationsTable"), stack.table("MessagesTable"))
    current = repo.get(conversation)
    assert current is not None
    repo.append(
        current,
        StoredMessage(
            conversation_id=conversation,
            seq=current.last_seq + 1,
            message_id=uuid.uuid4().hex,
            sender_id=bob.user_id,
            body="here you go",
            created_at=current.last_activity_at + 1,
            client_message_id=uuid.uuid4().hex,
            attachments=[{"uploadId": "u1", "fileName": "Invoice_March-2026.pdf"}],
        ),
    )
    index.catch_up()
    search = searcher(alice)
    assert set(search.seqs('"red bike"')) == {(conversation, 1), (other, 1)}
    assert search.seqs('"red bike"', conversationId=conversation) == [(conversation, 1)]
    assert set(search.seqs("red bike ", conversationId=conversation)) == {
        (conversation, 1),
        (conversation, 2),
    }
    assert search.seqs("phot") == [(conversation, 1)]  # the last word as a prefix
    assert search.seqs("phot ") == []  # ... unless it was finished with a space
    [hit] = search.hits("invoices march")
    assert (hit["conversationId"], hit["seq"], hit["field"]) == (conversation, 3, "attachment")
    assert [hit["snippet"][s:e] for s, e in hit["highlights"]] == ["Invoice", "March"]


def test_edits_reindex_and_deletes_vanish(world: Any, stack: Stack) -> None:
    person, index, searcher = world
    alice, bob = person("alice"), person("bob")
    conversation = new_conversation(alice, bob)
    send(alice, conversation, "meet at the harbour")
    send(alice, conversation, "bring the kayak")
    send(alice, conversation, "and the paddles")
    index.catch_up()
    search = searcher(bob)
    assert search.seqs("harbour") == [(conversation, 1)]
    ddb, table = stack.client("dynamodb"), stack.table("MessagesTable")

    def key(seq: int) -> dict[str, Any]:
        return {"conversationId": {"S": conversation}, "seq": {"N": str(seq)}}

    # An edit (MODIFY with a new body), a tombstone (MODIFY with deleted) and a REMOVE.
    ddb.update_item(
        TableName=table,
        Key=key(1),
        UpdateExpression="SET body = :b",
        ExpressionAttributeValues={":b": {"S": "meet at the lighthouse"}},
    )
    ddb.update_item(
        TableName=table,
        Key=key(2),
        UpdateExpression="SET deleted = :t REMOVE body",
        ExpressionAttributeValues={":t": {"BOOL": True}},
    )
    ddb.delete_item(TableName=table, Key=key(3))
    # Before the indexer has seen the changes, search already hides what the stored
    # messages no longer say (each hit is checked against the current text).
    assert search.seqs("harbour") == []
    assert search.seqs("kayak") == []
    index.catch_up()
    assert search.seqs("lighthouse") == [(conversation, 1)]
    for word in ("harbour", "kayak", "paddles"):
        assert search.seqs(word) == [], word
    # ... and the documents themselves are gone from every scope: only the edited one is
    # left, with the new text's terms.
    for scope in (f"u#{bob.user_id}", f"u#{alice.user_id}", f"c#{conversation}"):
        documents = ddb.query(
            TableName=stack.table("SearchIndexTable"),
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": scope}},
        )["Items"]
        assert [postings_of(d)[0].seq for d in documents] == [1], scope
        assert {p.term for p in postings_of(documents[0])} == {"meet", "lighthous"}


def test_a_change_that_leaves_the_text_alone_writes_nothing(world: Any, stack: Stack) -> None:
    person, index, searcher = world
    alice, bob = person("alice"), person("bob")
    conversation = new_conversation(alice, bob)
    send(alice, conversation, "the canoe is blue")
    index.catch_up()
    ddb = stack.client("dynamodb")
    # A change of the message item that is not its text (a reaction, a read marker)
    ddb.update_item(
        TableName=stack.table("MessagesTable"),
        Key={"conversationId": {"S": conversation}, "seq": {"N": "1"}},
        UpdateExpression="SET reactionCount = :n",
        ExpressionAttributeValues={":n": {"N": "1"}},
    )
    records = index.tap.new_records()
    index.tap.seen |= {r["eventID"] for r in records}
    assert [r["eventName"] for r in records] == ["MODIFY"]
    counter = CallCounter().watch(apps_client(stack))
    try:
        index.indexer.lambda_handler({"Records": records}, FakeContext())
    finally:
        counter.close()
    assert counter.calls["dynamodb.BatchWriteItem"] == 0
    assert searcher(bob).seqs("canoe") == [(conversation, 1)]


def test_replayed_stream_batches_leave_the_same_index(world: Any, stack: Stack) -> None:
    person, index, searcher = world
    alice, bob = person("alice"), person("bob")
    conversation = new_conversation(alice, bob)
    send(alice, conversation, "umbrella for sale")
    records = index.tap.new_records()
    index.tap.seen |= {r["eventID"] for r in records}
    for _ in range(3):  # Lambda may deliver a batch more than once
        index.indexer.lambda_handler({"Records": records}, FakeContext())
    assert searcher(bob).seqs("umbrellas") == [(conversation, 1)]


def test_search_is_rate_limited_and_a_refused_search_reads_nothing(
    stack: Stack, apps: dict[str, ModuleType]
) -> None:
    # A fixed window aligned to the epoch that cannot end mid-test (10 s ones can, under load)
    limited = stack.handler(
        "SearchFunction", SEARCH_LIMIT_PER_USER="2", RATE_WINDOW_SECONDS=str(10**9)
    )
    client = Client(stack, apps["message"], apps["connect"], f"rl-{uuid.uuid4().hex[:6]}")
    search = Searcher(limited, client)
    assert search.call({"query": "one"})["ok"]
    assert search.call({"query": "two"})["ok"]
    counter = CallCounter().watch(apps_client(stack))
    try:
        reply = search.call({"query": "three"})
    finally:
        counter.close()
    assert reply["error"]["code"] == "rate_limited"
    assert reply["error"]["details"]["retryAfterMs"] > 0
    assert counter.calls["dynamodb.Query"] == 0


@pytest.mark.parametrize(
    "query",
    [
        "alpha bravo charlie delta echo foxtrot golf hotel",  # the most words allowed
        'alpha "bravo charlie delta" echo foxtrot golf runni',  # phrase + a prefix word
        "a" * 200,
    ],
)
def test_a_hostile_query_costs_at_most_its_bound(world: Any, stack: Stack, query: str) -> None:
    person, _index, searcher = world
    search = searcher(person("hostile"))
    counter = CallCounter().watch(apps_client(stack))
    try:
        reply = search.call({"query": query, "limit": 50})
    finally:
        counter.close()
    assert reply["ok"], reply
    # 1 rate-limit update + at most 4 windows of documents (1 Query each, whatever the
    # words) + the page's BatchGetItem (nothing matched here: none).
    assert counter.calls["dynamodb.UpdateItem"] == 1
    assert counter.calls["dynamodb.Query"] <= 4
    assert counter.calls["dynamodb.Scan"] == 0
    assert sum(counter.calls.values()) <= 6


def test_too_many_words_or_a_bad_cursor_is_a_bad_request(world: Any) -> None:
    person, _index, searcher = world
    search = searcher(person("eve"))
    nine = " ".join(f"word{i}" for i in range(9))
    assert search.call({"query": nine})["error"]["code"] == "bad_request"
    assert search.call({"query": "x", "cursor": "!!"})["error"]["code"] == "bad_request"
    assert search.call({"query": "x", "limit": 51})["error"]["code"] == "bad_request"
    assert search.call({"query": ""})["error"]["code"] == "bad_request"
    assert search.hits("the and of") == []  # only stop words: nothing to look for


def test_pages_follow_the_cursor_without_repeats(world: Any) -> None:
    person, index, searcher = world
    alice, bob = person("alice"), person("bob")
    conversation = new_conversation(alice, bob)
    for i in range(7):
        send(alice, conversation, f"lamp number {i}")
    index.catch_up()
    search = searcher(bob)
    seen: list[int] = []
    cursor = None
    for _ in range(5):
        reply = search.call({"query": "lamp", "limit": 3} | ({"cursor": cursor} if cursor else {}))
        assert reply["ok"], reply
        seen += [h["seq"] for h in reply["data"]["hits"]]
        cursor = reply["data"]["cursor"]
        if cursor is None:
            break
    assert seen == [7, 6, 5, 4, 3, 2, 1]  # equal scores: newest first
    other = search.call(
        {"query": "lamps", "cursor": search.call({"query": "lamp", "limit": 3})["data"]["cursor"]}
    )
    assert other["error"]["code"] == "bad_request"


def test_a_search_reads_older_windows_within_its_budget_and_the_cursor_goes_on(
    world: Any, stack: Stack, apps: dict[str, ModuleType]
) -> None:
    # Windows of 3 documents, at most 2 per search: a word in the oldest message of 12 is
    # found by following the cursor, each request reading at most 2 windows.
    person, index, _searcher = world
    alice, bob = person("alice"), person("bob")
    conversation = new_conversation(alice, bob)
    send(alice, conversation, "the kettle is on")
    for i in range(11):
        send(alice, conversation, f"filler message {i}")
    send(alice, conversation, "a kettle again")
    index.catch_up()
    small = stack.handler(
        "SearchFunction", SEARCH_DOCUMENTS_PER_READ="3", SEARCH_READS_PER_SEARCH="2"
    )
    search = Searcher(small, bob)
    seen: list[int] = []
    cursor, requests = None, 0
    while True:
        counter = CallCounter().watch(apps_client(stack))
        try:
            reply = search.call({"query": "kettle"} | ({"cursor": cursor} if cursor else {}))
        finally:
            counter.close()
        assert reply["ok"], reply
        assert counter.calls["dynamodb.Query"] <= 2
        requests += 1
        seen += [h["seq"] for h in reply["data"]["hits"]]
        cursor = reply["data"]["cursor"]
        if cursor is None:
            break
    assert seen == [13, 1]
    assert requests == 3  # 13 documents, 6 per request: 3 requests
    # A cursor is validated like any input: a forged read position is refused.
    forged = json.dumps(["not-a-key", 0, json.loads(_decoded(reply_cursor(search)))[2]])
    bad = search.call({"query": "kettle", "cursor": _encoded(forged)})
    assert bad["error"]["code"] == "bad_request"


def reply_cursor(search: Searcher) -> str:
    cursor: str = search.call({"query": "kettle", "limit": 1})["data"]["cursor"]
    return cursor


def _decoded(cursor: str) -> str:
    return base64.urlsafe_b64decode(cursor.encode()).decode()


def _encoded(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


def test_history_opens_a_page_around_a_seq(world: Any) -> None:
    person, _index, _searcher = world
    alice, bob = person("alice"), person("bob")
    conversation = new_conversation(alice, bob)
    for i in range(1, 21):
        send(alice, conversation, f"m{i}")
    page = bob.ok("message:history", {"conversationId": conversation, "aroundSeq": 10, "limit": 6})
    assert [m["seq"] for m in page["messages"]] == [7, 8, 9, 10, 11, 12]
    assert page["hasMore"] is True and page["lastSeq"] == 20
    edge = bob.ok("message:history", {"conversationId": conversation, "aroundSeq": 20, "limit": 6})
    assert [m["seq"] for m in edge["messages"]] == [17, 18, 19, 20]
    both = bob.call(
        "message:history", {"conversationId": conversation, "aroundSeq": 3, "beforeSeq": 5}
    )
    assert both["error"]["code"] == "bad_request"


def test_sample_events_run_against_the_handlers(apps: dict[str, ModuleType], stack: Stack) -> None:
    # `sam local invoke -e events/…` inputs: the stream record indexes a message that a
    # search then finds (its conversation exists, alice is a member).
    root = Path(__file__).resolve().parents[2] / "events"
    record = json.loads((root / "search-index-stream.json").read_text())
    image = record["Records"][0]["dynamodb"]["NewImage"]
    repo = ConversationRepository(stack.table("ConversationsTable"), stack.table("MessagesTable"))
    conversation_id = image["conversationId"]["S"]
    repo.create(
        Conversation(conversation_id, frozenset({"alice", "bob"}), "alice", 1_795_000_000_000)
    )
    stack.client("dynamodb").put_item(TableName=stack.table("MessagesTable"), Item=image)
    apps["indexer"].lambda_handler(record, FakeContext())
    search = json.loads((root / "message-search.json").read_text())
    reply = json.loads(apps["search"].lambda_handler(search, FakeContext())["body"])
    assert reply["ok"], reply
    assert (conversation_id, 1) in {(h["conversationId"], h["seq"]) for h in reply["data"]["hits"]}


def test_made_up_words_cannot_push_a_real_match_out_of_a_prefix_search(world: Any) -> None:
    # Given bob's real message, then a stranger's 4 messages of 64 made-up "bikz…" words
    # (256 terms alphabetically after "bike": the first version's prefix read, 200 terms
    # in word order, lost bob's message; documents are read by time, all words at once)
    person, index, searcher = world
    alice, bob, mallory = person("alice"), person("bob"), person("mallory")
    conversation = new_conversation(bob, alice)
    send(bob, conversation, "is the bike still available?")
    index.catch_up()
    spam = new_conversation(mallory, alice)
    for m in range(4):
        send(mallory, spam, " ".join(f"bikz{m}x{k:02d}" for k in range(64)))
    index.catch_up()
    # When alice types "bik", her newest messages are read: bob's message is among them
    found = searcher(alice).seqs("bik", limit=50)
    assert (conversation, 1) in found
    assert {(spam, m + 1) for m in range(4)} <= set(found)
    # and a longer prefix narrows to its words
    assert searcher(alice).seqs("bikz1x0", limit=50) == [(spam, 2)]
