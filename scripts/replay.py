"""Replay a stream consumer's dead-letter queue in one command: the records of every failed
batch it describes are read from the DynamoDB stream again and given to the consumer.

    python -m scripts.replay AnalyticsDLQ --stack switchboard-dev     # a deployed stack
    python -m scripts.replay https://sqs.../switchboard-dev-AnalyticsDLQ-XYZ
    make replay DLQ=AnalyticsDLQ [STACK=switchboard-dev]
    # devserver: AWS_ENDPOINT_URL=<moto URL> AWS_ENDPOINT_URL_LAMBDA=<devserver http URL>

ConnectionEventsDLQ, SearchIndexDLQ and AnalyticsDLQ are the on-failure destinations of
DynamoDB stream event-source mappings: each message is Lambda's invocation record of a
batch that failed every retry (shard, first and last sequence number, the function's
ARN), not the records. For each message that is in the queue when the command starts, it

1. reads the range: GetShardIterator AT_SEQUENCE_NUMBER (the first) and GetRecords until
   the last sequence number (a range the stream no longer holds, 24 h on AWS, fails);
2. invokes the function named in the record, synchronously, with those records in the
   event Lambda gives it (`{"Records": [...]}`, each record as the mapping delivers it);
3. deletes the message only when the function returned without an error and without
   reported batch item failures; otherwise the message becomes visible again at once.

The consumers are idempotent (the aggregator counts each change once under replays,
the indexer and connection events converge), so a replay of a range that was partly
processed is safe. A mapping's FilterCriteria is not applied again: the function gets
every record of the range and ignores those it does not count (as on the devserver,
which does not filter either). Progress is printed a line per message. Exit status: 0
every message replayed, 1 some failed (still in the DLQ), 2 refused (a queue DLQ:
`make redrive`).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from aws_lambda_powertools.utilities.parser.models import (
    DynamoDBStreamLambdaOnFailureDestinationModel,
)
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from scripts.redrive import queue_url  # the DLQ by logical id (CloudFormation) or URL

STREAM_DLQS = ("ConnectionEventsDLQ", "SearchIndexDLQ", "AnalyticsDLQ")
EMPTY_PAGES = 5  # consecutive empty GetRecords pages before a range counts as gone


class Refused(Exception):
    """Not a stream consumer's DLQ: nothing was read or changed."""


class Failed(Exception):
    """One invocation record could not be replayed (it stays in the DLQ)."""


@dataclass
class Outcome:
    replayed: int = 0
    records: int = 0
    failed: int = 0


def lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A GetRecords record as the event-source mapping delivers it to the function."""
    return {**record, "eventSourceARN": stream_arn}


def _as_in_the_event(value: object) -> object:
    """json.dumps' fallback: boto3 parses B/BS into bytes and ApproximateCreationDateTime
    into a datetime; the Lambda event carries base64 text and epoch seconds."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dt.datetime):
        return int(value.timestamp())
    raise TypeError(f"{type(value).__name__} is not JSON")


def read_range(streams: Any, batch: Any) -> list[dict[str, Any]]:
    """The records from ``startSequenceNumber`` to ``endSequenceNumber`` of the shard."""
    last = int(batch.end_sequence_number)
    iterator: str | None = streams.get_shard_iterator(
        StreamArn=batch.stream_arn,
        ShardId=batch.shard_id,
        ShardIteratorType="AT_SEQUENCE_NUMBER",
        SequenceNumber=batch.start_sequence_number,
    )["ShardIterator"]
    found: list[dict[str, Any]] = []
    empty = 0
    while iterator and empty < EMPTY_PAGES:
        response = streams.get_records(ShardIterator=iterator, Limit=1000)
        records = response.get("Records", [])
        for record in records:
            if int(record["dynamodb"]["SequenceNumber"]) > last:
                return found
            found.append(lambda_record(record, batch.stream_arn))
        if found and int(found[-1]["dynamodb"]["SequenceNumber"]) == last:
            return found
        # GetRecords may answer an empty page before the records that follow it.
        empty = 0 if records else empty + 1
        iterator = response.get("NextShardIterator")
    if not found or int(found[-1]["dynamodb"]["SequenceNumber"]) != last:
        raise Failed(
            f"the stream no longer holds the range {batch.start_sequence_number}.."
            f"{batch.end_sequence_number} of {batch.shard_id} (found {len(found)} records)"
        )
    return found


def invoke(lam: Any, function_arn: str, records: list[dict[str, Any]]) -> None:
    response = lam.invoke(
        FunctionName=function_arn,
        InvocationType="RequestResponse",
        Payload=json.dumps({"Records": records}, default=_as_in_the_event).encode(),
    )
    payload = response["Payload"].read()
    if response.get("FunctionError"):
        raise Failed(f"the function failed: {payload.decode(errors='replace')[:300]}")
    answer = json.loads(payload) if payload else None
    failures = answer.get("batchItemFailures") if isinstance(answer, dict) else None
    if failures:
        raise Failed(f"the function reported {len(failures)} failed records")


def replay(
    sqs: Any,
    streams: Any,
    lam: Any,
    dlq_url: str,
    *,
    say: Callable[[str], None] = print,
) -> Outcome:
    if sqs.list_dead_letter_source_queues(QueueUrl=dlq_url).get("queueUrls"):
        raise Refused(f"{dlq_url} is a queue's dead-letter queue: use `make redrive`")
    attributes = sqs.get_queue_attributes(
        QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    # The messages there now, not those that fail again while this runs.
    budget = int(attributes.get("ApproximateNumberOfMessages", 0))
    outcome = Outcome()
    say(f"{dlq_url}: {budget} invocation records")
    seen = 0
    while seen < budget:
        messages = sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=min(10, budget - seen),
            WaitTimeSeconds=1,
            VisibilityTimeout=300,
        ).get("Messages", [])
        if not messages:
            break
        for message in messages:
            seen += 1
            try:
                record = DynamoDBStreamLambdaOnFailureDestinationModel.model_validate_json(
                    message["Body"]
                )
            except ValidationError as exc:
                # Not an invocation record: kept for a person to look at.
                say(f"[{seen}/{budget}] not an invocation record, left: {exc.errors()[:1]}")
                outcome.failed += 1
                continue
            batch = record.ddb_stream_batch_info
            function = record.request_context.function_arn
            where = (
                f"[{seen}/{budget}] {function.rsplit(':', 1)[-1]} {batch.shard_id} "
                f"{batch.start_sequence_number}..{batch.end_sequence_number}"
            )
            try:
                records = read_range(streams, batch)
                invoke(lam, function, records)
            except (Failed, ClientError, BotoCoreError) as exc:
                sqs.change_message_visibility(
                    QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
                say(f"{where}: FAILED, left in the DLQ: {exc}")
                outcome.failed += 1
                continue
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
            outcome.replayed += 1
            outcome.records += len(records)
            say(f"{where}: {len(records)} records replayed, deleted")
    return outcome


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.replay", description=__doc__.split("\n")[0])
    p.add_argument("dlq", help=f"the DLQ's logical id ({', '.join(STREAM_DLQS)}) or queue URL")
    p.add_argument("--stack", default=os.environ.get("STACK"), help="deployed stack name")
    p.add_argument("--endpoint-url", default=os.environ.get("AWS_ENDPOINT_URL"))
    p.add_argument(
        "--lambda-endpoint-url",
        default=os.environ.get("AWS_ENDPOINT_URL_LAMBDA"),
        help="where Lambda's Invoke API is (the devserver's HTTP URL locally)",
    )
    args = p.parse_args(argv)
    sqs = boto3.client("sqs", endpoint_url=args.endpoint_url)
    streams = boto3.client("dynamodbstreams", endpoint_url=args.endpoint_url)
    lam = boto3.client("lambda", endpoint_url=args.lambda_endpoint_url or args.endpoint_url)
    try:
        url = queue_url(sqs, args.dlq, args.stack)
        outcome = replay(sqs, streams, lam, url)
    except Refused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    print(
        f"replayed {outcome.replayed} invocation records ({outcome.records} stream records), "
        f"{outcome.failed} failed"
    )
    return 1 if outcome.failed else 0


if __name__ == "__main__":
    sys.exit(main())
