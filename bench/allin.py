"""Figure 2b - the all-in cost of a message: every AWS call a 1:1 send *and everything it
sets off* makes, counted in-process on moto.

``pairs`` senders each send ``per_pair`` chat-like messages (bench.search's corpus text)
to an online recipient through the message handler. Then every stream and queue the
template maps to a function is drained the way Lambda would: the new records of each
DynamoDB stream are handed to its consumer in batches of the mapping's ``BatchSize``
(Powertools-shaped events, the devserver's own conversion), the messages of each SQS
queue to its consumer, and again until nothing new appears (a consumer's writes can feed
another stream). Every botocore call of the process is counted while a handler runs
(bench.counting.counting_every_client), so a consumer's own clients are counted too.

Before the counted round the same traffic runs once uncounted and is drained, so the
consumers are warm as they are in a running deployment (cached members, clients).

Billed without a call of its own: a table's global secondary index upkeep, counted from
the stream records of the writes (``index_write_units``: the first drain round's records
are the sends', later ones the consumers'), and a put's size (``counting.write_units``:
a unit per started KB).

What is not a billed AWS call and so not counted: DynamoDB Streams reads by Lambda's
event source mappings (free for Lambda triggers), SQS polling on an empty queue (a fixed
cost per mapping, not per message). SQS receives and deletes that carry messages are
billed and counted (one ReceiveMessage and one DeleteMessageBatch per batch, as Lambda's
poller makes them).
"""

from __future__ import annotations

import math
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from bench.cost import request_units
from bench.counting import counting_every_client, write_units
from bench.search import message_text
from devserver.event_sources import EventSources
from tests.integration.conftest import FakeContext, Stack
from tests.integration.test_messaging import Client

MAX_ROUNDS = 6


@dataclass
class Tally:
    """Calls, items and invocations, added up over handler runs."""

    calls: Counter[str] = field(default_factory=Counter)
    items: Counter[str] = field(default_factory=Counter)
    # the same per function ("poller" for Lambda's SQS receives and deletes)
    by_function: dict[str, tuple[Counter[str], Counter[str]]] = field(default_factory=dict)
    invocations: Counter[str] = field(default_factory=Counter)
    # billed Lambda time per function: sum of the in-process durations, rounded up to 1 ms
    billed_ms: Counter[str] = field(default_factory=Counter)
    # time in AWS calls per "function service.Operation" (the embedded moto's answers)
    call_ms: Counter[str] = field(default_factory=Counter)
    records: Counter[str] = field(default_factory=Counter)
    # write units of global secondary index upkeep, by the function whose writes caused it
    index_units: Counter[str] = field(default_factory=Counter)

    def run(self, function: str, call: Callable[[], Any]) -> Any:
        with counting_every_client() as counter:
            start = time.perf_counter()
            try:
                return call()
            finally:
                elapsed = (time.perf_counter() - start) * 1000
                self.billed_ms[function] += math.ceil(elapsed)
                self.invocations[function] += 1
                self.add(function, counter.calls, counter.items)
                self.call_ms.update({f"{function} {k}": v for k, v in counter.ms.items()})

    def add(self, function: str, calls: Counter[str], items: Counter[str]) -> None:
        self.calls.update(calls)
        self.items.update(items)
        mine = self.by_function.setdefault(function, (Counter(), Counter()))
        mine[0].update(calls)
        mine[1].update(items)


@dataclass(frozen=True)
class StreamSource:
    function: str
    stream_arn: str
    table: str
    batch_size: int


@dataclass(frozen=True)
class QueueSource:
    function: str
    queue_url: str
    batch_size: int


def sources(stack: Stack) -> tuple[list[StreamSource], list[QueueSource]]:
    """The template's enabled DynamoDB and SQS event source mappings."""
    streams: list[StreamSource] = []
    queues: list[QueueSource] = []
    sqs = stack.client("sqs")
    for spec in stack.functions.values():
        for event in spec.events.values():
            props = event.get("Properties") or {}
            if props.get("Enabled") in (False, "false"):
                continue
            if event.get("Type") == "DynamoDB":
                arn = str(props["Stream"])
                table = arn.split(":table/", 1)[-1].split("/stream/", 1)[0]
                streams.append(
                    StreamSource(spec.logical_id, arn, table, int(props.get("BatchSize", 100)))
                )
            elif event.get("Type") == "SQS":
                name = str(props["Queue"]).rsplit(":", 1)[-1]
                url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
                queues.append(QueueSource(spec.logical_id, url, int(props.get("BatchSize", 10))))
    return streams, queues


class StreamReader:
    """New records of the streams (moto keeps every record of a stream; the ids already
    handed out are remembered)."""

    def __init__(self, stack: Stack, arns: set[str]) -> None:
        self.client = stack.client("dynamodbstreams")
        self.arns = sorted(arns)
        self.seen: set[str] = set()
        self.take()  # what is already there is not ours

    def _read(self, arn: str) -> Iterator[dict[str, Any]]:
        shards = self.client.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
        for shard in shards:
            iterator = self.client.get_shard_iterator(
                StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            while iterator:
                response = self.client.get_records(ShardIterator=iterator, Limit=1000)
                if not response["Records"]:
                    break
                yield from (EventSources._stream_record(r, arn) for r in response["Records"])
                iterator = response.get("NextShardIterator")

    def take(self) -> dict[str, list[dict[str, Any]]]:
        """The records not taken before, per stream ARN, in stream order."""
        fresh: dict[str, list[dict[str, Any]]] = {}
        for arn in self.arns:
            for record in self._read(arn):
                if record["eventID"] not in self.seen:
                    self.seen.add(record["eventID"])
                    fresh.setdefault(arn, []).append(record)
        return fresh


@dataclass(frozen=True)
class SecondaryIndex:
    keys: tuple[str, ...]
    projected: tuple[str, ...] | None  # None: every attribute (ProjectionType ALL)


def secondary_indexes(stack: Stack, table: str) -> list[SecondaryIndex]:
    description = stack.client("dynamodb").describe_table(TableName=table)["Table"]
    table_keys = tuple(k["AttributeName"] for k in description["KeySchema"])
    found = []
    for index in description.get("GlobalSecondaryIndexes", []):
        keys = tuple(k["AttributeName"] for k in index["KeySchema"])
        projection = index.get("Projection") or {}
        projected = None
        if projection.get("ProjectionType") != "ALL":
            projected = keys + table_keys + tuple(projection.get("NonKeyAttributes", []))
        found.append(SecondaryIndex(keys, projected))
    return found


def index_write_units(record: dict[str, Any], indexes: list[SecondaryIndex]) -> int:
    """What DynamoDB bills to keep a table's global secondary indexes in step with one
    change (its stream record, old and new images): for each index, a write of the new
    index item (1 unit per started KB) when one appears or its projection changes, a
    delete when one goes, and both when its key changes."""
    change = record.get("dynamodb") or {}
    old, new = change.get("OldImage"), change.get("NewImage")
    units = 0
    for index in indexes:

        def entry(image: dict[str, Any] | None, index: SecondaryIndex = index) -> Any:
            if not image or not all(k in image for k in index.keys):
                return None
            if index.projected is None:
                return image
            return {k: v for k, v in image.items() if k in index.projected}

        before, after = entry(old), entry(new)
        if before == after:  # not in the index, or its index item unchanged
            continue
        moved = (
            before is not None
            and after is not None
            and any(before[k] != after[k] for k in index.keys)
        )
        if after is None or moved:
            units += 1  # the old index item's delete
        if after is not None:
            units += write_units(after)
    return units


class Consumers:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.streams, self.queues = sources(stack)
        self.handlers: dict[str, ModuleType] = {}
        self.reader = StreamReader(stack, {s.stream_arn for s in self.streams})
        self.sqs = stack.client("sqs")
        self.indexes = {s.stream_arn: secondary_indexes(stack, s.table) for s in self.streams}
        # What is already queued is not ours either: on a stack shared with other tests,
        # their delayed messages (ring timeouts, retries) would surface round after round.
        for queue in self.queues:
            self.sqs.purge_queue(QueueUrl=queue.queue_url)

    def handler(self, function: str) -> ModuleType:
        if function not in self.handlers:
            self.handlers[function] = self.stack.handler(function)
        return self.handlers[function]

    def drain(self, tally: Tally, sender: Tally | None = None) -> None:
        """Hands every new stream record and queued message to its consumers until none
        is left (see the module doc). The records show what the writes cost in secondary
        index upkeep: those of the first round are the sends' (``sender``'s
        MessageFunction), later ones the consumers'."""
        for round_ in range(MAX_ROUNDS):
            fresh = self.reader.take()
            for arn, records in fresh.items():
                units = sum(index_write_units(r, self.indexes[arn]) for r in records)
                if not units:
                    continue
                if round_ == 0 and sender is not None:
                    sender.index_units["MessageFunction"] += units
                else:
                    tally.index_units["index upkeep"] += units
            moved = False
            for source in self.streams:
                records = fresh.get(source.stream_arn, [])
                tally.records[f"{source.table} -> {source.function}"] += len(records)
                for start in range(0, len(records), source.batch_size):
                    event = {"Records": records[start : start + source.batch_size]}
                    result = tally.run(
                        source.function,
                        lambda e=event, f=source.function: self.handler(f).lambda_handler(
                            e, FakeContext()
                        ),
                    )
                    if (result or {}).get("batchItemFailures"):
                        raise RuntimeError(f"{source.function} failed records: {result}")
                    moved = True
            for queue in self.queues:
                moved |= self._drain_queue(queue, tally)
            if not moved:
                return
        raise RuntimeError(
            f"streams and queues still moving after {MAX_ROUNDS} rounds: {dict(tally.records)}"
        )

    def _drain_queue(self, queue: QueueSource, tally: Tally) -> bool:
        moved = False
        arn = self.sqs.get_queue_attributes(QueueUrl=queue.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        while True:
            # Lambda's poller: one billed ReceiveMessage per batch it hands over ...
            with counting_every_client() as poller:
                response = self.sqs.receive_message(
                    QueueUrl=queue.queue_url,
                    MaxNumberOfMessages=min(queue.batch_size, 10),
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                    WaitTimeSeconds=0,
                )
            messages = response.get("Messages", [])
            if not messages:
                return moved
            moved = True
            tally.add("SQS poller", poller.calls, poller.items)
            records = [EventSources._sqs_record(m, arn) for m in messages]
            result = tally.run(
                queue.function,
                lambda r=records: self.handler(queue.function).lambda_handler(  # type: ignore[misc]
                    {"Records": r}, FakeContext()
                ),
            )
            failed = {f["itemIdentifier"] for f in (result or {}).get("batchItemFailures", [])}
            done = [m for m in messages if m["MessageId"] not in failed]
            if failed:
                raise RuntimeError(f"{queue.function} failed messages: {result}")
            # ... and one DeleteMessageBatch of what the function processed.
            with counting_every_client() as poller:
                self.sqs.delete_message_batch(
                    QueueUrl=queue.queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(done)
                    ],
                )
            tally.add("SQS poller", poller.calls, poller.items)
            tally.records[f"{queue.queue_url.rsplit('/', 1)[-1]} -> {queue.function}"] += len(
                messages
            )


def measure(
    stack: Stack,
    pairs: int = 10,
    per_pair: int = 10,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """The send (request path) and what it sets off, per message (see the module doc)."""
    from switchboard.observability import logger

    level = logger.log_level
    logger.setLevel("WARNING")  # a line per handled request would drown the progress
    try:
        return _measure(stack, pairs, per_pair, progress)
    finally:
        logger.setLevel(level)


def _measure(
    stack: Stack, pairs: int, per_pair: int, progress: Callable[[str], None]
) -> dict[str, Any]:
    app = stack.handler("MessageFunction")
    connect = stack.handler("ConnectionFunction")
    consumers = Consumers(stack)
    rng = random.Random(18)
    tag = uuid.uuid4().hex[:6]
    senders = [Client(stack, app, connect, f"allin-s{i}-{tag}") for i in range(pairs)]
    receivers = [Client(stack, app, connect, f"allin-r{i}-{tag}") for i in range(pairs)]
    conversations = [
        s.ok("conversation:create", {"members": [r.user_id]})["conversationId"]
        for s, r in zip(senders, receivers, strict=True)
    ]
    # Contacts, as chat is: each recipient accepts (a request's messages are priced the
    # same on the send, but are indexed in no recipient's own search scope)
    for receiver, cid in zip(receivers, conversations, strict=True):
        receiver.ok("conversation:accept", {"conversationId": cid})

    def send_round(label: str, tally: Tally) -> int:
        sent = 0
        for n in range(per_pair):
            for sender, receiver, cid in zip(senders, receivers, conversations, strict=True):
                body = message_text(rng)
                reply = tally.run(
                    "MessageFunction",
                    lambda s=sender, c=cid, b=body, m=f"{label}{n}": s.call(
                        "message:send", {"conversationId": c, "clientMessageId": m, "body": b}
                    ),
                )
                if not reply.get("ok"):
                    raise RuntimeError(f"send refused: {reply}")
                if receiver.frames("message:new")[-1]["data"]["body"] != body:
                    raise RuntimeError("a counted send was not delivered")
                sent += 1
        return sent

    # Warm-up: the same traffic, uncounted, and what it set off.
    send_round("warm", Tally())
    consumers.drain(Tally())
    progress(f"all-in: {pairs} pairs warm, consumers drained")

    request = Tally()
    sent = send_round("m", request)
    triggered = Tally()
    consumers.drain(triggered, sender=request)
    progress(f"all-in: {sent} messages sent and every stream and queue drained")
    return {
        "messages": sent,
        "pairs": pairs,
        "request": _summary(request, sent, stack),
        "triggered": _summary(triggered, sent, stack),
        "records": dict(sorted(triggered.records.items())),
    }


def _summary(tally: Tally, messages: int, stack: Stack) -> dict[str, Any]:
    read_units, write_units = request_units(tally.calls, tally.items)
    write_units += sum(tally.index_units.values())
    per_function: dict[str, dict[str, Any]] = {}
    for name in tally.index_units:
        tally.by_function.setdefault(name, (Counter(), Counter()))
    for name, (calls, items) in sorted(tally.by_function.items()):
        reads, writes = request_units(calls, items)
        writes += tally.index_units.get(name, 0)
        n = tally.invocations.get(name, 0)
        per_function[name] = {
            "invocations": n,
            "billed_ms_per_invocation": round(tally.billed_ms[name] / n, 1) if n else 0,
            "memory_mb": stack.functions[name].memory_size if name in stack.functions else 0,
            "calls": dict(sorted(calls.items())),
            "read_units_per_message": round(reads / messages, 3),
            "write_units_per_message": round(writes / messages, 3),
            "index_write_units_per_message": round(tally.index_units[name] / messages, 3),
        }
    return {
        "calls": dict(sorted(tally.calls.items())),
        "items": dict(sorted(tally.items.items())),
        "calls_per_message": round(sum(tally.calls.values()) / messages, 3),
        "read_units_per_message": round(read_units / messages, 3),
        "write_units_per_message": round(write_units / messages, 3),
        "posts_per_message": round(
            tally.calls.get("apigatewaymanagementapi.PostToConnection", 0) / messages, 3
        ),
        "sqs_per_message": round(
            sum(n for k, n in tally.calls.items() if k.startswith("sqs.")) / messages, 3
        ),
        "functions": per_function,
        # where the in-process time went, per message: the calls' share (moto) per kind
        "call_ms_per_message": {
            key: round(ms / messages, 2) for key, ms in tally.call_ms.most_common()
        },
        "handler_ms_per_message": {
            name: round(ms / messages, 2) for name, ms in tally.billed_ms.most_common()
        },
    }
