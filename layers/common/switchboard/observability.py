"""Powertools logger and metrics shared by every function (module-level, as Powertools
recommends). Tracer is deliberately absent: it imports the X-Ray SDK (~0.5 s of cold
start here) and Lambda's active tracing already records each invocation."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

logger = Logger()
metrics = Metrics()

# EMF metrics of each SQS batch (switchboard/batch.py publishes them, dimension QueueName;
# switchboard/analytics/queue_processing.py reads them back).
QUEUE_METRICS = {
    "processed": "QueueRecordsProcessed",
    "failed": "QueueRecordsFailed",
    "time": "QueueRecordProcessingTime",
}
