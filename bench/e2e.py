"""Figures 4 and 5 - end to end through the devserver (template.yaml on moto, every
function in its own worker processes) with real WebSocket clients speaking the wire
protocol (tests/e2e/clients.py), started as the e2e tests start it (tests/e2e/conftest.py).

4. Throughput and latency: pairs of users in 1:1 conversations. Every sender sends back
   to back for a while (closed loop): the sustained delivered messages per second. Then
   each sender sends at a steady rate (open loop) adding up to a fraction of that
   throughput, and every recipient stamps each `message:new` on arrival:
   sender-to-recipient latency p50/p95/p99.
5. Offline backlog: 1,000 messages to a user who is offline, then the user connects:
   time until all of them have arrived, and whether they arrived in seq order; once with
   one ``message:new`` post per message and once with ``backlog=batch`` (``message:batch``
   frames of up to 32 KB), in the same run: ``backlog_speedup`` is the ratio.

The send-rate limits are raised by template parameters for the run (the bench measures
the pipeline, not the limiter); traffic goes to 127.0.0.1 only and every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.stats import summary
from tests.e2e.clients import Client, Frame, admin
from tests.e2e.conftest import RunningDevserver, _start

UNLIMITED = [
    "--param",
    "SendRateLimitPerUser=1000000",
    "--param",
    "SendRateLimitPerConnection=1000000",
    "--log-level",
    "WARNING",
]


SEND_TIMEOUT = 60.0
CONNECT_TIMEOUT = 120.0
# No invocation for this long: what was written to a stream or a queue has been handled
# (stream pollers read every 0.25 s, SQS pollers wait 1 s per receive).
SETTLE_SECONDS = 1.5


class TimedClient(Client):
    """A Client that stamps the latency of every new message whose body is a send time."""

    def __init__(self, ds: RunningDevserver, user_id: str) -> None:
        super().__init__(ds, user_id)
        self.latencies_ms: list[float] = []
        self.arrival_order: list[int] = []
        self.last_arrival = 0.0
        self.first_arrival = 0.0

    async def send(
        self, conversation_id: str, body: str, client_message_id: str | None = None
    ) -> dict[str, Any]:
        # A loaded machine may answer slower than a test would wait: the bench measures
        # the rate, so a reply may take up to SEND_TIMEOUT before the run fails.
        return await self.call(
            "message:send",
            {
                "conversationId": conversation_id,
                "clientMessageId": client_message_id or uuid.uuid4().hex,
                "body": body,
            },
            timeout=SEND_TIMEOUT,
        )

    def _record(self, message: Frame) -> bool:
        fresh = super()._record(message)
        if fresh:
            now = time.perf_counter()
            self.first_arrival = self.first_arrival or now
            self.last_arrival = now
            self.arrival_order.append(int(message["seq"]))
            body = str(message.get("body", ""))
            if body.startswith("t="):
                self.latencies_ms.append((now - float(body[2:])) * 1000)
        return fresh


@contextlib.contextmanager
def devserver(workdir: Path, workers: int) -> Iterator[RunningDevserver]:
    # Every worker started up front: the measured windows hold no cold start.
    server = _start(workdir, [*UNLIMITED, "--workers", str(workers), "--prewarm"])
    try:
        yield server
    finally:
        server.stop()


def stamp() -> str:
    return f"t={time.perf_counter()!r}"


async def _pairs(ds: RunningDevserver, count: int) -> list[tuple[TimedClient, TimedClient, str]]:
    tag = uuid.uuid4().hex[:6]
    pairs = []
    for i in range(count):
        sender, recipient = TimedClient(ds, f"s{i}-{tag}"), TimedClient(ds, f"r{i}-{tag}")
        await sender.connect()
        await recipient.connect()
        conversation = await sender.create_conversation([recipient.user_id])
        await sender.send(conversation, "warm-up")
        await recipient.wait_for_messages(conversation, {1})
        recipient.latencies_ms.clear()
        pairs.append((sender, recipient, conversation))
    return pairs


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# The devserver's components, as the CPU figures name them.
EVENT_LOOP = "devserver event loop (gateway, worker IPC, stream mappings)"
MOTO = "devserver threads (moto, SQS pollers)"
CLIENTS = "bench clients (this process)"
# An idle devserver uses ~5 % of a core (its eight SQS long polls, one a second each).
QUIET_CORES = 0.1


def cpu_seconds(stat_path: str) -> float:
    """user + system CPU seconds of a process or thread (/proc/<pid>[/task/<tid>]/stat);
    0 when it is gone."""
    try:
        with open(stat_path) as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def cpu_snapshot(ds: RunningDevserver) -> dict[str, float]:
    """CPU seconds so far per component: the devserver's event loop thread, its other
    threads (moto serves each request on a thread of its own; the SQS long polls), each
    function's worker processes (by logical id) and this process (the clients). Linux
    /proc; empty elsewhere."""
    root = ds.process.pid
    if not os.path.exists(f"/proc/{root}/stat"):
        return {}
    pools = admin(ds, "GET", "/__devserver/workers")
    total = cpu_seconds(f"/proc/{root}/stat")
    loop = cpu_seconds(f"/proc/{root}/task/{root}/stat")
    snapshot = {EVENT_LOOP: loop, MOTO: total - loop}
    for logical_id, pool in pools.items():
        snapshot[logical_id] = sum(
            cpu_seconds(f"/proc/{w['pid']}/stat") for w in pool["workers"] if w["alive"]
        )
    times = os.times()
    snapshot[CLIENTS] = times.user + times.system
    return snapshot


async def _until_quiet(ds: RunningDevserver, timeout: float = 120.0) -> tuple[float, bool]:
    """Waits until the devserver and its workers use under QUIET_CORES of a core for a
    second (the stream consumers have caught up), at most ``timeout`` seconds; returns
    the seconds waited and whether it got quiet."""
    start = time.monotonic()
    before = await asyncio.to_thread(cpu_snapshot, ds)
    while time.monotonic() - start < timeout:
        await asyncio.sleep(1.0)
        now = await asyncio.to_thread(cpu_snapshot, ds)
        used = sum(now[k] - before.get(k, 0.0) for k in now if k != CLIENTS)
        if used < QUIET_CORES:
            return round(time.monotonic() - start, 1), True
        before = now
    return round(time.monotonic() - start, 1), False


def cpu_per_message(
    before: dict[str, float], after: dict[str, float], messages: int
) -> dict[str, Any]:
    """CPU milliseconds per delivered message by component, and what they cap: the
    devserver process is one interpreter (one core at most, whatever the machine has),
    everything together shares the machine's cores."""
    if not before or not messages:
        return {}
    per = {k: round((after[k] - before.get(k, 0.0)) * 1000 / messages, 2) for k in after}
    per = dict(sorted(((k, v) for k, v in per.items() if v > 0), key=lambda kv: -kv[1]))
    devserver = per.get(EVENT_LOOP, 0.0) + per.get(MOTO, 0.0)
    total = sum(per.values())
    cores = os.cpu_count() or 1
    return {
        "ms_per_message": per,
        "devserver_ms_per_message": round(devserver, 2),
        "total_ms_per_message": round(total, 2),
        # Ceilings on an otherwise idle machine: the devserver process saturates one core
        # at 1000 / its ms; all of it together saturates the cores at cores*1000 / total.
        "ceiling_msgs_per_s_devserver_process": round(1000 / devserver, 1) if devserver else None,
        "ceiling_msgs_per_s_all_cores": round(cores * 1000 / total, 1) if total else None,
        "cores": cores,
    }


async def latency_and_throughput(
    ds: RunningDevserver,
    pairs_count: int,
    load_fraction: float,
    steady_seconds: float,
    saturate_seconds: float,
    in_flight: int,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Throughput first (every sender back to back), then latency at ``load_fraction`` of
    that throughput, so the latency is measured below saturation on whatever machine
    runs it (at or above saturation it would only measure the queue)."""
    pairs = await _pairs(ds, pairs_count)

    def arrived() -> int:
        return sum(len(r.latencies_ms) for _, r, _ in pairs)

    try:
        # The warm-ups' stream work and the idle users' connections (each sets off the
        # connection consumers and the aggregator) are let finish first, up to 2 minutes,
        # so the CPU counted below is the burst's; if they have not, that is reported.
        settle_before, quiet_before = await _until_quiet(ds)
        sent = {"count": 0}
        sends_by = {s.user_id: 0 for s, _, _ in pairs}
        seen = {r.user_id: (len(r.arrival_order), r.duplicates) for _, r, _ in pairs}
        cpu_before = await asyncio.to_thread(cpu_snapshot, ds)
        load_before = os.getloadavg()
        deadline = time.perf_counter() + saturate_seconds
        burst_start = time.perf_counter()

        async def saturate(sender: TimedClient, conversation: str) -> None:
            while time.perf_counter() < deadline:
                await sender.send(conversation, stamp())
                sent["count"] += 1
                sends_by[sender.user_id] += 1

        await asyncio.gather(*(saturate(s, c) for s, _, c in pairs for _ in range(in_flight)))
        await _wait_until(lambda: arrived() >= sent["count"], timeout=60)
        last_arrival = max(r.last_arrival for _, r, _ in pairs)
        throughput = sent["count"] / (last_arrival - burst_start)
        load_after = os.getloadavg()
        cpu_window = await asyncio.to_thread(cpu_snapshot, ds)
        # Every message once, in seq order: what each recipient got since the burst began.
        delivery = {"in_order": True, "delivered_once": True, "duplicates": 0}
        for sender, recipient, _ in pairs:
            count, duplicates = seen[recipient.user_id]
            got = recipient.arrival_order[count:]
            delivery["duplicates"] += recipient.duplicates - duplicates
            delivery["in_order"] &= got == sorted(got)
            delivery["delivered_once"] &= len(got) == len(set(got)) == sends_by[sender.user_id]
        delivery["delivered_once"] &= delivery["duplicates"] == 0
        # The consumers' share (search index, analytics...) counts too: until quiet. If
        # the devserver was still busy with the crowd before the burst, that work would be
        # counted as the messages': then only the burst's own window is (an upper bound).
        settled, _ = await _until_quiet(ds)
        if quiet_before:
            after = await asyncio.to_thread(cpu_snapshot, ds)
            cpu = cpu_per_message(cpu_before, after, sent["count"])
            cpu["counted"] = "the burst and its stream consumers until quiet"
        else:
            cpu = cpu_per_message(cpu_before, cpu_window, sent["count"])
            cpu["counted"] = (
                "the burst's window only: the idle users' connection work was still running "
                f"after {settle_before:.0f} s (included: an upper bound)"
            )
        progress(
            f"e2e: {sent['count']} messages back to back, {throughput:.1f} msg/s "
            f"(load {load_before[0]:.1f}), in order: {delivery['in_order']}, "
            f"once: {delivery['delivered_once']}; CPU ms/message: "
            f"devserver {cpu.get('devserver_ms_per_message')}, "
            f"all {cpu.get('total_ms_per_message')}"
        )
        if not delivery["in_order"]:
            raise RuntimeError("e2e: a recipient got messages out of seq order")

        for _, recipient, _ in pairs:
            recipient.latencies_ms.clear()
        rate_per_sender = load_fraction * throughput / pairs_count
        per_sender = max(1, round(rate_per_sender * steady_seconds))
        start = time.perf_counter()

        async def steady(sender: TimedClient, conversation: str, offset: float) -> None:
            sends = []
            for i in range(per_sender):
                await asyncio.sleep(
                    max(0.0, start + offset + i / rate_per_sender - time.perf_counter())
                )
                sends.append(asyncio.create_task(sender.send(conversation, stamp())))
            await asyncio.gather(*sends)

        await asyncio.gather(
            *(
                steady(s, c, i / (rate_per_sender * pairs_count))
                for i, (s, _, c) in enumerate(pairs)
            )
        )
        await _wait_until(lambda: arrived() >= per_sender * pairs_count, timeout=60)
        latencies = [ms for _, r, _ in pairs for ms in r.latencies_ms]
        progress(
            f"e2e: {len(latencies)} messages at {rate_per_sender * pairs_count:.1f} msg/s, "
            f"p99 {summary(latencies)['p99']:.0f} ms"
        )
    finally:
        await asyncio.gather(*(c.close() for p in pairs for c in p[:2]), return_exceptions=True)
    return {
        "pairs": pairs_count,
        "clients": 2 * pairs_count,
        "saturation_seconds": saturate_seconds,
        "saturation_in_flight_per_sender": in_flight,
        "saturation_messages": sent["count"],
        "saturation_load_average": [round(load_before[0], 1), round(load_after[0], 1)],
        "saturation_delivery": delivery,
        "settle_seconds_before_burst": settle_before,
        "settled_before_burst": quiet_before,
        "saturation_settle_seconds": settled,
        "cpu": cpu,
        "load_fraction": load_fraction,
        "offered_msgs_per_s": round(rate_per_sender * pairs_count, 2),
        "steady_seconds": steady_seconds,
        "latency_ms": summary(latencies),
        "latency_samples_ms": [round(x, 2) for x in latencies],
        "e2e_p99_ms": summary(latencies)["p99"],
        "e2e_msgs_per_s": round(throughput, 1),
    }


async def idle_crowd(
    ds: RunningDevserver, users: int, concurrency: int, progress: Callable[[str], None]
) -> tuple[list[Client], dict[str, Any]]:
    """``users`` connected users who send nothing (no pings: the devserver, like API
    Gateway, keeps a socket 10 minutes), ``concurrency`` handshakes at a time:
    ``load_connect_per_s`` is how fast they got in."""
    tag = uuid.uuid4().hex[:6]
    crowd = [Client(ds, f"idle{i}-{tag}") for i in range(users)]
    gate = asyncio.Semaphore(concurrency)

    async def connect(client: Client) -> None:
        async with gate:
            # A handshake runs the authorizer and $connect in the devserver's workers: on
            # a shared 2-core machine a queue of them can take longer than a test waits.
            await client.connect(timeout=CONNECT_TIMEOUT)

    start = time.perf_counter()
    await asyncio.gather(*(connect(c) for c in crowd))
    seconds = time.perf_counter() - start
    progress(f"e2e: {users} users connected in {seconds:.1f} s ({users / seconds:.1f}/s)")
    return crowd, {
        "users": users,
        "concurrency": concurrency,
        "seconds": round(seconds, 2),
        "load_connect_per_s": round(users / seconds, 1),
    }


async def _wait_until(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("e2e: not every message arrived in time")
        await asyncio.sleep(0.02)


async def settle(ds: RunningDevserver, timeout: float = 120.0) -> float:
    """Waits until the devserver is quiet: every function's workers idle and no new
    invocation for SETTLE_SECONDS (longer than a stream poller's and an SQS long poll's
    wait, so work already written to a stream or queue has been picked up). Returns the
    seconds waited; raises TimeoutError if it is still busy after ``timeout``."""
    start = time.monotonic()
    quiet_since, last = start, None
    while True:
        pools = await asyncio.to_thread(admin, ds, "GET", "/__devserver/workers")
        invocations = sum(w["invocations"] for p in pools.values() for w in p["workers"])
        busy = any(
            p["starting"] or p["idle"] < sum(w["alive"] for w in p["workers"])
            for p in pools.values()
        )
        now = time.monotonic()
        if busy or invocations != last:
            quiet_since, last = now, invocations
        elif now - quiet_since >= SETTLE_SECONDS:
            return round(now - start, 2)
        if now - start > timeout:
            raise TimeoutError(f"backlog: the devserver was still busy after {timeout:.0f} s")
        await asyncio.sleep(0.1)


def store_backlog(
    ds: RunningDevserver, conversation_id: str, sender_id: str, messages: int
) -> None:
    """``messages`` messages from ``sender_id`` written straight into the devserver's
    DynamoDB (``write_backlog``)."""
    write_backlog(
        ds.aws("dynamodb"),
        ds.resources["MessagesTable"],
        ds.resources["ConversationsTable"],
        conversation_id,
        sender_id,
        messages,
    )


def write_backlog(
    dynamodb: Any,
    messages_table: str,
    conversations_table: str,
    conversation_id: str,
    sender_id: str,
    messages: int,
    *,
    padding: int = 0,
) -> None:
    """``messages`` messages from ``sender_id`` (bodies "backlog N" and ``padding`` more
    characters) written straight into the tables as the items a send stores (the layout of
    ConversationRepository.append): the message items, 25 per BatchWriteItem, the
    conversation's lastSeq, and the sender's cursors moved over her own messages, as a
    send moves them. 1,000 sends one by one would take minutes."""
    from switchboard.dal.conversations import META, member_key
    from switchboard.dal.items import to_item

    now = int(time.time() * 1000)
    items = [
        to_item(
            {
                "conversationId": conversation_id,
                "seq": seq,
                "messageId": uuid.uuid4().hex,
                "senderId": sender_id,
                "body": f"backlog {seq}" + (" " + "x" * padding if padding else ""),
                "createdAt": now + seq,
                "clientMessageId": f"b{seq}",
            }
        )
        for seq in range(1, messages + 1)
    ]
    for start in range(0, len(items), 25):
        pending = {
            messages_table: [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        }
        while pending:
            pending = dynamodb.batch_write_item(RequestItems=pending)["UnprocessedItems"]
    dynamodb.update_item(
        TableName=conversations_table,
        Key={"conversationId": {"S": conversation_id}, "sk": {"S": META}},
        UpdateExpression="SET lastSeq = :last",
        ExpressionAttributeValues={":last": {"N": str(messages)}},
    )
    # Sending is reading: without this the sender's own devices would be owed the same
    # backlog, and one connecting late would be served first (the stream is in order).
    dynamodb.update_item(
        TableName=conversations_table,
        Key={"conversationId": {"S": conversation_id}, "sk": {"S": member_key(sender_id)}},
        UpdateExpression="SET ackedSeq = :last, readSeq = :last, sentSeq = :last",
        ExpressionAttributeValues={":last": {"N": str(messages)}},
    )


async def backlog(
    ds: RunningDevserver, messages: int, progress: Callable[[str], None], *, batch: bool = False
) -> dict[str, Any]:
    """The conversation is created through the API; its messages are then written
    straight into the devserver's DynamoDB as the items a send stores (store_backlog) -
    one conversation's sends are serialised by its seq and 1,000 of them through the wire
    would take a minute here. Before the user reconnects, the devserver settles: on AWS
    the stream work those sends set off (search indexing, analytics) was done as they
    were sent, long before; here it would run during the measurement. What is timed - the
    user reconnecting and the backlog reaching it - runs entirely through the devserver,
    from the same point for either kind of client."""
    tag = uuid.uuid4().hex[:6]
    sender = TimedClient(ds, f"backlog-sender-{tag}")
    await sender.connect()
    absent = TimedClient(ds, f"backlog-reader-{tag}")
    absent.backlog_batch = batch
    try:
        conversation_id = await sender.create_conversation([absent.user_id])
        fill_start = time.perf_counter()
        await asyncio.to_thread(store_backlog, ds, conversation_id, sender.user_id, messages)
        fill_seconds = time.perf_counter() - fill_start
        settled = await settle(ds)
        progress(f"backlog: {messages} messages stored for an offline user (settled {settled} s)")

        start = time.perf_counter()
        await absent.connect()
        handshake = time.perf_counter() - start  # in delivery_seconds too; reported apart
        await absent.wait_for_messages(conversation_id, range(1, messages + 1), timeout=300)
        seconds = absent.last_arrival - start
        order = absent.arrival_order
        how = "message:batch frames" if batch else "one post per message"
        progress(f"backlog: delivered on reconnect in {seconds:.2f} s ({how})")
    finally:
        await asyncio.gather(sender.close(), absent.close(), return_exceptions=True)
    return {
        "messages": messages,
        "batch": batch,
        "frames": len([f for f in absent.pushes if f.get("type", "").startswith("message:")]),
        "fill_seconds": round(fill_seconds, 2),
        "settle_seconds": settled,
        "delivery_seconds": round(seconds, 3),
        "handshake_seconds": round(handshake, 3),
        "first_arrival_seconds": round(absent.first_arrival - start, 3),
        "delivery_msgs_per_s": round(messages / seconds, 1),
        "delivered": len(absent.messages.get(conversation_id, {})),
        "in_order": order == sorted(order),
        "duplicates": absent.duplicates,
    }


Round = tuple[float, dict[str, Any], dict[str, Any]]  # ratio, per-message, batched


def median_round(rounds: list[Round]) -> Round:
    """The round of the median ratio (of an even number, the lower of the middle two)."""
    return sorted(rounds, key=lambda r: r[0])[(len(rounds) - 1) // 2]


async def backlog_pair(
    ds: RunningDevserver, messages: int, rounds: int, progress: Callable[[str], None]
) -> dict[str, Any]:
    """``rounds`` rounds of both kinds of client back to back (one post per message, then
    message:batch frames), each round's pair under the same load: ``speedup`` is the
    median of the rounds' ratios, the figures reported are that round's."""
    pairs: list[Round] = []
    for _ in range(rounds):
        one_by_one = await backlog(ds, messages, progress)
        batched = await backlog(ds, messages, progress, batch=True)
        ratio = one_by_one["delivery_seconds"] / batched["delivery_seconds"]
        pairs.append((ratio, one_by_one, batched))
        progress(f"backlog: round speedup {ratio:.2f}")
    ratio, one_by_one, batched = median_round(pairs)
    return {
        "per_message": one_by_one,
        "batched": batched,
        "speedup": round(ratio, 2),
        "rounds": [
            {
                "speedup": round(r, 2),
                "per_message_seconds": a["delivery_seconds"],
                "batched_seconds": b["delivery_seconds"],
            }
            for r, a, b in pairs
        ],
    }


@dataclass(frozen=True)
class Load:
    """Figure 4's traffic: ``idle_users`` connect and stay (silent) while ``pairs`` send,
    first at ``load_fraction`` of the saturated rate for ``steady_seconds``."""

    pairs: int
    load_fraction: float
    steady_seconds: float
    saturate_seconds: float
    idle_users: int = 0
    connect_concurrency: int = 20
    in_flight: int = 1


@contextlib.contextmanager
def _ready(
    workdir: Path, workers: int, label: str, progress: Callable[[str], None]
) -> Iterator[RunningDevserver]:
    start = time.perf_counter()
    with devserver(workdir, workers) as ds:
        progress(f"{label}: devserver ready in {time.perf_counter() - start:.1f} s")
        yield ds


def measure(
    workdir: Path,
    *,
    load: Load,
    backlog_messages: int,
    backlog_rounds: int = 1,
    workers: int = 2,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Figures 4 and 5 on one devserver."""
    with _ready(workdir, workers, "e2e", progress) as ds:

        async def run() -> tuple[dict[str, Any], dict[str, Any]]:
            # The backlog first: after 1,000 users have connected and left, the
            # Connections stream's consumer has thousands of records to work through
            # before it reaches a new connection's (measured: over 120 s here).
            offline = await backlog_pair(ds, backlog_messages, backlog_rounds, progress)
            return await _crowd_and_pairs(ds, load, progress), offline

        figures, offline = asyncio.run(run())
    return {"workers_per_function": workers, **figures, "backlog": offline}


async def _crowd_and_pairs(
    ds: RunningDevserver, load: Load, progress: Callable[[str], None]
) -> dict[str, Any]:
    """Figure 4: ``idle_users`` connect and stay (silent) while the pairs send."""
    crowd, connected = await idle_crowd(ds, load.idle_users, load.connect_concurrency, progress)
    try:
        figures = await latency_and_throughput(
            ds,
            load.pairs,
            load.load_fraction,
            load.steady_seconds,
            load.saturate_seconds,
            load.in_flight,
            progress,
        )
    finally:
        await asyncio.gather(*(c.close() for c in crowd), return_exceptions=True)
    figures["idle_users"] = connected
    return figures


def measure_throughput(
    workdir: Path,
    *,
    load: Load,
    workers: int = 2,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Figure 4 alone (``python -m bench --only e2e``), on a devserver of its own."""
    with _ready(workdir, workers, "e2e", progress) as ds:
        figures = asyncio.run(_crowd_and_pairs(ds, load, progress))
    return {"workers_per_function": workers, **figures}


def measure_backlog(
    workdir: Path,
    *,
    messages: int,
    rounds: int,
    workers: int = 2,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Figure 5 alone (``python -m bench --only backlog``), on a devserver of its own."""
    with _ready(workdir, workers, "backlog", progress) as ds:
        return asyncio.run(backlog_pair(ds, messages, rounds, progress))
