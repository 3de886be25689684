"""Ghost connections: API Gateway answers 410 to posts and DELETEs
for a connection whose $connect has not returned yet. A 410 that young is retried, never
taken as the connection being gone, and a revocation that met a handshake is re-checked on
the connection's first stream record. moto's management API never answers 410, so the
gateway here is a stand-in that does, for the connections a test names."""

from __future__ import annotations

import json
import time
import uuid
from types import ModuleType
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from botocore.exceptions import ClientError
from switchboard.gateway import DeliveryFailed, ManagementApi
from switchboard.queues import RetryJob

from tests.integration.conftest import FakeContext, Stack
from tests.integration.test_messaging import Client, new_conversation, send


class HandshakingGateway:
    """A management-API client answering 410 for the ids in ``connecting``, as API Gateway
    does until their $connect has returned; other posts and DELETEs are recorded."""

    def __init__(self, *connecting: str) -> None:
        self.connecting = set(connecting)
        self.posted: list[tuple[str, dict[str, Any]]] = []
        self.deleted: list[str] = []
        self.refused = 0

    def _gone(self, connection_id: str, operation: str) -> None:
        if connection_id in self.connecting:
            self.refused += 1
            raise ClientError(
                {
                    "Error": {"Code": "GoneException", "Message": "Gone"},
                    "ResponseMetadata": {"HTTPStatusCode": 410},
                },
                operation,
            )

    def post_to_connection(self, ConnectionId: str, Data: bytes) -> dict[str, Any]:
        self._gone(ConnectionId, "PostToConnection")
        self.posted.append((ConnectionId, json.loads(Data)))
        return {}

    def delete_connection(self, ConnectionId: str) -> dict[str, Any]:
        self._gone(ConnectionId, "DeleteConnection")
        self.deleted.append(ConnectionId)
        return {}


@pytest.fixture(scope="module")
def apps(stack: Stack) -> dict[str, ModuleType]:
    return {
        "message": stack.handler("MessageFunction"),
        "connect": stack.handler("ConnectionFunction"),
        "events": stack.handler("ConnectionEventsFunction"),
    }


def client(stack: Stack, apps: dict[str, ModuleType], name: str) -> Client:
    return Client(stack, apps["message"], apps["connect"], f"{name}-{uuid.uuid4().hex[:6]}")


def connection_item(stack: Stack, connection_id: str) -> dict[str, Any] | None:
    item: dict[str, Any] | None = (
        stack.client("dynamodb")
        .get_item(
            TableName=stack.table("ConnectionsTable"),
            Key={"connectionId": {"S": connection_id}},
            ConsistentRead=True,
        )
        .get("Item")
    )
    return item


def presence_ids(stack: Stack, user_id: str) -> set[str]:
    item = stack.client("dynamodb").get_item(
        TableName=stack.table("UsersTable"), Key={"userId": {"S": user_id}}, ConsistentRead=True
    )["Item"]
    return set(item.get("connectionIds", {}).get("SS", []))


def insert_record(stack: Stack, connection_id: str) -> dict[str, Any]:
    """The Connections-stream INSERT record of the item $connect wrote."""
    image = connection_item(stack, connection_id)
    assert image is not None
    return {
        "Records": [
            {
                "eventID": uuid.uuid4().hex,
                "eventName": "INSERT",
                "eventSource": "aws:dynamodb",
                "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/c/stream/x",
                "dynamodb": {
                    "Keys": {"connectionId": image["connectionId"]},
                    "NewImage": image,
                    "SequenceNumber": "1",
                    "SizeBytes": 1,
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                },
            }
        ]
    }


def record_failed(events_app: ModuleType, record: dict[str, Any]) -> bool:
    """Whether the stream record failed (Lambda then retries it): reported as a batch
    item failure, or, the batch being that one record, raised by Powertools."""
    try:
        result = events_app.lambda_handler(record, FakeContext())
    except BatchProcessingError:
        return True
    return bool(result["batchItemFailures"])


def age_connection(stack: Stack, connection_id: str, seconds: int) -> None:
    stack.client("dynamodb").update_item(
        TableName=stack.table("ConnectionsTable"),
        Key={"connectionId": {"S": connection_id}},
        UpdateExpression="SET connectedAt = :at",
        ExpressionAttributeValues={":at": {"N": str(int((time.time() - seconds) * 1000))}},
    )


def test_a_410_for_a_connection_still_handshaking_is_retried_not_forgotten(
    stack: Stack, apps: dict[str, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = client(stack, apps, "alice"), client(stack, apps, "bob")
    conversation = new_conversation(alice, bob)
    delivery = apps["message"].service.delivery
    # Given bob's connection just opened, its $connect not yet returned (410 to posts)
    gateway = HandshakingGateway(bob.connection_id)
    monkeypatch.setattr(delivery, "gateway", ManagementApi("unused", client=gateway))  # type: ignore[arg-type]
    queued: list[str] = []
    monkeypatch.setattr(
        delivery,
        "_enqueue_retries",
        lambda jobs, reasons: queued.extend(j.connection_id for j in jobs),
    )
    # When alice sends
    send(alice, conversation, "hello")
    # Then the 410 was met, and bob's connection is kept and its push queued for a retry
    assert gateway.refused == 1
    assert connection_item(stack, bob.connection_id) is not None
    assert bob.connection_id in presence_ids(stack, bob.user_id)
    assert queued == [bob.connection_id]
    # And the delivery-retry consumer retries it too (SQS backoff) while it is young
    job = RetryJob(bob.connection_id, bob.user_id, '{"type":"x"}')
    with pytest.raises(DeliveryFailed, match="410 while connecting"):
        delivery.retry(job)
    assert connection_item(stack, bob.connection_id) is not None
    # While a 410 for a connection past the grace period is gone for good
    age_connection(stack, bob.connection_id, 60)
    send(alice, conversation, "later")
    assert connection_item(stack, bob.connection_id) is None
    assert bob.connection_id not in presence_ids(stack, bob.user_id)


def test_the_backlog_push_waits_out_a_handshake_instead_of_forgetting_the_connection(
    stack: Stack, apps: dict[str, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = client(stack, apps, "alice"), client(stack, apps, "bob")
    conversation = new_conversation(alice, bob)
    send(alice, conversation, "while you were away")
    delivery = apps["events"].events.backlog.delivery
    gateway = HandshakingGateway(bob.connection_id)
    monkeypatch.setattr(delivery, "gateway", ManagementApi("unused", client=gateway))  # type: ignore[arg-type]
    waits: list[float] = []
    monkeypatch.setattr(delivery, "_sleep", waits.append, raising=False)
    record = insert_record(stack, bob.connection_id)
    # When the connection's stream record is handled before its handshake has ended
    # Then the record fails (Lambda retries it) after short waits, and nothing is forgotten
    assert record_failed(apps["events"], record)
    assert waits and sum(waits) < 5
    assert connection_item(stack, bob.connection_id) is not None
    assert bob.connection_id in presence_ids(stack, bob.user_id)
    # And once the handshake is done, the retried record delivers the backlog
    gateway.connecting.clear()
    assert not record_failed(apps["events"], record)
    pushed = [f["data"]["body"] for c, f in gateway.posted if c == bob.connection_id]
    assert pushed == ["while you were away"]


def test_a_revocation_that_met_a_handshake_is_enforced_on_the_first_stream_record(
    stack: Stack, apps: dict[str, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, mallory = client(stack, apps, "alice"), client(stack, apps, "mallory")
    conversation = new_conversation(alice, mallory)
    send(alice, conversation, "secret")
    # Given mallory's $connect was stored, then an admin revoked mallory's tokens while
    # the handshake was under way (the revocation's DELETE got 410 and missed it)
    stack.client("dynamodb").update_item(
        TableName=stack.table("UsersTable"),
        Key={"userId": {"S": mallory.user_id}},
        UpdateExpression="SET tokensValidAfter = :now",
        ExpressionAttributeValues={":now": {"N": str(int(time.time()) + 1)}},
    )
    delivery = apps["events"].events.backlog.delivery
    gateway = HandshakingGateway(mallory.connection_id)
    monkeypatch.setattr(delivery, "gateway", ManagementApi("unused", client=gateway))  # type: ignore[arg-type]
    monkeypatch.setattr(delivery, "_sleep", lambda _: None, raising=False)
    record = insert_record(stack, mallory.connection_id)
    # When its first stream record arrives while it is still handshaking: retried
    assert record_failed(apps["events"], record)
    # And once the handshake has ended, the connection is closed with no backlog pushed
    gateway.connecting.clear()
    assert not record_failed(apps["events"], record)
    assert gateway.deleted == [mallory.connection_id]
    assert gateway.posted == []
