"""scripts/replay.py against AWS's own APIs (botocore Stubber: the exact requests SQS,
DynamoDB Streams and Lambda get): the range read from its first sequence number, the
function the record names invoked with it, the DLQ message deleted only after a clean
answer and made visible again after a failed one."""

from __future__ import annotations

import datetime as dt
import io
import json
from typing import Any

import boto3
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from scripts import replay

DLQ = "https://sqs.us-east-1.amazonaws.com/123456789012/stack-AnalyticsDLQ-X"
STREAM = "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026-12-01T00:00:00.000"
SHARD = "shardId-00000001796083200000-0a1b2c3d"
SEQ = "1000000000000000000"  # + two digits: 21, as DynamoDB Streams numbers are
FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:stack-AggregatorFunction-Z"


def client(service: str) -> Any:
    return boto3.client(
        service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )


def failure_record(first: str, last: str) -> str:
    return json.dumps(
        {
            "requestContext": {
                "requestId": "r",
                "functionArn": FUNCTION,
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": 11,
            },
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST"},
            "version": "1.0",
            "timestamp": "2026-12-01T00:00:30.000Z",
            "DDBStreamBatchInfo": {
                "shardId": SHARD,
                "startSequenceNumber": first,
                "endSequenceNumber": last,
                "approximateArrivalOfFirstRecord": "2026-12-01T00:00:00Z",
                "approximateArrivalOfLastRecord": "2026-12-01T00:00:00Z",
                "batchSize": 2,
                "streamArn": STREAM,
            },
        }
    )


def stream_record(seq: str) -> dict[str, Any]:
    return {
        "eventID": f"e{seq[-2:]}",
        "eventName": "INSERT",
        "dynamodb": {
            "SequenceNumber": seq,
            "ApproximateCreationDateTime": dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
            "Keys": {"pk": {"B": b"\x01"}},
        },
    }


def payload(body: dict[str, Any]) -> StreamingBody:
    raw = json.dumps(body).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


def stub_reading(streams: Stubber, first: str) -> None:
    streams.add_response(
        "get_shard_iterator",
        {"ShardIterator": "it-1"},
        {
            "StreamArn": STREAM,
            "ShardId": SHARD,
            "ShardIteratorType": "AT_SEQUENCE_NUMBER",
            "SequenceNumber": first,
        },
    )
    # The page runs past the range: the record after it is not replayed.
    streams.add_response(
        "get_records",
        {
            "Records": [
                stream_record(SEQ + "11"),
                stream_record(SEQ + "12"),
                stream_record(SEQ + "13"),
            ]
        },
        {"ShardIterator": "it-1", "Limit": 1000},
    )


def test_a_range_is_replayed_to_its_function_and_then_deleted_or_left() -> None:
    sqs, streams, lam = client("sqs"), client("dynamodbstreams"), client("lambda")
    said: list[str] = []
    with Stubber(sqs) as q, Stubber(streams) as s, Stubber(lam) as f:
        q.add_response("list_dead_letter_source_queues", {"queueUrls": []}, {"QueueUrl": DLQ})
        q.add_response(
            "get_queue_attributes",
            {"Attributes": {"ApproximateNumberOfMessages": "2"}},
            {"QueueUrl": DLQ, "AttributeNames": ["ApproximateNumberOfMessages"]},
        )
        q.add_response(
            "receive_message",
            {
                "Messages": [
                    {
                        "MessageId": "m1",
                        "ReceiptHandle": "h1",
                        "Body": failure_record(SEQ + "11", SEQ + "12"),
                    },
                    {
                        "MessageId": "m2",
                        "ReceiptHandle": "h2",
                        "Body": failure_record(SEQ + "11", SEQ + "12"),
                    },
                ]
            },
            {
                "QueueUrl": DLQ,
                "MaxNumberOfMessages": 2,
                "WaitTimeSeconds": 1,
                "VisibilityTimeout": 300,
            },
        )
        # The first: a clean answer, deleted
        stub_reading(s, SEQ + "11")
        f.add_response(
            "invoke",
            {"StatusCode": 200, "Payload": payload({"batchItemFailures": []})},
            {"FunctionName": FUNCTION, "InvocationType": "RequestResponse", "Payload": ANY},
        )
        q.add_response("delete_message", {}, {"QueueUrl": DLQ, "ReceiptHandle": "h1"})
        # The second: the function fails again, the message is visible again at once
        stub_reading(s, SEQ + "11")
        f.add_response(
            "invoke",
            {
                "StatusCode": 200,
                "FunctionError": "Unhandled",
                "Payload": payload({"errorType": "X"}),
            },
            {"FunctionName": FUNCTION, "InvocationType": "RequestResponse", "Payload": ANY},
        )
        q.add_response(
            "change_message_visibility",
            {},
            {"QueueUrl": DLQ, "ReceiptHandle": "h2", "VisibilityTimeout": 0},
        )
        outcome = replay.replay(sqs, streams, lam, DLQ, say=said.append)
        for stub in (q, s, f):
            stub.assert_no_pending_responses()
    assert (outcome.replayed, outcome.records, outcome.failed) == (1, 2, 1)
    assert said[1].endswith(f"{SEQ}11..{SEQ}12: 2 records replayed, deleted")
    assert "FAILED, left in the DLQ" in said[2]


def test_the_event_carries_the_records_as_the_mapping_delivers_them() -> None:
    records = [replay.lambda_record(stream_record(SEQ + "11"), STREAM)]
    event = json.loads(json.dumps({"Records": records}, default=replay._as_in_the_event))
    (record,) = event["Records"]
    assert record["eventSourceARN"] == STREAM
    assert record["dynamodb"]["ApproximateCreationDateTime"] == 1_796_083_200
    assert record["dynamodb"]["Keys"] == {"pk": {"B": "AQ=="}}


def test_a_queue_dlq_is_refused_untouched() -> None:
    sqs = client("sqs")
    with Stubber(sqs) as q:
        q.add_response(
            "list_dead_letter_source_queues", {"queueUrls": ["https://q"]}, {"QueueUrl": DLQ}
        )
        try:
            replay.replay(sqs, client("dynamodbstreams"), client("lambda"), DLQ)
        except replay.Refused as exc:
            assert "make redrive" in str(exc)
        else:
            raise AssertionError("not refused")
        q.assert_no_pending_responses()
