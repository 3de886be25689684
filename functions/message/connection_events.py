"""Connections table stream: presence pushes and backlog delivery on (re)connect."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from switchboard.calls import CallService

events = services.connection_events(MessagingSettings.from_env())
processor = LoggedBatchProcessor(event_type=EventType.DynamoDBStreams)
call_settings = CallSettings.from_env()  # validated at cold start, like every setting
_calls: list[CallService] = []


def calls() -> CallService:
    # Built on the first disconnect: connects never need the call code.
    if not _calls:
        _calls.append(services.calls(call_settings))
    return _calls[0]


def handle_change(record: DynamoDBRecord) -> None:
    change = record.dynamodb
    if change is None:
        return
    now_ms = int(time.time() * 1000)
    if record.event_name == DynamoDBRecordEventName.INSERT and change.new_image:
        image = change.new_image
        events.connected(
            image["connectionId"], image["userId"], int(image.get("connectedAt", now_ms)), now_ms
        )
    elif record.event_name == DynamoDBRecordEventName.REMOVE and change.old_image:
        connection_id, user_id = change.old_image["connectionId"], change.old_image["userId"]
        calls().connection_closed(connection_id, user_id)  # the peer learns at once
        events.disconnected(connection_id, user_id, now_ms)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    return process_partial_response(event, handle_change, processor, context)
