"""A DynamoDB stream mapping's on-failure destination, as Lambda has it.

When a batch has failed every retry the template allows (`MaximumRetryAttempts`), Lambda
skips its records and, if the mapping has `DestinationConfig.OnFailure`, sends the
destination an *invocation record*: not the records, but where they are in the stream
(shard and sequence-number range), the function and how it failed. Documented in
"Retaining discarded records for a DynamoDB event source" of the Lambda developer guide
(services-dynamodb-errors); Powertools' `DynamoDBStreamLambdaOnFailureDestinationModel`
parses the same shape. `scripts/replay.py` reads these records back and replays them.

Only SQS destinations are emulated (the template uses no other); an SNS or S3 one is
logged and the records are dropped, as they are without a destination.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from dataclasses import dataclass
from typing import Any

from devserver.provision import aws_client
from devserver.template import FunctionSpec
from devserver.workers import InvocationResult

__all__ = ["OnFailureDestination", "invocation_record"]

log = logging.getLogger("devserver.events")


def _iso(epoch_seconds: float, *, millis: bool = False) -> str:
    moment = dt.datetime.fromtimestamp(epoch_seconds, dt.UTC)
    if millis:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def invocation_record(
    spec: FunctionSpec,
    stream_arn: str,
    shard_id: str,
    records: list[dict[str, Any]],
    attempts: int,
    result: InvocationResult,
    now: float,
) -> dict[str, Any]:
    """The record Lambda sends on failure for the skipped ``records`` (Lambda-shaped stream
    records, in order), after ``attempts`` invocations that ended with ``result``."""
    first, last = records[0]["dynamodb"], records[-1]["dynamodb"]
    response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
    if not result.ok:
        response["functionError"] = "Unhandled"
    return {
        "requestContext": {
            "requestId": result.request_id,
            "functionArn": spec.arn,
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": attempts,
        },
        "responseContext": response,
        "version": "1.0",
        "timestamp": _iso(now, millis=True),
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": first["SequenceNumber"],
            "endSequenceNumber": last["SequenceNumber"],
            "approximateArrivalOfFirstRecord": _iso(first.get("ApproximateCreationDateTime", now)),
            "approximateArrivalOfLastRecord": _iso(last.get("ApproximateCreationDateTime", now)),
            "batchSize": len(records),
            "streamArn": stream_arn,
        },
    }


@dataclass
class OnFailureDestination:
    """One mapping's `DestinationConfig.OnFailure` (an SQS queue ARN)."""

    spec: FunctionSpec
    label: str
    destination: str
    moto_url: str

    @classmethod
    def of(
        cls, spec: FunctionSpec, label: str, props: dict[str, Any], moto_url: str
    ) -> OnFailureDestination | None:
        on_failure = (props.get("DestinationConfig") or {}).get("OnFailure") or {}
        destination = str(on_failure.get("Destination") or "")
        if not destination:
            return None
        if on_failure.get("Type", "SQS") != "SQS" and ":sqs:" not in destination:
            log.warning("%s: on-failure destination %s is not emulated", label, destination)
            return None
        return cls(spec, label, destination, moto_url)

    async def send(
        self,
        stream_arn: str,
        shard_id: str,
        records: list[dict[str, Any]],
        attempts: int,
        result: InvocationResult,
    ) -> None:
        now = dt.datetime.now(dt.UTC).timestamp()
        record = invocation_record(self.spec, stream_arn, shard_id, records, attempts, result, now)
        await asyncio.to_thread(self._send, json.dumps(record))
        log.warning(
            "%s: %d records skipped after %d attempts: invocation record sent to %s",
            self.label,
            len(records),
            attempts,
            self.destination.rsplit(":", 1)[-1],
        )

    def _send(self, body: str) -> None:
        sqs = aws_client("sqs", self.moto_url)
        url = sqs.get_queue_url(QueueName=self.destination.rsplit(":", 1)[-1])["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody=body)
