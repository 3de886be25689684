"""Stream aggregator: DynamoDB Streams of the connections, messages, conversations
(receipts), notifications (offline deliveries) and rate-limits (typing) tables -> the
Metrics table, exactly once per change (see switchboard/dal/metrics.py).

A batch is applied together (a few transactions for the whole batch: Aggregator.
handle_batch); if that fails, record by record with partial batch responses, which skips
what the batch attempt did count (markers) and reports only the records that fail."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import (
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from switchboard import services
from switchboard.batch import LoggedBatchProcessor
from switchboard.config import AggregatorSettings
from switchboard.observability import logger, metrics

aggregator = services.analytics_aggregator(AggregatorSettings.from_env())
processor = LoggedBatchProcessor(event_type=EventType.DynamoDBStreams)


def aggregate(record: DynamoDBRecord) -> None:
    aggregator.handle(record.raw_event)


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    records = event.get("Records")
    if records:  # anything else is Powertools' to refuse, as it always was
        try:
            aggregator.handle_batch(records)
        except Exception:
            logger.exception("batch not applied together: record by record")
        else:
            return {"batchItemFailures": []}
    return process_partial_response(event, aggregate, processor, context)
