"""Connections table stream: what follows a connection opening or closing (reconnect
backlog, presence, call teardown; switchboard/connection_events.py)."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
    DynamoDBRecordEventName,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from switchboard import services
from switchboard.batch import LoggedBatchProcessor
from switchboard.config import CallSettings, MessagingSettings
from switchboard.observability import logger

# Both validated at cold start, like every setting.
events = services.connection_events(MessagingSettings.from_env(), CallSettings.from_env())
processor = LoggedBatchProcessor(event_type=EventType.DynamoDBStreams)


def handle_change(record: DynamoDBRecord) -> None:
    change = record.dynamodb
    if change is None:
        return
    now_ms = int(time.time() * 1000)
    if record.event_name == DynamoDBRecordEventName.INSERT and change.new_image:
        image = change.new_image
        events.connected(
            image["connectionId"],
            image["userId"],
            int(image.get("connectedAt", now_ms)),
            token_iat=int(image.get("tokenIat", 0)),
            backlog_batch=image.get("backlogBatch") is True,
        )
    elif record.event_name == DynamoDBRecordEventName.REMOVE and change.old_image:
        events.disconnected(change.old_image["connectionId"], change.old_image["userId"], now_ms)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    return process_partial_response(event, handle_change, processor, context)
