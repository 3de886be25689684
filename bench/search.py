"""Figure 7 - message search.

1. What indexing costs: messages of the bench corpus indexed by the real indexer
   (``SearchIndexer.apply``, what the stream consumer runs) with its DynamoDB calls
   counted (bench.counting): write units per indexed message in a 1:1 conversation and in
   groups of 10 and 50; and what one search costs in calls and read units (the search
   handler in-process on moto).
2. Search latency through the devserver over a corpus of ``messages`` messages: one user
   is in every conversation (her own index holds every message), the corpus is stored
   and indexed in bulk through the same indexer (fast: no stream round trips), then a real
   WebSocket client sends ``message:search`` requests of several kinds (a common word, a
   rare word, two words, a prefix, a phrase, one conversation) and times each reply.

For the latency figure the devserver runs in this process (its workers are processes as
always): the corpus items and the indexer's documents are put straight into its embedded
moto's tables, since moto takes about a millisecond per item over its API and a 100,000-
message corpus is 300,000 items. The template copy it runs has the Messages
stream mappings disabled, so the bulk load is not indexed twice nor counted by analytics,
and a 60 s timeout for SearchFunction (moto, not DynamoDB, is slow to answer a full page).
Every search is a real request: WebSocket, route, SearchFunction worker, moto over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
from switchboard import aws
from switchboard.dal.conversations import ConversationRepository
from switchboard.dal.items import to_item
from switchboard.search.index import SearchIndexRepository
from switchboard.search.indexer import Change, IndexLimits, MessageImage, SearchIndexer
from switchboard.search.text import analyse

from bench import ROOT
from bench.cost import request_units
from bench.counting import CallCounter, item_bytes, json_body
from bench.stats import summary
from devserver import ACCOUNT_ID, REGION
from devserver.tokens import mint
from tests.e2e.clients import Client
from tests.integration.conftest import FakeContext, Stack
from tests.support.events import frame, ws_event

TABLES = ("ConversationsTable", "MessagesTable", "SearchIndexTable")

# A marketplace chat vocabulary: a few very common words, many rarer ones (Zipf-like).
COMMON = """
    bike price still available pick up tomorrow thanks ok great deal cash offer
    condition photo send address meet today
""".split()  # noqa: SIM905
RARER = """
    brompton carbon frame helmet saddle pedals gears wheel tyre tube chain brakes
    invoice receipt delivery parcel courier tracking refund warranty scratch dent sofa
    table chair lamp drawer wardrobe mattress pillow kettle toaster blender camera lens
    tripod flash battery charger cable laptop keyboard monitor mouse guitar amplifier
    strings piano violin drum jacket boots scarf gloves umbrella stroller crib toys
    puzzle lego bicycle scooter skateboard kayak paddle tent
""".split()  # noqa: SIM905
FILLER = """
    the a is it for and to of my your can we you this
""".split()  # noqa: SIM905

QUERIES: dict[str, str] = {
    "common word": "price ",
    "rare word": "brompton ",
    "two words": "bike helmet ",
    "prefix (as typed)": "umbr",
    "phrase": '"carbon frame"',
}


def message_text(rng: random.Random) -> str:
    words = []
    for _ in range(rng.randint(5, 9)):
        roll = rng.random()
        if roll < 0.35:
            words.append(rng.choice(FILLER))
        elif roll < 0.75:
            words.append(rng.choice(COMMON))
        else:
            # Zipf-like among the rarer words: low indices far more often.
            words.append(RARER[min(int(rng.paretovariate(1.1)) - 1, len(RARER) - 1)])
    return " ".join(words)


def corpus(
    messages: int, conversations: int, reader: str, seed: int = 7
) -> Iterator[tuple[str, list[str], list[MessageImage], list[str]]]:
    """(conversationId, members, messages, senders) per conversation: ``reader`` is in every
    conversation with one peer; times are one second apart over the whole corpus."""
    rng = random.Random(seed)
    per = messages // conversations
    start_ms = int(time.time() * 1000) - messages * 1000
    at = start_ms
    for c in range(conversations):
        conversation_id = f"dm_bench{c:05d}{uuid.uuid4().hex[:8]}"
        peer = f"peer-{c:05d}"
        images, senders = [], []
        for seq in range(1, per + 1):
            at += 1000
            images.append(MessageImage(conversation_id, seq, at, message_text(rng), []))
            senders.append(peer if rng.random() < 0.5 else reader)
        yield conversation_id, [reader, peer], images, senders


def _batch_write(ddb: Any, table: str, items: list[dict[str, Any]]) -> None:
    for start in range(0, len(items), 25):
        request: dict[str, Any] = {
            table: [{"PutRequest": {"Item": i}} for i in items[start : start + 25]]
        }
        while request:
            request = ddb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}


def conversation_items(
    conversation_id: str, members: list[str], images: list[MessageImage], senders: list[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The items message:send would have left: (meta + members, messages)."""
    last = images[-1]
    conversation = [
        to_item(
            {
                "conversationId": conversation_id,
                "sk": "#meta",
                "members": set(members),
                "createdBy": members[0],
                "createdAt": images[0].created_at,
                "lastSeq": last.seq,
                "lastActivityAt": last.created_at,
                "lastMessage": {
                    "seq": last.seq,
                    "senderId": senders[-1],
                    "body": last.body[:200],
                    "createdAt": last.created_at,
                },
            }
        )
    ] + [
        to_item(
            {
                "conversationId": conversation_id,
                "sk": f"member#{m}",
                "memberId": m,
                "ackedSeq": last.seq,
                "readSeq": last.seq,
            }
        )
        for m in members
    ]
    stored = [
        to_item(
            {
                "conversationId": conversation_id,
                "seq": image.seq,
                "messageId": uuid.uuid4().hex,
                "senderId": sender,
                "body": image.body,
                "createdAt": image.created_at,
                "clientMessageId": uuid.uuid4().hex,
            }
        )
        for image, sender in zip(images, senders, strict=True)
    ]
    return conversation, stored


def store_conversation(
    ddb: Any,
    tables: dict[str, str],
    conversation_id: str,
    members: list[str],
    images: list[MessageImage],
    senders: list[str],
) -> None:
    """Writes ``conversation_items`` through the DynamoDB API."""
    conversation, stored = conversation_items(conversation_id, members, images, senders)
    _batch_write(ddb, tables["ConversationsTable"], conversation)
    _batch_write(ddb, tables["MessagesTable"], stored)


def indexer_for(ddb: Any, tables: dict[str, str]) -> SearchIndexer:
    return SearchIndexer(
        SearchIndexRepository(tables["SearchIndexTable"], client=ddb),
        ConversationRepository(tables["ConversationsTable"], tables["MessagesTable"], client=ddb),
        IndexLimits(),
    )


# messages indexed per conversation size (a 50-member message is ~16x the writes of a 1:1)
SAMPLES = {2: 200, 10: 50, 50: 20}


def index_cost(
    ddb: Any, tables: dict[str, str], samples: dict[int, int] | None = None
) -> dict[str, Any]:
    """Write units (and calls) per indexed message, 1:1 and in groups, counted on the
    indexer's client while it indexes corpus messages (``SAMPLES`` per size)."""
    rng = random.Random(11)
    result: dict[str, Any] = {}
    indexer = indexer_for(ddb, tables)
    for size, sample in (samples or SAMPLES).items():
        members = [f"m{i}-{uuid.uuid4().hex[:6]}" for i in range(size)]
        conversation_id = f"cv_cost{size}{uuid.uuid4().hex[:8]}"
        images = [
            MessageImage(conversation_id, seq, 1_700_000_000_000 + seq, message_text(rng), [])
            for seq in range(1, sample + 1)
        ]
        store_conversation(ddb, tables, conversation_id, members, images, [members[0]] * sample)
        counter = CallCounter().watch(ddb)
        try:
            for start in range(0, sample, 100):  # the stream's batch size
                indexer.apply([Change(None, i) for i in images[start : start + 100]])
        finally:
            counter.close()
        read_units, write_units = request_units(counter.calls, counter.items)
        documents = [analyse(i.body, [], IndexLimits().max_terms) for i in images]
        sizes = [item_bytes(item) for item in _document_items(ddb, tables, conversation_id)]
        result[f"members_{size}"] = {
            "distinct_terms_per_message": round(sum(len(d.terms) for d in documents) / sample, 2),
            "document_bytes_mean": round(sum(sizes) / max(len(sizes), 1)),
            "document_bytes_max": max(sizes, default=0),
            "write_units_per_message": round(write_units / sample, 2),
            "read_units_per_message": round(read_units / sample, 2),
            "calls_per_message": round(sum(counter.calls.values()) / sample, 2),
            "calls": dict(counter.calls),
        }
    return result


def _document_items(ddb: Any, tables: dict[str, str], conversation_id: str) -> list[Any]:
    """The conversation scope's documents (what the indexer wrote there)."""
    items: list[Any] = []
    params: dict[str, Any] = {
        "TableName": tables["SearchIndexTable"],
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": {":pk": {"S": f"c#{conversation_id}"}},
    }
    while True:
        page = ddb.query(**params)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        params["ExclusiveStartKey"] = page["LastEvaluatedKey"]


class ReadMeter:
    """Read request units of the DynamoDB reads a client makes, from their responses, by
    DynamoDB's rules: a Query is billed on the total size of what it returned (per 4 KB),
    a GetItem or BatchGetItem per item (per 4 KB each); eventually consistent reads half."""

    def __init__(self, client: Any) -> None:
        self.client, self.units, self._consistent = client, 0.0, False
        client.meta.events.register("before-call.dynamodb.*", self._before)
        client.meta.events.register("after-call.dynamodb.*", self._after)

    def close(self) -> None:
        self.client.meta.events.unregister("before-call.dynamodb.*", self._before)
        self.client.meta.events.unregister("after-call.dynamodb.*", self._after)

    def _before(self, params: Any = None, **_: Any) -> None:
        request = json_body(params)
        tables = request.get("RequestItems") or {}
        self._consistent = bool(request.get("ConsistentRead")) or any(
            isinstance(r, dict) and r.get("ConsistentRead") for r in tables.values()
        )

    def _after(self, event_name: str, parsed: Any = None, **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        rate = 1.0 if self._consistent else 0.5
        if operation == "Query":
            size = sum(item_bytes(i) for i in parsed.get("Items", []))
            self.units += rate * max(1, -(-size // 4096))
        elif operation == "GetItem" and "Item" in parsed:
            self.units += rate * max(1, -(-item_bytes(parsed["Item"]) // 4096))
        elif operation == "BatchGetItem":
            for items in parsed.get("Responses", {}).values():
                self.units += sum(rate * max(1, -(-item_bytes(i) // 4096)) for i in items)


@contextmanager
def template_without_message_streams() -> Iterator[Path]:
    """A copy of template.yaml (code paths made absolute) whose Messages stream mappings
    are disabled: the bulk load is indexed once, by the bench. Edited as text, so the
    template's tags (!Ref, !GetAtt ...) stay as they are."""
    text = (ROOT / "template.yaml").read_text()
    text = re.sub(
        r"^(\s+)(CodeUri|ContentUri): (\S+)$",
        lambda m: f"{m[1]}{m[2]}: {(ROOT / m[3]).resolve()}/",
        text,
        flags=re.MULTILINE,
    )
    text, disabled = re.subn(
        r"^(\s+)Stream: !GetAtt MessagesTable\.StreamArn$",
        lambda m: f"{m[0]}\n{m[1]}Enabled: false",
        text,
        flags=re.MULTILINE,
    )
    assert disabled >= 1, "no Messages stream mapping found in template.yaml"
    # moto answers a page of 500 documents in ~0.1-1 s (its response serialiser, not the
    # lookup): a loaded machine must not turn a slow answer into a 10 s Lambda timeout.
    text, longer = re.subn(
        r"^(  SearchFunction:\n(?:    .*\n)*?    Properties:\n)",
        lambda m: f"{m[1]}      Timeout: 60\n",
        text,
        flags=re.MULTILINE,
    )
    assert longer == 1, "SearchFunction not found in template.yaml"
    with tempfile.TemporaryDirectory(prefix="bench-search-") as folder:
        path = Path(folder) / "template.yaml"
        path.write_text(text)
        yield path


async def _latencies(ds: Any, reader: str, conversation_id: str, rounds: int) -> dict[str, Any]:
    queries = dict(QUERIES)
    results: dict[str, Any] = {}
    async with Client(ds, reader) as client:
        for _ in range(3):  # warm both search workers
            await client.call("message:search", {"query": "bike"})
        everything: list[float] = []
        for name, query in [*queries.items(), ("one conversation", "price ")]:
            data: dict[str, Any] = {"query": query, "limit": 20}
            if name == "one conversation":
                data["conversationId"] = conversation_id
            times, hits = [], 0
            for _ in range(rounds):
                started = time.perf_counter()
                reply = await client.call("message:search", data, timeout=60)
                times.append((time.perf_counter() - started) * 1000)
                hits = len(reply["hits"])
            everything += times
            results[name] = {"query": query, "hits": hits, **summary(times)}
        results["all"] = summary(everything)
    return results


def search_calls(
    stack: Stack, rounds: int = 3, messages: int = 300, conversations: int = 3
) -> dict[str, Any]:
    """AWS calls and read units of one search of each kind (the handler in-process on
    moto, its client's calls counted), over a small indexed corpus."""
    ddb = aws.dynamodb()
    tables = {lid: stack.table(lid) for lid in TABLES}
    reader = f"reader-{uuid.uuid4().hex[:6]}"
    indexer, first = indexer_for(ddb, tables), ""
    for conversation_id, members, images, senders in corpus(
        messages, conversations, reader, seed=3
    ):
        first = first or conversation_id
        store_conversation(ddb, tables, conversation_id, members, images, senders)
        indexer.apply([Change(None, i) for i in images])
    app = stack.handler("SearchFunction", SEARCH_LIMIT_PER_USER="100000")
    result: dict[str, Any] = {}
    for name, query in [*QUERIES.items(), ("one conversation", "price ")]:
        data: dict[str, Any] = {"query": query, "limit": 20}
        if name == "one conversation":
            data["conversationId"] = first
        counter, meter = CallCounter().watch(ddb), ReadMeter(ddb)
        try:
            for _ in range(rounds):
                event = ws_event(
                    "message:search",
                    body=frame("message:search", data),
                    connection_id=f"c-{reader}",
                    user_id=reader,
                )
                reply = json.loads(app.lambda_handler(event, FakeContext())["body"])
                assert reply["ok"], reply
        finally:
            counter.close()
            meter.close()
        result[name] = {
            "query": query,
            "hits": len(reply["data"]["hits"]),
            "calls": round(sum(counter.calls.values()) / rounds, 1),
            "read_units": round(meter.units / rounds, 1),
            "by_operation": {k: v // rounds for k, v in sorted(counter.calls.items())},
            "scans": counter.calls.get("dynamodb.Scan", 0),
        }
    return result


def costs(
    stack: Stack,
    progress: Callable[[str], None] = lambda _: None,
    samples: dict[int, int] | None = None,
    corpus_messages: int = 300,
) -> dict[str, Any]:
    """What indexing and searching cost in calls and request units (in-process, moto)."""
    ddb = aws.dynamodb()
    tables = {lid: stack.table(lid) for lid in TABLES}
    progress("search: write units per indexed message (1:1, 10 and 50 members)")
    indexing = index_cost(ddb, tables, samples)
    progress("search: AWS calls per search")
    searching = search_calls(stack, messages=corpus_messages)
    return {
        "index_cost": indexing,
        "search_calls": searching,
        "wru_per_indexed_message_1to1": indexing["members_2"]["write_units_per_message"],
        "calls_per_search_max": max(q["calls"] for q in searching.values()),
        "read_units_per_search_max": max(q["read_units"] for q in searching.values()),
    }


class BulkIndexRepository(SearchIndexRepository):
    """The indexer's documents written straight into the embedded moto's table (the bench
    runs the devserver in its own process): the same items the indexer would send, without
    25-item HTTP round trips that moto answers in ~1 ms per item. Only the bulk load goes
    this way; every search is a real request through the devserver."""

    def __init__(self, table_name: str, moto_table: Any) -> None:
        super().__init__(table_name)
        self.moto_table = moto_table

    def write(self, puts: Iterable[dict[str, Any]], deletes: Iterable[dict[str, Any]]) -> None:
        _insert(self.moto_table, puts)
        assert not list(deletes), "the bulk load only adds messages"


def _insert(table: Any, items: Iterable[dict[str, Any]]) -> None:
    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    for attrs in items:
        hash_value = DynamoType(attrs[table.hash_key_attr])
        range_value = DynamoType(attrs[table.range_key_attr])
        table.items[hash_value][range_value] = Item(hash_value, range_value, attrs)


class InProcessDevserver:
    """The devserver (DevServer, as `python -m devserver` runs it) on an event loop in a
    thread of this process, so its embedded moto is reachable for the bulk load. Has what
    the e2e Client needs of a RunningDevserver."""

    def __init__(self, template: Path) -> None:
        from moto.moto_api._internal.models import moto_api_backend

        from devserver.server import DevServer, DevServerOptions

        moto_api_backend.reset()  # the in-process stacks of earlier figures share moto
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request log
        self.server = DevServer(
            DevServerOptions(template=template, ws_port=0, http_port=0, workers=2)
        )
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> InProcessDevserver:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(timeout=180)
        self.ws, self.resources = self.server.ws_url, self.server.resources
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(timeout=120)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)

    def token(self, user_id: str, admin: bool = False, ttl: int = 3600) -> str:
        return mint(user_id, admin=admin, ttl_seconds=ttl)

    def url(self, token: str | None) -> str:
        return self.ws if token is None else f"{self.ws}?token={token}"

    def moto_table(self, logical_id: str) -> Any:
        from moto.dynamodb.models import dynamodb_backends

        return dynamodb_backends[ACCOUNT_ID][REGION].tables[self.resources[logical_id]]

    def client(self) -> Any:
        return boto3.client(
            "dynamodb",
            endpoint_url=self.server.moto_url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


def _seed(
    ds: InProcessDevserver, reader: str, messages: int, conversations: int
) -> tuple[str, int]:
    """Stores the corpus (the items message:send leaves) and indexes it with the real
    indexer; returns the first conversation and the number of index items (documents)."""
    tables = ds.resources
    indexer = SearchIndexer(
        BulkIndexRepository(tables["SearchIndexTable"], ds.moto_table("SearchIndexTable")),
        ConversationRepository(
            tables["ConversationsTable"], tables["MessagesTable"], client=ds.client()
        ),
        IndexLimits(),
    )
    first, documents = "", 0
    for conversation_id, members, images, senders in corpus(messages, conversations, reader):
        first = first or conversation_id
        conversation, stored = conversation_items(conversation_id, members, images, senders)
        _insert(ds.moto_table("ConversationsTable"), conversation)
        _insert(ds.moto_table("MessagesTable"), stored)
        for start in range(0, len(images), 100):  # the stream's batch size
            documents += indexer.apply([Change(None, i) for i in images[start : start + 100]]).puts
    return first, documents


def measure(
    messages: int,
    conversations: int,
    rounds: int,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Search latency through the devserver over the corpus (see the module doc)."""
    reader = f"reader-{uuid.uuid4().hex[:6]}"
    with template_without_message_streams() as template, InProcessDevserver(template) as ds:
        progress(f"search: storing and indexing {messages:,} messages")
        started = time.perf_counter()
        first, documents = _seed(ds, reader, messages, conversations)
        seeding = time.perf_counter() - started
        progress(f"search: {documents:,} documents in {seeding:.0f} s; {rounds} rounds")
        latency = asyncio.run(_latencies(ds, reader, first, rounds))  # type: ignore[arg-type]
    return {
        "corpus_messages": messages,
        "corpus_conversations": conversations,
        "documents": documents,
        "seeding_seconds": round(seeding, 1),
        "latency_ms": latency,
        "search_p50_ms": latency["all"]["p50"],
        "search_p99_ms": latency["all"]["p99"],
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.search [--messages N] [--conversations N] [--rounds N]``: figure 7
    alone (the costs in-process, then the latency through the devserver), as JSON."""
    import argparse

    from bench.stack import local_stack

    parser = argparse.ArgumentParser(prog="python -m bench.search", description=main.__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--conversations", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    started = time.perf_counter()

    def say(message: str) -> None:
        print(f"  {time.perf_counter() - started:6.1f}s  {message}", flush=True)

    with local_stack() as stack:
        result = costs(stack, progress=say)
    result.update(measure(args.messages, args.conversations, args.rounds, progress=say))
    result["load_average"] = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    result["seconds"] = round(time.perf_counter() - started, 1)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
