"""Powertools' BatchProcessor for the SQS and stream consumers, logging each failed record
and measuring every queue batch.

Powertools logs a failed record at debug level only. Operators need every failure, with
where it came from and how often it was tried: one WARNING line "record failed" with the
queue (or table) name, the SQS message id and receive count (or the stream sequence
number) and the error type. A failure on a queue's last receive (its maxReceiveCount) is
the message SQS moves to the dead-letter queue next: the "DLQ arrivals" Logs Insights
query in template.yaml finds exactly those (docs/operations.md).

Per SQS batch it also publishes one EMF document (CloudWatch metrics from the log line,
no API call) with the dimension ``QueueName``: ``QueueRecordsProcessed``,
``QueueRecordsFailed`` and ``QueueRecordProcessingTime`` (ms, one value per record). The
analytics API reads them back (/api/analytics/queues: processing time and failure rate).
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.batch.base import FailureResponse
from aws_lambda_powertools.utilities.batch.exceptions import ExceptionInfo

from switchboard.observability import QUEUE_METRICS, logger

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
    _timings: list[float]
    _queue: str

    def _prepare(self) -> None:
        super()._prepare()  # type: ignore[no-untyped-call]
        self._timings, self._queue = [], ""

    def _process_record(self, record: dict[str, Any]) -> Any:
        started = time.perf_counter()
        try:
            return super()._process_record(record)
        finally:
            self._timings.append(round((time.perf_counter() - started) * 1000, 3))
            if self.event_type == EventType.SQS and not self._queue:
                self._queue = str(record.get("eventSourceARN", "")).rsplit(":", 1)[-1]

    def _clean(self) -> None:
        # Before the parent's _clean: it raises when every record failed.
        if self._queue and self._timings:
            emf = EphemeralMetrics()
            emf.add_dimension(name="QueueName", value=self._queue)
            emf.add_metric(
                name=QUEUE_METRICS["processed"],
                unit=MetricUnit.Count,
                value=len(self.success_messages),
            )
            emf.add_metric(
                name=QUEUE_METRICS["failed"], unit=MetricUnit.Count, value=len(self.fail_messages)
            )
            for ms in self._timings:
                emf.add_metric(name=QUEUE_METRICS["time"], unit=MetricUnit.Milliseconds, value=ms)
            emf.flush_metrics()
        super()._clean()  # type: ignore[no-untyped-call]

    def failure_handler(self, record: Any, exception: ExceptionInfo) -> FailureResponse:
        raw = getattr(record, "raw_event", record)
        logger.warning("record failed", extra=failure_fields(dict(raw), exception))
        return super().failure_handler(record, exception)
