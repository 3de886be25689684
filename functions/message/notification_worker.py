"""Notification queue consumer: in-app notifications and digested e-mail."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import (
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from switchboard import services
from switchboard.batch import LoggedBatchProcessor
from switchboard.config import NotificationSettings
from switchboard.observability import logger
from switchboard.queues import NotificationJob

service = services.notifications(NotificationSettings.from_env())
processor = LoggedBatchProcessor(event_type=EventType.SQS)


def handle_job(record: SQSRecord) -> None:
    service.handle(NotificationJob.parse(record.body))


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    return process_partial_response(event, handle_job, processor, context)
