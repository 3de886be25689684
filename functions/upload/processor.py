"""S3 ObjectCreated -> SQS -> here: verify each stored upload against what was declared
(HeadObject size, magic bytes), strip image metadata and make a thumbnail, then push
``upload:processing`` and ``upload:complete`` / ``upload:error`` to the owner.

S3 sends an ``s3:TestEvent`` when the notification is configured (acknowledged and
dropped) and URL-encodes object keys (``unquote_plus``). A record whose processing fails
for a transient reason is reported as a batch item failure: SQS retries it and, after the
queue's maxReceiveCount, moves it to the dead-letter queue (alarmed).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.batch import (
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from switchboard import services
from switchboard.batch import LoggedBatchProcessor
from switchboard.config import UploadSettings
from switchboard.observability import logger

uploads = services.upload_processor(UploadSettings.from_env())
batch = LoggedBatchProcessor(event_type=EventType.SQS)


def process_notification(record: SQSRecord) -> None:
    notification = json.loads(record.body)
    if notification.get("Event") == "s3:TestEvent":
        logger.info("s3 test event acknowledged")
        return
    for s3_record in notification.get("Records", []):
        if not str(s3_record.get("eventName", "")).startswith("ObjectCreated:"):
            continue
        s3 = s3_record["s3"]
        key = unquote_plus(s3["object"]["key"])
        outcome = uploads.handle(s3["bucket"]["name"], key, s3["object"].get("eTag", ""))
        logger.info("s3 object handled", extra={"key": key, "outcome": outcome})


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    return process_partial_response(event, process_notification, batch, context)
