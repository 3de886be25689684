"""Builders of API Gateway WebSocket events, shaped like the ones in events/."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any


def ws_event(
    route_key: str,
    *,
    body: Any = None,
    connection_id: str = "conn-1",
    user_id: str = "alice",
    roles: str = "",
    token_exp: int | None = None,
    event_type: str | None = None,
    authorizer: bool = True,
) -> dict[str, Any]:
    now_ms = int(time.time() * 1000)
    if event_type is None:
        event_type = {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route_key, "MESSAGE")
    context: dict[str, Any] = {
        "routeKey": route_key,
        "eventType": event_type,
        "messageDirection": "IN",
        "connectionId": connection_id,
        "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
        "stage": "dev",
        "apiId": "abc123",
        "requestId": uuid.uuid4().hex,
        "extendedRequestId": uuid.uuid4().hex,
        "requestTimeEpoch": now_ms,
        "connectedAt": now_ms,
        "identity": {"sourceIp": "127.0.0.1", "userAgent": "pytest"},
    }
    if authorizer:
        context["authorizer"] = {
            "principalId": user_id,
            "userId": user_id,
            "roles": roles,
            "tokenExp": token_exp if token_exp is not None else int(time.time()) + 3600,
            "tokenIat": int(time.time()) - 1,
        }
    event: dict[str, Any] = {"requestContext": context, "isBase64Encoded": False}
    if body is not None:
        event["body"] = body if isinstance(body, str) else json.dumps(body)
    return event


def frame(
    action: str, data: dict[str, Any] | None = None, request_id: str = "r-1"
) -> dict[str, Any]:
    return {"action": action, "id": request_id, "data": data or {}}


def reply_of(response: dict[str, Any]) -> dict[str, Any]:
    assert response["statusCode"] == 200
    parsed: dict[str, Any] = json.loads(response["body"])
    return parsed


def upload_event_records(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """SQS event records, as Lambda hands them to the upload processor, of messages
    received from UploadEventsQueue."""
    return [
        {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": {"ApproximateReceiveCount": "1"},
            "messageAttributes": {},
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:UploadEventsQueue",
            "awsRegion": "us-east-1",
        }
        for m in messages
    ]
