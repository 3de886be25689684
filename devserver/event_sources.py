"""Event-source mappings the template declares on functions (`Events:`), run against moto.

- `SQS`: long polling; Lambda-shaped records; success deletes the batch; an error leaves
  it (it comes back after the queue's visibility timeout, moto redrives to the DLQ after
  maxReceiveCount); with `ReportBatchItemFailures` only the reported items stay.
  Several pollers per mapping (as many as the function has workers), like Lambda scaling.
- `DynamoDB`: reads the table's stream in order, in-process from moto and as records are
  appended (devserver/streams.py), gathering up to MaximumBatchingWindowInSeconds
  unless a batch fills; a failing batch is
  retried (from the first reported `itemIdentifier` with ReportBatchItemFailures), up to
  MaximumRetryAttempts (-1 = until it succeeds, as on AWS), optionally bisected; then its
  records are skipped and, with `DestinationConfig.OnFailure`, the invocation record that
  locates them goes to that queue (devserver/stream_failures.py).
- `Schedule`/`ScheduleV2`: `rate(...)` expressions, sped up by a factor for development.
boto3 is synchronous: each call runs in a thread, never on the event loop. The SQS long
polls have a pool of their own: they block a thread each for up to a second, and in the
default pool (6 threads on 2 cores) eight of them left every other call queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from devserver import ACCOUNT_ID, REGION
from devserver.aws_faults import STREAM_FAULTS
from devserver.provision import aws_client
from devserver.stream_failures import OnFailureDestination
from devserver.streams import ShardCursor, StreamReader
from devserver.template import FunctionSpec
from devserver.workers import InvocationResult, WorkerPools

__all__ = ["EventSources"]

log = logging.getLogger("devserver.events")

# A stream reader wakes as soon as a record is appended; this only bounds how long a wait
# lasts when none is (so a stop is noticed).
IDLE_WAKE_SECONDS = 1.0
# Lambda reads a stream's shard at most 4 times a second: records that arrive in between
# wait for the next read and go out in one batch (as on AWS; one invocation per record
# would cost more than the records' work).
STREAM_POLL_SECONDS = 0.25


async def _call(fn: Callable[..., Any], /, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, **kwargs)


# Sends the invocation record of skipped records: (records, attempts, last result).
OnFailure = Callable[[list[dict[str, Any]], int, InvocationResult], Coroutine[Any, Any, None]]


def _queue_name_from_arn(arn: str) -> str:
    return arn.rsplit(":", 1)[-1]


def _partial_failures(payload: Any) -> list[str] | None:
    """Ids from a ReportBatchItemFailures response; None = the response is invalid."""
    if payload is None or payload in ({}, ""):
        return []
    if not isinstance(payload, dict):
        return None
    failures = payload.get("batchItemFailures")
    if failures is None:
        return []
    if not isinstance(failures, list):
        return None
    ids = []
    for item in failures:
        ident = item.get("itemIdentifier") if isinstance(item, dict) else None
        # An empty/missing identifier fails the whole batch on AWS.
        if not isinstance(ident, str) or not ident:
            return None
        ids.append(ident)
    return ids


class EventSources:
    def __init__(
        self,
        functions: list[FunctionSpec],
        pools: WorkerPools,
        moto_url: str,
        schedule_speedup: float = 1.0,
    ) -> None:
        self.functions = functions
        self.pools = pools
        self.moto_url = moto_url
        self.schedule_speedup = max(schedule_speedup, 1e-6)
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._sqs_threads: ThreadPoolExecutor | None = None

    def start(self) -> None:
        pollers = sum(
            self.pools[spec.logical_id].size
            for spec in self.functions
            for event in spec.events.values()
            if event.get("Type") == "SQS"
            and (event.get("Properties") or {}).get("Enabled") not in (False, "false")
        )
        if pollers:
            self._sqs_threads = ThreadPoolExecutor(pollers, thread_name_prefix="sqs-poller")
        for spec in self.functions:
            for name, event in spec.events.items():
                etype = event.get("Type")
                props = event.get("Properties") or {}
                if props.get("Enabled") in (False, "false"):
                    continue
                label = f"{spec.logical_id}.{name}"
                if etype == "SQS":
                    pollers = self.pools[spec.logical_id].size
                    for i in range(pollers):
                        self._start(self._sqs(spec, props, label, i))
                elif etype == "DynamoDB":
                    self._start(self._dynamodb(spec, props, label))
                elif etype in ("Schedule", "ScheduleV2"):
                    self._start(self._schedule(spec, props, label))
                elif etype in ("HttpApi", "Api"):
                    continue  # served by http_api
                else:
                    log.warning("%s: event type %s is not emulated", label, etype)

    def _start(self, coro: Awaitable[None]) -> None:
        self._tasks.append(asyncio.ensure_future(coro))

    async def stop(self) -> None:
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 5.0)
        if self._sqs_threads is not None:
            self._sqs_threads.shutdown(wait=False, cancel_futures=True)

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless stopping; True if it is time to stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return self._stopping.is_set()

    # ------------------------------------------------------------------ SQS
    async def _sqs(self, spec: FunctionSpec, props: dict[str, Any], label: str, index: int) -> None:
        client = aws_client("sqs", self.moto_url)
        queue_arn = str(props["Queue"])
        queue_url = (await _call(client.get_queue_url, QueueName=_queue_name_from_arn(queue_arn)))[
            "QueueUrl"
        ]
        batch_size = int(props.get("BatchSize", 10))
        window = float(props.get("MaximumBatchingWindowInSeconds", 0))
        partial = "ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or [])
        if index == 0:
            log.info(
                "mapping  %s: SQS %s -> %s (batch %d)",
                label,
                queue_arn,
                spec.logical_id,
                batch_size,
            )
        while not self._stopping.is_set():
            try:
                messages = await self._sqs_receive(client, queue_url, batch_size, window)
                if not messages:
                    continue
                records = [self._sqs_record(m, queue_arn) for m in messages]
                result = await self.pools.invoke(spec.logical_id, {"Records": records})
                to_delete = self._sqs_settle(label, result, records, partial)
                if to_delete:
                    await _call(
                        client.delete_message_batch,
                        QueueUrl=queue_url,
                        Entries=[
                            {"Id": str(i), "ReceiptHandle": r["receiptHandle"]}
                            for i, r in enumerate(to_delete)
                        ],
                    )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: SQS poller error", label)
                if await self._sleep(1.0):
                    return

    async def _sqs_receive(
        self, client: Any, queue_url: str, batch_size: int, window: float
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + window
        messages: list[dict[str, Any]] = []
        while len(messages) < batch_size and not self._stopping.is_set():
            response = await asyncio.get_running_loop().run_in_executor(
                self._sqs_threads,
                functools.partial(
                    client.receive_message,
                    QueueUrl=queue_url,
                    MaxNumberOfMessages=min(10, batch_size - len(messages)),
                    WaitTimeSeconds=1,
                    AttributeNames=["All"],
                    MessageSystemAttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ),
            )
            got = response.get("Messages") or []
            messages += got
            if time.monotonic() >= deadline or (not got and messages):
                break
            if not got and not messages:
                break
        return messages

    @staticmethod
    def _sqs_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
        attributes = {k: str(v) for k, v in (message.get("Attributes") or {}).items()}
        msg_attrs = {}
        for name, attr in (message.get("MessageAttributes") or {}).items():
            msg_attrs[name] = {
                "stringValue": attr.get("StringValue"),
                "binaryValue": (
                    __import__("base64").b64encode(attr["BinaryValue"]).decode()
                    if attr.get("BinaryValue") is not None
                    else None
                ),
                "stringListValues": attr.get("StringListValues", []),
                "binaryListValues": attr.get("BinaryListValues", []),
                "dataType": attr.get("DataType"),
            }
            msg_attrs[name] = {k: v for k, v in msg_attrs[name].items() if v is not None}
        body = message.get("Body", "")
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": body,
            "attributes": attributes,
            "messageAttributes": msg_attrs,
            "md5OfBody": message.get("MD5OfBody")
            or hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn,
            "awsRegion": REGION,
        }

    @staticmethod
    def _sqs_settle(
        label: str, result: InvocationResult, records: list[dict[str, Any]], partial: bool
    ) -> list[dict[str, Any]]:
        """The records to delete after an invocation."""
        if not result.ok:
            log.info(
                "%s: batch of %d failed (%s): left on the queue",
                label,
                len(records),
                result.error_message,
            )
            return []
        if not partial:
            return records
        failed = _partial_failures(result.payload)
        if failed is None:
            log.info("%s: invalid batchItemFailures response: whole batch left", label)
            return []
        if failed:
            log.info("%s: %d of %d failed: left on the queue", label, len(failed), len(records))
        failed_set = set(failed)
        return [r for r in records if r["messageId"] not in failed_set]

    # ------------------------------------------------------------------ DynamoDB Streams
    async def _dynamodb(self, spec: FunctionSpec, props: dict[str, Any], label: str) -> None:
        """One shard (moto's tables have one), read in-process (devserver/streams.py):
        records are picked up as they are appended; an idle stream costs nothing."""
        stream_arn = str(props["Stream"])
        log.info("mapping  %s: DynamoDB stream -> %s", label, spec.logical_id)
        reader = StreamReader(stream_arn)
        try:
            await self._shard(reader, spec, props, label, stream_arn)
        finally:
            reader.close()

    async def _shard(
        self,
        reader: StreamReader,
        spec: FunctionSpec,
        props: dict[str, Any],
        label: str,
        stream_arn: str,
    ) -> None:
        position = str(props.get("StartingPosition", "LATEST"))
        batch_size = int(props.get("BatchSize", 100))
        # Lambda gathers records for up to this long before it invokes, unless a batch
        # fills first (fewer, fuller invocations: the aggregator's is 1 s).
        window = float(props.get("MaximumBatchingWindowInSeconds", 0))
        max_retries = int(props.get("MaximumRetryAttempts", -1))
        bisect = props.get("BisectBatchOnFunctionError") in (True, "true")
        partial = "ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or [])
        destination = OnFailureDestination.of(spec, label, props, self.moto_url)
        cursor: ShardCursor | None = None
        while cursor is None:
            try:
                cursor = reader.cursor(position if position != "AT_TIMESTAMP" else "TRIM_HORIZON")
            except LookupError:
                log.exception("%s: no stream yet", label)
                if await self._sleep(5.0):
                    return
        pending: list[dict[str, Any]] = []
        gathering_since: float | None = None
        last_read = 0.0
        while not self._stopping.is_set():
            early = last_read + STREAM_POLL_SECONDS - time.monotonic()
            if early > 0 and await self._sleep(early):
                return
            last_read = time.monotonic()
            pending += [self._stream_record(r, stream_arn) for r in reader.read(cursor, 1000)]
            if not pending:
                await reader.wait(IDLE_WAKE_SECONDS)
                continue
            if window > 0 and len(pending) < batch_size:
                gathering_since = gathering_since or time.monotonic()
                left = gathering_since + window - time.monotonic()
                if left > 0:
                    await reader.wait(left)
                    continue
            gathering_since = None
            on_failure = (
                functools.partial(destination.send, stream_arn, cursor.shard.id)
                if destination
                else None
            )
            while pending and not self._stopping.is_set():
                batch, pending = pending[:batch_size], pending[batch_size:]
                await self._deliver_stream_batch(
                    spec, label, batch, max_retries, bisect, partial, on_failure
                )

    async def _deliver_stream_batch(
        self,
        spec: FunctionSpec,
        label: str,
        batch: list[dict[str, Any]],
        max_retries: int,
        bisect: bool,
        partial: bool,
        on_failure: OnFailure | None = None,
    ) -> None:
        """Deliver in order; a failure retries from the failed record (records stay ordered)."""
        attempts = 0
        while batch and not self._stopping.is_set():
            result = await self.pools.invoke(spec.logical_id, {"Records": batch})
            start_again: int | None = None
            if not result.ok:
                start_again = 0
            elif partial:
                failed = _partial_failures(result.payload)
                if failed is None:
                    start_again = 0
                elif failed:
                    seqs = [r["dynamodb"]["SequenceNumber"] for r in batch]
                    # Retry from the LOWEST reported sequence number, as Lambda does.
                    positions = [seqs.index(f) for f in failed if f in seqs]
                    start_again = min(positions) if positions else 0
            if start_again is None:
                if STREAM_FAULTS.replay():
                    # Chaos: the batch's answer "got lost", Lambda delivers it again.
                    log.info("%s: stream batch of %d replayed (fault)", label, len(batch))
                    await self.pools.invoke(spec.logical_id, {"Records": batch})
                return
            attempts += 1
            if max_retries >= 0 and attempts > max_retries:
                log.warning(
                    "%s: %d records dropped after %d retries",
                    label,
                    len(batch) - start_again,
                    max_retries,
                )
                if on_failure is not None:
                    try:
                        await on_failure(batch[start_again:], attempts, result)
                    except Exception:
                        log.exception("%s: the on-failure destination failed", label)
                return
            batch = batch[start_again:]
            if bisect and not result.ok and len(batch) > 1:
                half = len(batch) // 2
                await self._deliver_stream_batch(
                    spec, label, batch[:half], max_retries, bisect, partial, on_failure
                )
                batch = batch[half:]
                continue
            log.info(
                "%s: stream batch failed (%s), retry %d",
                label,
                result.error_message or "partial",
                attempts,
            )
            if await self._sleep(min(2.0, 0.2 * attempts)):
                return

    @staticmethod
    def _stream_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
        ddb = dict(record.get("dynamodb") or {})
        created = ddb.get("ApproximateCreationDateTime")
        if isinstance(created, dt.datetime):
            # moto keeps a naive UTC datetime; Lambda events carry epoch seconds.
            if created.tzinfo is None:
                created = created.replace(tzinfo=dt.UTC)
            ddb["ApproximateCreationDateTime"] = int(created.timestamp())
        return {
            "eventID": record.get("eventID") or uuid.uuid4().hex,
            "eventName": record.get("eventName"),
            "eventVersion": record.get("eventVersion", "1.1"),
            "eventSource": "aws:dynamodb",
            "awsRegion": record.get("awsRegion", REGION),
            "dynamodb": _json_safe(ddb),
            "eventSourceARN": stream_arn,
        }

    # ------------------------------------------------------------------ Schedule
    async def _schedule(self, spec: FunctionSpec, props: dict[str, Any], label: str) -> None:
        expression = str(props.get("Schedule") or props.get("ScheduleExpression") or "")
        match = re.fullmatch(r"rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)", expression)
        if not match:
            log.warning("%s: schedule %r is not emulated (rate(...) only)", label, expression)
            return
        unit = {"minute": 60, "hour": 3600, "day": 86400}[match.group(2).rstrip("s")]
        period = int(match.group(1)) * unit / self.schedule_speedup
        log.info(
            "mapping  %s: %s (every %.1f s locally) -> %s",
            label,
            expression,
            period,
            spec.logical_id,
        )
        while not await self._sleep(period):
            event = props.get("Input")
            if event is None:
                event = {
                    "version": "0",
                    "id": str(uuid.uuid4()),
                    "detail-type": "Scheduled Event",
                    "source": "aws.events",
                    "account": ACCOUNT_ID,
                    "time": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "region": REGION,
                    "resources": [f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{label}"],
                    "detail": {},
                }
            elif isinstance(event, str):
                event = json.loads(event)
            result = await self.pools.invoke(spec.logical_id, event)
            if not result.ok:
                log.info("%s: scheduled invocation failed: %s", label, result.error_message)


def _json_safe(value: Any) -> Any:
    """Stream images from boto3 carry bytes for B/BS: Lambda events have base64 text."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        import base64

        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dt.datetime):
        return int(value.timestamp())
    return value
