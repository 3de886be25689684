"""Ring-timeout queue consumer: a delayed message per invitation; invitees still ringing
when it arrives missed the call (both sides told, a missed-call notification queued)."""

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
from switchboard.config import CallSettings
from switchboard.observability import logger
from switchboard.queues import RingTimeout

service = services.calls(CallSettings.from_env())
processor = LoggedBatchProcessor(event_type=EventType.SQS)


def handle_timeout(record: SQSRecord) -> None:
    service.ring_timed_out(RingTimeout.parse(record.body))


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    return process_partial_response(event, handle_timeout, processor, context)
