"""Powertools' BatchProcessor for the SQS and stream consumers, logging each failed record.

Powertools logs a failed record at debug level only. Operators need every failure, with
where it came from and how often it was tried: one WARNING line "record failed" with the
queue (or table) name, the SQS message id and receive count (or the stream sequence
number) and the error type. A failure on a queue's last receive (its maxReceiveCount) is
the message SQS moves to the dead-letter queue next: the "DLQ arrivals" Logs Insights
query in template.yaml finds exactly those (docs/operations.md).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor
from aws_lambda_powertools.utilities.batch.base import FailureResponse
from aws_lambda_powertools.utilities.batch.exceptions import ExceptionInfo

from switchboard.observability import logger

__all__ = ["LoggedBatchProcessor", "failure_fields"]


def failure_fields(raw: dict[str, Any], exception: ExceptionInfo) -> dict[str, Any]:
    arn = str(raw.get("eventSourceARN") or raw.get("eventSourceArn") or "")
    fields: dict[str, Any] = {"errorType": exception[0].__name__ if exception[0] else "Exception"}
    if "dynamodb" in raw:  # arn:aws:dynamodb:<region>:<account>:table/<Name>/stream/<label>
        fields["source"] = arn.split(":table/", 1)[-1].split("/stream/", 1)[0]
        fields["sequenceNumber"] = str((raw.get("dynamodb") or {}).get("SequenceNumber", ""))
        fields["eventName"] = str(raw.get("eventName", ""))
    else:  # arn:aws:sqs:<region>:<account>:<QueueName>
        fields["source"] = arn.rsplit(":", 1)[-1]
        fields["messageId"] = str(raw.get("messageId", ""))
        attributes = raw.get("attributes") or {}
        fields["receiveCount"] = int(attributes.get("ApproximateReceiveCount") or 0)
    return fields


class LoggedBatchProcessor(BatchProcessor):
    def failure_handler(self, record: Any, exception: ExceptionInfo) -> FailureResponse:
        raw = getattr(record, "raw_event", record)
        logger.warning("record failed", extra=failure_fields(dict(raw), exception))
        return super().failure_handler(record, exception)
