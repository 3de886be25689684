"""Edit, delete, reactions, threads, quotes, the change stream and mute, through the
message function's handler against moto (issue 15, messages). Every refusal is proven by
the effect log: nothing pushed, queued or written, to anyone."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Any

import pytest
from switchboard.limits import MAX_MESSAGE_BYTES

from tests.integration.conftest import FakeContext, Stack
from tests.integration.test_messaging import Client, new_conversation, send
from tests.integration.test_notifications import queued_jobs, sqs_event
from tests.integration.test_search import Index, Searcher
from tests.support.effects import InProcess
from tests.support.events import frame, ws_event


@pytest.fixture(scope="module")
def apps(stack: Stack) -> dict[str, ModuleType]:
    return {
        "message": stack.handler("MessageFunction"),
        "connect": stack.handler("ConnectionFunction"),
    }


@pytest.fixture
def people(stack: Stack, apps: dict[str, ModuleType]) -> Any:
    def make(*names: str) -> list[Client]:
        tag = uuid.uuid4().hex[:6]
        return [Client(stack, apps["message"], apps["connect"], f"{n}-{tag}") for n in names]

    return make


def ref(conversation: str, seq: int, **extra: Any) -> dict[str, Any]:
    return {"conversationId": conversation, "seq": seq, **extra}


def history(client: Client, conversation: str) -> dict[int, dict[str, Any]]:
    page = client.ok("message:history", {"conversationId": conversation})
    return {m["seq"]: m for m in page["messages"]}


def go_offline(stack: Stack, client: Client) -> None:
    stack.handler("ConnectionFunction").lambda_handler(
        ws_event("$disconnect", connection_id=client.connection_id, user_id=client.user_id),
        FakeContext(),
    )


def refused_quietly(client: Client, action: str, data: dict[str, Any], code: str) -> None:
    """``action`` is refused with ``code`` and did nothing to anyone."""
    window = InProcess().window()
    assert client.error(action, data) == code
    window.assert_nothing_happened(f"{action} by {client.user_id}")


# ---------------------------------------------------------------------- edit
def test_the_sender_edits_and_every_reader_sees_the_new_text(people: Any) -> None:
    alice, bob = people("alice", "bob")
    conversation = new_conversation(alice, bob)
    send(alice, conversation, "see you at 5")

    edited = alice.ok("message:edit", ref(conversation, 1, body="see you at 6"))

    assert (edited["body"], edited["version"], edited["change"]) == ("see you at 6", 1, 1)
    pushed = bob.frames("message:updated")[-1]["data"]
    assert pushed == edited
    message = history(bob, conversation)[1]
    assert (message["body"], message["editedAt"], message["version"]) == (
        "see you at 6",
        edited["editedAt"],
        1,
    )
    synced = bob.ok("message:sync", {"cursors": {conversation: 0}})["conversations"][conversation]
    assert synced["messages"][0]["body"] == "see you at 6"
    assert synced["lastChange"] == 1
    listed = bob.ok("conversation:list")["conversations"]
    summary = next(c for c in listed if c["conversationId"] == conversation)
    assert summary["lastMessage"]["body"] == "see you at 6"  # the preview follows the edit
    assert summary["lastChange"] == 1


def test_an_edit_with_the_same_text_changes_and_pushes_nothing(people: Any) -> None:
    alice, bob = people("alice", "bob")
    conversation = new_conversation(alice, bob)
    send(alice, conversation, "hello")
    first = alice.ok("message:edit", ref(conversation, 1, body="hello!"))
    window = InProcess().window()
    again = alice.ok("message:edit", ref(conversation, 1, body="hello!"))
    assert again == first
    window.assert_nothing_happened("a repeated edit")


def test_only_the_sender_edits_and_only_within_the_window(people: Any, stack: Stack) -> None:
    alice, bob, eve = people("alice", "bob", "eve")
    conversation = new_conversation(alice, bob)
    send(alice, conversation, "original")
    refused_quietly(bob, "message:edit", ref(conversation, 1, body="forged"), "forbidden")
    # eve, no member: not_found, as if the conversation did not exist
    refused_quietly(eve, "message:edit", ref(conversation, 1, body="forged"), "not_found")
    refused_quietly(alice, "message:edit", ref(conversation, 9, body="x"), "not_found")
    refused_quietly(
        alice, "message:edit", ref(conversation, 1, body="x" * 4001), "payload_too_large"
    )
    refused_quietly(alice, "message:edit", ref(conversation, 1, body="  "), "bad_request")
    # Given the message was sent 16 minutes ago (the window is 15)
    stack.client("dynamodb").update_item(
        TableName=stack.table("MessagesTable"),
        Key={"conversationId": {"S": conversation}, "seq": {"N": "1"}},
        UpdateExpression="SET createdAt = createdAt - :age",
        ExpressionAttributeValues={":age": {"N": str(16 * 60_000)}},
    )
    refused_quietly(alice, "message:edit", ref(conversation, 1, body="too late"), "forbidden")
    assert history(bob, conversation)[1]["body"] == "original"
    # deleting has no window
    assert alice.ok("message:delete", ref(conversation, 1))["seq"] == 1


# ---------------------------------------------------------------------- delete
def test_a_deleted_message_is_a_tombstone_everywhere(people: Any) -> None:
    alice, bob = people("alice", "bob")
    conversation = new_conversation(alice, bob)
    send(alice, conversation, "my phone number is 555-0100")
    send(bob, conversation, "thanks")
    send(alice, conversation, "oops, wrong chat")
    bob.ok("message:react", ref(conversation, 1, emoji="👍"))
    refused_quietly(bob, "message:delete", ref(conversation, 1), "forbidden")

    deleted = alice.ok("message:delete", ref(conversation, 1))
    alice.ok("message:delete", ref(conversation, 3))

    assert bob.frames("message:deleted")[0]["data"] == deleted
    tombstone = history(bob, conversation)[1]
    assert tombstone["body"] == ""
    assert tombstone["deletedAt"] == deleted["deletedAt"]
    assert "reactions" not in tombstone and "attachments" not in tombstone
    assert tombstone["seq"] == 1 and history(bob, conversation)[2]["body"] == "thanks"
    synced = bob.ok("message:sync", {"cursors": {conversation: 0}})["conversations"][conversation]
    assert [m["body"] for m in synced["messages"]] == ["", "thanks", ""]
    listed = bob.ok("conversation:list")["conversations"]
    last = next(c for c in listed if c["conversationId"] == conversation)["lastMessage"]
    assert (last["body"], last["deleted"]) == ("", True)  # the preview is gone too
    # A tombstone cannot be edited or reacted to; deleting again changes nothing
    refused_quietly(alice, "message:edit", ref(conversation, 1, body="back"), "conflict")
    refused_quietly(bob, "message:react", ref(conversation, 1, emoji="😀"), "conflict")
    window = InProcess().window()
    assert alice.ok("message:delete", ref(conversation, 1)) == deleted
    window.assert_nothing_happened("a repeated delete")


def test_search_reindexes_edits_and_forgets_deleted_messages(
    people: Any, stack: Stack, apps: dict[str, ModuleType]
) -> None:
    alice, bob = people("alice", "bob")
    index = Index(stack, stack.handler("SearchIndexerFunction"))
    search = Searcher(stack.handler("SearchFunction"), bob)
    conversation = new_conversation(alice, bob)
    send(alice, conversation, "the bicycle is blue")
    send(alice, conversation, "my address is Elm street")
    index.catch_up()
    assert search.seqs("bicycle") == [(conversation, 1)]

    alice.ok("message:edit", ref(conversation, 1, body="the tandem is blue"))
    alice.ok("message:delete", ref(conversation, 2))
    # Before the indexer runs, hits are checked against the stored messages already
    assert search.seqs("bicycle") == [] and search.seqs("elm") == []
    index.catch_up()
    assert search.seqs("tandem") == [(conversation, 1)]
    assert search.seqs("bicycle") == [] and search.seqs("elm") == []
    postings = stack.client("dynamodb").query(
        TableName=stack.table("SearchIndexTable"),
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"u#{bob.user_id}#elm"}},
    )["Items"]
    assert postings == []  # the tombstone's postings are deleted, not just hidden
    # A reaction does not touch the index (its searchable text is unchanged)
    bob.ok("message:react", ref(conversation, 1, emoji="🚲"))
    records = index.tap.new_records()
    index.tap.seen |= {r["eventID"] for r in records}
    assert [r["eventName"] for r in records] == ["MODIFY"]
    report = index.indexer.indexer.handle_records(records)
    assert (report.changes, report.puts, report.deletes) == (0, 0, 0)


# ---------------------------------------------------------------------- reactions
def test_reactions_count_per_emoji_and_are_idempotent(people: Any) -> None:
    alice, bob, carol = people("alice", "bob", "carol")
    conversation = new_conversation(alice, bob, carol)
    send(alice, conversation, "pizza tonight?")

    bob.ok("message:react", ref(conversation, 1, emoji="🍕"))
    window = InProcess().window()
    twice = bob.ok("message:react", ref(conversation, 1, emoji="🍕"))
    window.assert_nothing_happened("the same reaction again")
    carol.ok("message:react", ref(conversation, 1, emoji="🍕"))
    state = carol.ok("message:react", ref(conversation, 1, emoji="👍🏽"))

    assert twice["reactions"] == [{"emoji": "🍕", "count": 1, "userIds": [bob.user_id]}]
    assert state["reactions"] == [
        {"emoji": "🍕", "count": 2, "userIds": [bob.user_id, carol.user_id]},
        {"emoji": "👍🏽", "count": 1, "userIds": [carol.user_id]},
    ]
    pushes = alice.frames("message:reactions")
    assert len(pushes) == 3  # one per change, none for the repeat
    assert pushes[-1]["data"]["reactions"] == state["reactions"]
    off = bob.ok("message:react", ref(conversation, 1, emoji="🍕", on=False))
    assert off["reactions"][0]["userIds"] == [carol.user_id]
    window = InProcess().window()
    bob.ok("message:react", ref(conversation, 1, emoji="🍕", on=False))
    window.assert_nothing_happened("taking back a reaction that is not there")
    assert history(alice, conversation)[1]["reactions"] == off["reactions"]


@pytest.mark.parametrize(
    "emoji",
    ["a", "lol", "👍 ", "\u202e👍", "👍" * 17, "<script>", "", "\u200d", "1"],
)
def test_a_reaction_is_one_emoji(people: Any, emoji: str) -> None:
    alice, bob = people("alice", "bob")
    conversation = new_conversation(alice, bob)
    send(alice, conversation, "hi")
    refused_quietly(bob, "message:react", ref(conversation, 1, emoji=emoji), "bad_request")


@pytest.mark.parametrize("emoji", ["👍", "👨‍👩‍👧‍👦", "🇫🇷", "1️⃣", "❤️", "🏴󠁧󠁢󠁳󠁣󠁴󠁿"])
def test_real_emoji_are_reactions(people: Any, emoji: str) -> None:
    alice, bob = people("alice", "bob")
    conversation = new_conversation(alice, bob)
    send(alice, conversation, "hi")
    assert bob.ok("message:react", ref(conversation, 1, emoji=emoji))["reactions"][0]["emoji"] == (
        emoji
    )


EMOJI = [chr(c) for c in range(0x1F600, 0x1F600 + 30)]


def test_reactions_are_bounded_per_message_and_per_user(people: Any) -> None:
    members = people(*(f"p{i}" for i in range(5)))
    conversation = new_conversation(members[0], *members[1:])
    send(members[0], conversation, "vote")
    # Each user may add 5; the 6th of one user is refused
    for emoji in EMOJI[:5]:
        members[0].ok("message:react", ref(conversation, 1, emoji=emoji))
    refused_quietly(
        members[0], "message:react", ref(conversation, 1, emoji=EMOJI[5]), "bad_request"
    )
    # 20 distinct emoji per message: the 21st kind is refused, an existing one still counts
    for i, member in enumerate(members[1:4], start=1):
        for emoji in EMOJI[5 * i : 5 * i + 5]:
            member.ok("message:react", ref(conversation, 1, emoji=emoji))
    refused_quietly(
        members[4], "message:react", ref(conversation, 1, emoji=EMOJI[25]), "bad_request"
    )
    state = members[4].ok("message:react", ref(conversation, 1, emoji=EMOJI[0]))
    assert len(state["reactions"]) == 20
    assert state["reactions"][0]["count"] == 2


def test_reactions_are_rate_limited_per_user(stack: Stack, apps: dict[str, ModuleType]) -> None:
    app = stack.handler("MessageFunction", MESSAGE_OP_LIMIT_PER_USER="3")
    tag = uuid.uuid4().hex[:6]
    alice = Client(stack, app, apps["connect"], f"alice-{tag}")
    bob = Client(stack, app, apps["connect"], f"bob-{tag}")
    conversation = new_conversation(alice, bob)
    send(alice, conversation, "spam me")
    for on in (True, False, True):
        bob.ok("message:react", ref(conversation, 1, emoji="🔥", on=on))
    window = InProcess().window()
    reply = bob.call("message:react", ref(conversation, 1, emoji="🔥", on=False))
    assert reply["error"]["code"] == "rate_limited", reply
    assert reply["error"]["details"]["retryAfterMs"] > 0
    window.assert_nothing_happened("a reaction over the limit")
    assert len(alice.frames("message:reactions")) == 3


# ---------------------------------------------------------------------- threads and quotes
def test_thread_replies_keep_their_seq_and_count_on_the_parent(people: Any) -> None:
    alice, bob = people("alice", "bob")
    conversation = new_conversation(alice, bob)
    send(alice, conversation, "who is in for Sunday?")
    send(bob, conversation, "unrelated")

    def reply(client: Client, body: str, parent: int = 1) -> dict[str, Any]:
        data: dict[str, Any] = client.ok(
            "message:send",
            {
                "conversationId": conversation,
                "clientMessageId": uuid.uuid4().hex,
                "body": body,
                "parentSeq": parent,
            },
        )
        return data

    first = reply(bob, "me")
    second = reply(alice, "great")
    assert (first["seq"], second["seq"]) == (3, 4)  # ordinary seqs, in order
    pushed = alice.frames("message:new")[-1]["data"]
    assert (pushed["seq"], pushed["parentSeq"]) == (3, 1)
    parent = history(bob, conversation)[1]
    assert (parent["replyCount"], parent["lastReplyAt"]) == (2, second["createdAt"])
    page = bob.ok("thread:history", {"conversationId": conversation, "parentSeq": 1, "limit": 1})
    assert page["parent"]["seq"] == 1
    assert [m["body"] for m in page["messages"]] == ["me"] and page["hasMore"]
    rest = bob.ok("thread:history", {"conversationId": conversation, "parentSeq": 1, "afterSeq": 3})
    assert [m["body"] for m in rest["messages"]] == ["great"] and not rest["hasMore"]

    # A reply to a reply, or to nothing, is refused and stores nothing
    for parent_seq in (3, 99):
        window = InProcess().window()
        data = {
            "conversationId": conversation,
            "clientMessageId": uuid.uuid4().hex,
            "body": "nested",
            "parentSeq": parent_seq,
        }
        assert alice.error("message:send", data) == "bad_request"
        window.assert_nothing_happened(f"a reply to {parent_seq}")
    refused_quietly(
        alice, "thread:history", {"conversationId": conversation, "parentSeq": 3}, "not_found"
    )


def test_concurrent_thread_replies_all_count(people: Any) -> None:
    alice, bob, carol, dave = people("alice", "bob", "carol", "dave")
    conversation = new_conversation(alice, bob, carol, dave)
    send(alice, conversation, "thread")

    def reply(client: Client) -> int:
        seq: int = client.ok(
            "message:send",
            {
                "conversationId": conversation,
                "clientMessageId": uuid.uuid4().hex,
                "body": f"from {client.user_id}",
                "parentSeq": 1,
            },
        )["seq"]
        return seq

    with ThreadPoolExecutor(4) as pool:
        seqs = sorted(pool.map(reply, [bob, carol, dave, alice, bob, carol]))
    assert seqs == [2, 3, 4, 5, 6, 7]
    parent = history(alice, conversation)[1]
    assert parent["replyCount"] == 6
    page = alice.ok("thread:history", {"conversationId": conversation, "parentSeq": 1})
    assert [m["seq"] for m in page["messages"]] == seqs
    changes = alice.ok("message:changes", {"conversationId": conversation, "afterChange": 0})
    assert changes["lastChange"] == 6 and changes["cursor"] == 6


def test_a_quote_shows_the_quoted_message_as_it_is_now(people: Any) -> None:
    alice, bob = people("alice", "bob")
    conversation = new_conversation(alice, bob)
    send(alice, conversation, "the code is 4711, keep it secret")
    bob.ok(
        "message:send",
        {
            "conversationId": conversation,
            "clientMessageId": "q1",
            "body": "got it",
            "replyToSeq": 1,
        },
    )
    quote = alice.frames("message:new")[-1]["data"]["replyTo"]
    assert quote == {
        "seq": 1,
        "senderId": alice.user_id,
        "snippet": "the code is 4711, keep it secret",
        "deleted": False,
    }
    alice.ok("message:delete", ref(conversation, 1))
    for client in (alice, bob):
        assert history(client, conversation)[2]["replyTo"] == {
            "seq": 1,
            "senderId": alice.user_id,
            "snippet": "",
            "deleted": True,
        }
    synced = bob.ok("message:sync", {"cursors": {conversation: 1}})["conversations"][conversation]
    assert synced["messages"][0]["replyTo"]["deleted"] is True
    bad = {"conversationId": conversation, "clientMessageId": "q2", "body": "?", "replyToSeq": 5}
    window = InProcess().window()
    assert bob.error("message:send", bad) == "bad_request"
    window.assert_nothing_happened("a quote of nothing")


# ---------------------------------------------------------------------- the change stream
def test_a_client_that_was_away_reads_only_what_changed(people: Any) -> None:
    alice, bob = people("alice", "bob")
    conversation = new_conversation(alice, bob)
    for i in range(1, 6):
        send(alice, conversation, f"message {i}")
    # bob has read everything (cursor 0: nothing changed yet), then goes away
    listed = bob.ok("conversation:list")["conversations"][0]
    cursor = listed["lastChange"]
    assert cursor == 0
    alice.ok("message:edit", ref(conversation, 2, body="message two"))
    alice.ok("message:delete", ref(conversation, 4))
    alice.ok("message:react", ref(conversation, 2, emoji="✅"))
    alice.ok("message:edit", ref(conversation, 5, body="message five"))

    # On resume: the list says lastChange moved; the changes since the cursor, each once
    summary = bob.ok("conversation:list")["conversations"][0]
    assert summary["lastChange"] == 4
    page = bob.ok(
        "message:changes", {"conversationId": conversation, "afterChange": cursor, "limit": 2}
    )
    assert (page["cursor"], page["hasMore"], page["reset"]) == (2, True, False)
    assert [m["seq"] for m in page["messages"]] == [2, 4]
    page2 = bob.ok(
        "message:changes", {"conversationId": conversation, "afterChange": page["cursor"]}
    )
    assert [m["seq"] for m in page2["messages"]] == [2, 5]
    assert (page2["cursor"], page2["hasMore"]) == (4, False)
    latest = {m["seq"]: m for m in [*page["messages"], *page2["messages"]]}
    assert latest[2]["body"] == "message two" and latest[2]["reactions"][0]["emoji"] == "✅"
    assert latest[4]["deletedAt"] and latest[4]["body"] == ""
    assert latest[5]["body"] == "message five"
    # Caught up: nothing to read (a cursor from the future is clamped)
    for after in (4, 999):
        done = bob.ok("message:changes", {"conversationId": conversation, "afterChange": after})
        assert (done["messages"], done["cursor"], done["hasMore"]) == ([], 4, False)


def test_expired_changes_ask_for_a_reset(people: Any, stack: Stack) -> None:
    alice, bob = people("alice", "bob")
    conversation = new_conversation(alice, bob)
    send(alice, conversation, "a")
    alice.ok("message:edit", ref(conversation, 1, body="b"))
    alice.ok("message:edit", ref(conversation, 1, body="c"))
    # Given change 1's log entry expired (TTL)
    stack.client("dynamodb").delete_item(
        TableName=stack.table("ConversationsTable"),
        Key={"conversationId": {"S": conversation}, "sk": {"S": f"chg#{1:016d}"}},
    )
    page = bob.ok("message:changes", {"conversationId": conversation, "afterChange": 0})
    assert (page["reset"], page["cursor"], page["messages"]) == (True, 2, [])
    assert (
        bob.ok("message:changes", {"conversationId": conversation, "afterChange": 1})["messages"][
            0
        ]["body"]
        == "c"
    )


# ---------------------------------------------------------------------- mute
def test_a_muted_conversation_notifies_nobody_until_unmuted(people: Any, stack: Stack) -> None:
    alice, bob = people("alice", "bob")
    consumer = stack.handler("NotificationFunction")
    conversation = new_conversation(alice, bob)
    go_offline(stack, bob)
    muted = bob.ok("conversation:mute", {"conversationId": conversation})
    assert muted["mutedUntil"] == 2**53
    summary = bob.ok("conversation:list")["conversations"][0]
    assert summary["mutedUntil"] == 2**53

    send(alice, conversation, "psst")
    (job,) = queued_jobs(stack, bob.user_id, "message")  # the send does not read mute
    window = InProcess().window()
    consumer.lambda_handler(sqs_event(job), FakeContext())
    window.assert_nothing_happened("a notification of a muted conversation")
    assert bob.ok("notification:list")["notifications"] == []

    unmuted = bob.ok("conversation:mute", {"conversationId": conversation, "muted": False})
    assert unmuted["mutedUntil"] is None
    assert "mutedUntil" not in bob.ok("conversation:list")["conversations"][0]
    send(alice, conversation, "hello?")
    job = queued_jobs(stack, bob.user_id, "message")[-1]
    consumer.lambda_handler(sqs_event(job), FakeContext())
    (notification,) = bob.ok("notification:list")["notifications"]
    assert notification["data"]["preview"] == "hello?"
    # The notification follows its message: deleted, its preview is gone too
    alice.ok("message:delete", ref(conversation, 2))
    (notification,) = bob.ok("notification:list")["notifications"]
    assert (notification["data"]["preview"], notification["data"]["deleted"]) == ("", True)


def test_mute_is_for_members_and_until_a_future_time(people: Any) -> None:
    alice, bob, eve = people("alice", "bob", "eve")
    conversation = new_conversation(alice, bob)
    refused_quietly(eve, "conversation:mute", {"conversationId": conversation}, "not_found")
    refused_quietly(
        bob, "conversation:mute", {"conversationId": conversation, "until": 1000}, "bad_request"
    )
    refused_quietly(
        bob,
        "conversation:mute",
        {"conversationId": conversation, "muted": False, "until": 2**40},
        "bad_request",
    )
    until = 2**41
    assert (
        bob.ok("conversation:mute", {"conversationId": conversation, "until": until})["mutedUntil"]
        == until
    )


def test_a_message_deleted_before_its_notification_runs_is_not_notified(
    people: Any, stack: Stack
) -> None:
    alice, bob = people("alice", "bob")
    consumer = stack.handler("NotificationFunction")
    conversation = new_conversation(alice, bob)
    go_offline(stack, bob)
    send(alice, conversation, "regrettable")
    alice.ok("message:delete", ref(conversation, 1))
    (job,) = queued_jobs(stack, bob.user_id, "message")
    window = InProcess().window()
    consumer.lambda_handler(sqs_event(job), FakeContext())
    window.assert_nothing_happened("a notification of a deleted message")


def test_unread_counts_come_from_seq_and_the_read_cursor(people: Any) -> None:
    alice, bob = people("alice", "bob")
    conversation = new_conversation(alice, bob)
    for body in ("1", "2", "3"):
        send(alice, conversation, body)
    assert bob.ok("conversation:list")["conversations"][0]["unread"] == 3
    bob.ok("message:read", {"conversationId": conversation, "seq": 2})
    assert bob.ok("conversation:list")["conversations"][0]["unread"] == 1
    assert alice.ok("conversation:list")["conversations"][0]["unread"] == 0


def test_a_deleted_messages_attachment_is_no_longer_shared(stack: Stack) -> None:
    from tests.integration.test_uploads import run_processor
    from tests.support.images import http, png_plain

    uploads, connect = stack.handler("UploadFunction"), stack.handler("ConnectionFunction")
    app = stack.handler("MessageFunction")
    tag = uuid.uuid4().hex[:6]
    alice_up = Client(stack, uploads, connect, f"alice-{tag}")
    bob_up = Client(stack, uploads, connect, f"bob-{tag}")
    alice = Client(stack, app, connect, alice_up.user_id)
    bob = Client(stack, app, connect, bob_up.user_id)
    conversation = new_conversation(alice, bob)
    photo = png_plain()
    start = alice_up.ok(
        "upload:start", {"fileName": "me.png", "contentType": "image/png", "size": len(photo)}
    )
    assert http("PUT", start["url"], photo, start["headers"])[0] == 200
    alice_up.ok("upload:complete", {"uploadId": start["uploadId"]})
    run_processor(stack, stack.handler("UploadProcessorFunction"))
    attachment = {"uploadId": start["uploadId"], "fileName": "me.png"}
    alice.ok(
        "message:send",
        {
            "conversationId": conversation,
            "clientMessageId": "a",
            "body": "my photo",
            "attachments": [attachment],
        },
    )
    shared = {"uploadId": start["uploadId"], "conversationId": conversation}
    assert bob_up.ok("upload:get", shared)["state"] == "complete"

    alice.ok("message:delete", ref(conversation, 1))

    assert bob_up.error("upload:get", shared) == "not_found"
    assert "attachments" not in history(bob, conversation)[1]
    # the owner still has her upload (it may be attached elsewhere)
    assert alice_up.ok("upload:get", {"uploadId": start["uploadId"]})["state"] == "complete"


def test_a_system_entry_cannot_be_edited_deleted_reacted_to_or_threaded(
    people: Any, stack: Stack
) -> None:
    from switchboard.dal.conversations import ConversationRepository, StoredMessage

    alice, bob = people("alice", "bob")
    conversation = new_conversation(alice, bob)
    repository = ConversationRepository(
        stack.table("ConversationsTable"), stack.table("MessagesTable")
    )
    # Given a system entry naming alice (as a call recording's start is recorded)
    meta = repository.get(conversation)
    assert meta is not None
    repository.append(
        meta,
        StoredMessage(
            conversation_id=conversation,
            seq=1,
            message_id="sys",
            sender_id=alice.user_id,
            body="",
            created_at=1,
            client_message_id="system-1",
            system={"event": "recording-started", "callId": "c1", "userId": alice.user_id},
        ),
    )
    for client, action, extra, code in (
        (alice, "message:edit", {"body": "nothing happened"}, "conflict"),
        (alice, "message:delete", {}, "conflict"),
        (bob, "message:react", {"emoji": "👍"}, "conflict"),
    ):
        refused_quietly(client, action, ref(conversation, 1, **extra), code)
    window = InProcess().window()
    reply = {"conversationId": conversation, "clientMessageId": "t", "body": "x", "parentSeq": 1}
    assert bob.error("message:send", reply) == "bad_request"
    window.assert_nothing_happened("a thread on a system entry")
    assert history(bob, conversation)[1]["system"]["event"] == "recording-started"


# ---------------------------------------------------------------------- with consent
def test_membership_system_entries_cannot_be_edited_deleted_reacted_to_or_threaded(
    people: Any,
) -> None:
    # Given "alice removed bob": a system entry whose sender is alice, the actor
    alice, bob, carol = people("alice", "bob", "carol")
    group = new_conversation(alice, bob, carol)
    send(alice, group, "hello")
    alice.ok("conversation:remove-member", {"conversationId": group, "userId": bob.user_id})
    entry = history(alice, group)[2]
    assert (entry["senderId"], entry["system"]["kind"]) == (alice.user_id, "removed")
    # Then not even its "sender" rewrites or deletes it, and nobody reacts or threads on it
    for client, action, extra in (
        (alice, "message:edit", {"body": "carol removed bob"}),
        (alice, "message:delete", {}),
        (alice, "message:react", {"emoji": "👍"}),
        (carol, "message:react", {"emoji": "👍"}),
    ):
        refused_quietly(client, action, ref(group, 2, **extra), "conflict")
    for client in (alice, carol):
        window = InProcess().window()
        thread = {"conversationId": group, "clientMessageId": "t", "body": "x", "parentSeq": 2}
        assert client.error("message:send", thread) == "bad_request"
        window.assert_nothing_happened(f"a thread on a system entry by {client.user_id}")
    assert history(carol, group)[2] == entry


def test_a_blocked_user_cannot_reach_the_blocker_by_edit_or_react(people: Any) -> None:
    alice, bob = people("alice", "bob")
    conversation = new_conversation(alice, bob)
    send(alice, conversation, "hi")
    send(bob, conversation, "hi alice")
    bob.ok("user:block", {"userId": alice.user_id})
    # Then alice's edit of her message and reaction to bob's are refused as her send is
    # (the same forbidden, from the change's own transaction), and nothing reaches bob
    refused_quietly(alice, "message:edit", ref(conversation, 1, body="hi again"), "forbidden")
    refused_quietly(alice, "message:react", ref(conversation, 2, emoji="👍"), "forbidden")
    reply = alice.call("message:react", ref(conversation, 2, emoji="👍"))
    assert reply["error"]["message"] == "they do not accept messages from you"
    seen = history(bob, conversation)
    assert (seen[1]["body"], "reactions" in seen[2]) == ("hi", False)
    # Her own retraction still works (it takes content away, it brings none)
    alice.ok("message:delete", ref(conversation, 1))
    # And once unblocked, she reaches him again
    bob.ok("user:unblock", {"userId": alice.user_id})
    alice.ok("message:react", ref(conversation, 2, emoji="👍"))


def test_a_deleted_message_takes_no_thread_replies(people: Any, stack: Stack) -> None:
    from switchboard.dal.conversations import ConversationRepository
    from switchboard.dal.message_changes import MessageChangeRepository

    alice, bob = people("alice", "bob")
    conversation = new_conversation(alice, bob)
    send(alice, conversation, "soon gone")
    alice.ok("message:delete", ref(conversation, 1))
    window = InProcess().window()
    thread = {"conversationId": conversation, "clientMessageId": "t", "body": "x", "parentSeq": 1}
    assert bob.error("message:send", thread) == "bad_request"
    window.assert_nothing_happened("a thread reply to a deleted message")
    # And the send's own transaction refuses it too (a delete racing the reply's read)
    changes = MessageChangeRepository(
        ConversationRepository(stack.table("ConversationsTable"), stack.table("MessagesTable"))
    )
    with pytest.raises(changes.client.exceptions.ConditionalCheckFailedException):
        changes.client.update_item(**changes.parent_update(conversation, 1, 1, 99))


def post(client: Client, conversation: str, body: str, **extra: Any) -> None:
    data = {"conversationId": conversation, "clientMessageId": uuid.uuid4().hex, "body": body}
    client.ok("message:send", {**data, **extra})


def test_a_former_member_sees_nothing_that_changed_after_they_left(people: Any) -> None:
    alice, bob, carol = people("alice", "bob", "carol")
    group = new_conversation(alice, bob, carol)
    send(alice, group, "the plan")  # 1
    post(carol, group, "edited before", replyToSeq=1)  # 2
    carol.ok("message:edit", ref(group, 2, body="edited before bob left"))
    alice.ok("message:react", ref(group, 2, emoji="👀"))
    send(alice, group, "deleted later")  # 3
    bob.ok("conversation:leave", {"conversationId": group})  # 4: "bob left"
    # After the leave: an edit, reactions, a thread reply, a delete
    alice.ok("message:edit", ref(group, 1, body="the secret new plan"))
    carol.ok("message:react", ref(group, 1, emoji="👍"))
    post(carol, group, "in the thread", parentSeq=1)  # 5
    alice.ok("message:delete", ref(group, 3))

    page = bob.ok("message:history", {"conversationId": group})
    synced = bob.ok("message:sync", {"cursors": {group: 0}})["conversations"][group]
    for messages in (page["messages"], synced["messages"]):
        seen = {m["seq"]: m for m in messages}
        assert sorted(seen) == [1, 2, 3, 4]
        # the edit after the leave is withheld (its new text never reaches bob), and no
        # reaction, thread count or change count is shown to him
        assert seen[1]["body"] == "" and "secret" not in str(messages)
        for m in messages:
            assert not {"reactions", "replyCount", "lastReplyAt", "version"} & set(m), m
        # what he saw before he left stays: carol's edit, her quote of message 1
        assert seen[2]["body"] == "edited before bob left"
        assert seen[2]["replyTo"]["snippet"] == ""
        # a sender's delete takes the text from everyone, former members included
        assert (seen[3]["body"], "deletedAt" in seen[3]) == ("", True)
    assert page["lastChange"] == synced["lastChange"] == 0
    # (not_found: the change stream reads the conversation alone, which cannot tell a
    # former member from a stranger)
    refused_quietly(
        bob, "message:changes", {"conversationId": group, "afterChange": 0}, "not_found"
    )


def _raw(client: Client, action: str, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The reply's size as it leaves (one WebSocket message) and its data."""
    event = ws_event(
        action, body=frame(action, data), connection_id=client.connection_id, user_id=client.user_id
    )
    body: str = client.app.lambda_handler(event, FakeContext())["body"]
    reply = json.loads(body)
    assert reply["ok"], reply
    return len(body.encode()), reply["data"]


def _thread_pages(
    client: Client, conversation: str, parent_seq: int, *, most: int
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``thread:history`` of ``parent_seq`` from its start, at most ``most`` pages, as
    ``_raw`` gives them: each page asked after the last reply of the one before, until a
    page says there is no more."""
    after = 0
    for _ in range(most):
        size, page = _raw(
            client,
            "thread:history",
            {"conversationId": conversation, "parentSeq": parent_seq, "afterSeq": after},
        )
        yield size, page
        if not page["hasMore"]:
            return
        if page["messages"]:
            after = page["messages"][-1]["seq"]


def test_thread_and_change_pages_always_fit_in_one_reply(
    people: Any, monkeypatch: pytest.MonkeyPatch, apps: dict[str, ModuleType]
) -> None:
    """API Gateway sends no reply over 128 KB: 40 long replies in a thread (any member may
    write them) made `thread:history` (default limit 50) a 165 KB reply that never arrived,
    for every member; a reaction on each made `message:changes` one too."""
    alice, bob = people("alice", "bob")
    conversation = new_conversation(alice, bob)
    now = time.time()
    for service in (apps["message"].service, apps["message"].message_ops):
        monkeypatch.setattr(service, "_clock", lambda: now)  # one rate window
    send(alice, conversation, "the thread")
    for i in range(40):
        alice.ok(
            "message:send",
            {
                "conversationId": conversation,
                "clientMessageId": f"long-{i}",
                "body": f"{i:02d}" + "x" * 3998,
                "parentSeq": 1,
            },
        )
    replies: list[int] = []
    for size, page in _thread_pages(bob, conversation, 1, most=10):
        assert size <= MAX_MESSAGE_BYTES
        replies += [m["seq"] for m in page["messages"]]
    assert replies == list(range(2, 42))
    # A change on each long message: the change pages fit too, and together hold them all
    for seq in range(2, 42):
        bob.ok("message:react", ref(conversation, seq, emoji="👍"))
    changed: list[int] = []
    cursor = 0
    for _ in range(10):
        size, page = _raw(
            bob, "message:changes", {"conversationId": conversation, "afterChange": cursor}
        )
        assert size <= MAX_MESSAGE_BYTES
        changed += [m["seq"] for m in page["messages"]]
        cursor = page["cursor"]
        if not page["hasMore"]:
            break
    assert set(range(2, 42)) <= set(changed)


def test_a_thread_page_always_holds_a_reply_while_there_are_more(people: Any) -> None:
    """A parent and its first reply that together pass the 100 KB budget (each near the
    most one message may weigh: 4000 escaped emoji, a 64-emoji clientMessageId, a quote)
    made a page with no reply and `hasMore: true`: no seq to go on from, so the reply was
    unreachable and a client paging "while hasMore" asked the same page forever."""
    alice, bob = people("alice", "bob")
    conversation = new_conversation(alice, bob)
    send(alice, conversation, "😀" * 4000)
    for cmid, parent in (("p", None), ("r", 2)):
        data: dict[str, Any] = {
            "conversationId": conversation,
            "clientMessageId": cmid + "😀" * 63,
            "body": "😀" * 4000,
            "replyToSeq": 1,
        }
        if parent is not None:
            data["parentSeq"] = parent
        alice.ok("message:send", data)
    replies: list[int] = []
    for size, page in _thread_pages(bob, conversation, 2, most=3):
        assert size <= MAX_MESSAGE_BYTES
        assert page["messages"] or not page["hasMore"], "a page with no reply said hasMore"
        replies += [m["seq"] for m in page["messages"]]
    assert replies == [3]
