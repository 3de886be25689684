"""scripts/redrive.py against AWS's own API (botocore Stubber: the exact requests SQS gets):
StartMessageMoveTask without a destination, followed to its end; never the emulator
fallback against AWS, even when the move task fails."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from scripts import redrive

DLQ = "https://sqs.us-east-1.amazonaws.com/123456789012/stack-DeliveryDLQ-X"
SOURCE = "https://sqs.us-east-1.amazonaws.com/123456789012/stack-DeliveryQueue-Y"
ARN = "arn:aws:sqs:us-east-1:123456789012:stack-DeliveryDLQ-X"


def client() -> Any:
    return boto3.client(
        "sqs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )


def test_on_aws_the_move_task_is_started_and_followed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redrive.time, "sleep", lambda _: None)
    sqs = client()
    with Stubber(sqs) as stub:
        stub.add_response(
            "list_dead_letter_source_queues", {"queueUrls": [SOURCE]}, {"QueueUrl": DLQ}
        )
        stub.add_response(
            "get_queue_attributes",
            {"Attributes": {"QueueArn": ARN}},
            {"QueueUrl": DLQ, "AttributeNames": ["QueueArn"]},
        )
        stub.add_response("start_message_move_task", {"TaskHandle": "h-1"}, {"SourceArn": ARN})
        stub.add_response(
            "list_message_move_tasks",
            {"Results": [{"Status": "RUNNING", "ApproximateNumberOfMessagesMoved": 1}]},
            {"SourceArn": ARN, "MaxResults": 1},
        )
        stub.add_response(
            "list_message_move_tasks",
            {"Results": [{"Status": "COMPLETED", "ApproximateNumberOfMessagesMoved": 7}]},
            {"SourceArn": ARN, "MaxResults": 1},
        )
        result = redrive.redrive(sqs, DLQ, emulator=False)
        stub.assert_no_pending_responses()
    assert result == {
        "method": "StartMessageMoveTask",
        "status": "COMPLETED",
        "moved": 7,
        "failureReason": None,
    }


def test_on_aws_a_failing_move_task_is_an_error_not_a_fallback() -> None:
    sqs = client()
    with Stubber(sqs) as stub:
        stub.add_response("list_dead_letter_source_queues", {"queueUrls": [SOURCE]})
        stub.add_response("get_queue_attributes", {"Attributes": {"QueueArn": ARN}})
        stub.add_client_error("start_message_move_task", "500", http_status_code=500)
        with pytest.raises(ClientError):
            redrive.redrive(sqs, DLQ, emulator=False)
        # no receive/send/delete was attempted: the stubber has nothing else queued
        stub.assert_no_pending_responses()


def test_a_dlq_no_queue_sends_to_is_refused() -> None:
    sqs = client()
    with Stubber(sqs) as stub:
        stub.add_response("list_dead_letter_source_queues", {"queueUrls": []})
        with pytest.raises(redrive.Refused, match="stream batch descriptions"):
            redrive.redrive(sqs, DLQ, emulator=True)
