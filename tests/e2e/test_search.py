"""message:search through the devserver: messages sent over real WebSockets reach the
index through the Messages stream mapping (SearchIndexerFunction in its own workers), and
searches go through the message:search route (SearchFunction).

The index lag (send reply -> first search that finds the message) is measured and
printed; docs/search.md states the bound. Time is never the oracle: a search that must
find nothing is made after a search proving the index already holds the message.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from switchboard.search.index import postings_of
from switchboard.search.text import stem

from tests.e2e.clients import TIMEOUT, Client
from tests.e2e.conftest import RunningDevserver


def _user(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def search(client: Client, query: str, **extra: Any) -> list[dict[str, Any]]:
    hits: list[dict[str, Any]] = (await client.call("message:search", {"query": query, **extra}))[
        "hits"
    ]
    return hits


async def until_found(client: Client, query: str, seq: int, **extra: Any) -> float:
    """Searches until a hit with ``seq`` shows up (bounded); returns the seconds it took."""
    started = time.monotonic()
    while True:
        if any(h["seq"] == seq for h in await search(client, query, **extra)):
            return time.monotonic() - started
        if time.monotonic() - started > TIMEOUT:
            raise AssertionError(f"{query!r} did not find seq {seq} in {TIMEOUT}s")
        await asyncio.sleep(0.1)


async def test_sent_messages_become_searchable_for_members_only(
    devserver: RunningDevserver,
) -> None:
    secret = f"walrus{uuid.uuid4().hex[:6]}"
    async with (
        Client(devserver, _user("alice")) as alice,
        Client(devserver, _user("bob")) as bob,
        Client(devserver, _user("mallory")) as mallory,
    ):
        conversation = await alice.create_conversation([bob.user_id])
        # bob accepts: a message request is in no recipient's own index scope
        await bob.call("conversation:accept", {"conversationId": conversation})
        lags = []
        for i in range(5):
            sent = await alice.send(conversation, f"the {secret} number {i} is Running late")
            lags.append(await until_found(bob, f"{secret} ", sent["seq"]))
        print(f"index lag (send reply -> searchable) over 5 messages: max {max(lags):.2f} s")
        hits = await search(bob, f"{secret} runs", conversationId=conversation)
        assert [h["seq"] for h in hits] == [5, 4, 3, 2, 1]
        hit = hits[0]
        assert hit["senderId"] == alice.user_id and hit["conversationId"] == conversation
        assert [hit["snippet"][s:e] for s, e in hit["highlights"]] == [secret, "Running"]
        # The index holds every message now (bob found all five): mallory, not a member,
        # finds none of them, and naming the conversation finds none (not_found, as for one
        # that does not exist).
        assert await search(mallory, secret) == []
        assert await search(mallory, secret[:5]) == []
        assert (
            await mallory.error_code(
                "message:search", {"query": secret, "conversationId": conversation}
            )
            == "not_found"
        )
        # Jump to a hit: a history page around it.
        page = await bob.call(
            "message:history", {"conversationId": conversation, "aroundSeq": 3, "limit": 2}
        )
        assert [m["seq"] for m in page["messages"]] == [2, 3]


async def test_an_edited_message_is_reindexed_and_a_deleted_one_vanishes(
    devserver: RunningDevserver,
) -> None:
    async with (
        Client(devserver, _user("alice")) as alice,
        Client(devserver, _user("bob")) as bob,
    ):
        conversation = await alice.create_conversation([bob.user_id])
        # bob accepts: a message request is in no recipient's own index scope
        await bob.call("conversation:accept", {"conversationId": conversation})
        word, edited = f"otter{uuid.uuid4().hex[:6]}", f"beaver{uuid.uuid4().hex[:6]}"
        first = await alice.send(conversation, f"an {word} by the river")
        second = await alice.send(conversation, f"another {word} upstream")
        await until_found(bob, word, second["seq"])
        # message:edit/delete are not actions yet: change the stored items the way they
        # will (a new body; a tombstone), and the stream does the rest.
        ddb, table = devserver.aws("dynamodb"), devserver.resources["MessagesTable"]
        key = {"conversationId": {"S": conversation}}
        ddb.update_item(
            TableName=table,
            Key={**key, "seq": {"N": str(first["seq"])}},
            UpdateExpression="SET body = :b",
            ExpressionAttributeValues={":b": {"S": f"a {edited} by the river"}},
        )
        ddb.update_item(
            TableName=table,
            Key={**key, "seq": {"N": str(second["seq"])}},
            UpdateExpression="SET deleted = :t REMOVE body",
            ExpressionAttributeValues={":t": {"BOOL": True}},
        )
        await until_found(bob, f"{edited} ", first["seq"])
        assert await search(bob, f"{word} ") == []
        # and the old terms are gone from the index table, not only hidden: the
        # conversation's documents hold the edit's words and not the old one
        index = devserver.resources["SearchIndexTable"]
        deadline = time.monotonic() + TIMEOUT
        old_term, new_term = stem(word), stem(edited)  # as the indexer stores them
        while True:
            items = ddb.query(
                TableName=index,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": f"c#{conversation}"}},
            )["Items"]
            terms = {p.term for item in items for p in postings_of(item)}
            if old_term not in terms and new_term in terms:
                break
            assert time.monotonic() < deadline, items
            await asyncio.sleep(0.1)
