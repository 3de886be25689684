"""Delivery queue consumer: retries pushes that failed with throttling/5xx (a message as it
is now: edited or deleted meanwhile, that is what goes).

A failed retry stays on the queue with a longer visibility timeout (2, 4, 8 s ...); after
the queue's maxReceiveCount SQS moves it to the dead-letter queue (alarmed, redrivable).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import (
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from switchboard import aws, services
from switchboard.batch import LoggedBatchProcessor
from switchboard.config import DeliveryRetrySettings
from switchboard.gateway import DeliveryFailed
from switchboard.message_ops import fresh_retry
from switchboard.observability import logger
from switchboard.queues import RetryJob, retry_backoff_seconds

settings = DeliveryRetrySettings.from_env()
delivery = services.delivery(settings)
conversations = services.conversations(settings)
processor = LoggedBatchProcessor(event_type=EventType.SQS)


def retry_push(record: SQSRecord) -> None:
    try:
        delivery.retry(fresh_retry(conversations, RetryJob.parse(record.body)))
    except DeliveryFailed:
        receive_count = int(record.attributes.approximate_receive_count)
        aws.sqs().change_message_visibility(
            QueueUrl=settings.DELIVERY_QUEUE_URL,
            ReceiptHandle=record.receipt_handle,
            VisibilityTimeout=retry_backoff_seconds(receive_count),
        )
        raise


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    return process_partial_response(event, retry_push, processor, context)
