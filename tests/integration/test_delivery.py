"""Fan-out when posts fail, in-process: a connection API Gateway says is gone (410) is
forgotten, a throttled post (429) goes to the delivery queue and its consumer delivers it.
moto's management API never fails a post, so a botocore before-call hook answers for the
chosen connections, as API Gateway would; every other post reaches moto."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any
from urllib.parse import unquote

import pytest
from botocore.awsrequest import AWSResponse
from moto.sqs.models import sqs_backends

from devserver import ACCOUNT_ID, REGION
from tests.integration.conftest import FakeContext, Stack
from tests.integration.test_messaging import Client, new_conversation, send

ERRORS = {410: "GoneException", 429: "LimitExceededException"}


@pytest.fixture
def failing_posts(
    apps: tuple[ModuleType, ModuleType],
) -> Iterator[Callable[[dict[str, int]], None]]:
    """``fail({connection_id: status})``: posts to those connections get that answer from
    now on (``fail({})``: none fail)."""
    client = apps[0].service.delivery.gateway.client
    outcomes: dict[str, int] = {}

    def answer(params: dict[str, Any], **_: Any) -> Any:
        # ``params`` is the serialised request: the id is the last part of its path
        status = outcomes.get(unquote(params["url_path"].rsplit("/", 1)[-1]))
        if status is None:
            return None
        error = {"Code": ERRORS[status], "Message": ERRORS[status]}
        return (
            AWSResponse(url="", status_code=status, headers={}, raw=None),
            {"Error": error, "ResponseMetadata": {"HTTPStatusCode": status}},
        )

    event = "before-call.apigatewaymanagementapi.PostToConnection"
    client.meta.events.register(event, answer)

    def fail(new: dict[str, int]) -> None:
        outcomes.clear()
        outcomes.update(new)

    try:
        yield fail
    finally:
        client.meta.events.unregister(event, answer)


@pytest.fixture(scope="module")
def apps(stack: Stack) -> tuple[ModuleType, ModuleType]:
    return stack.handler("MessageFunction"), stack.handler("ConnectionFunction")


def queued_retries(stack: Stack, connection_id: str) -> list[Any]:
    """The delivery queue's messages for one connection (moto's backend: a delayed message
    cannot be received yet)."""
    name = stack.resources["DeliveryQueue"].rsplit("/", 1)[-1]
    queue = sqs_backends[ACCOUNT_ID][REGION].queues[name]
    return [m for m in queue._messages if connection_id in m.body]


def test_gone_is_forgotten_and_throttled_is_retried_through_the_queue(
    stack: Stack, apps: tuple[ModuleType, ModuleType], failing_posts: Any
) -> None:
    app, connect = apps
    tag = uuid.uuid4().hex[:6]
    alice = Client(stack, app, connect, f"alice-{tag}")
    bob_phone = Client(stack, app, connect, f"bob-{tag}")
    bob_laptop = Client(stack, app, connect, bob_phone.user_id)
    carol = Client(stack, app, connect, f"carol-{tag}")
    conversation = new_conversation(alice, bob_phone, carol)

    # Given bob's phone is gone (opened a minute ago: a 410 right after connecting means
    # "not ready yet", see delivery.CONNECT_GRACE_MS) and his laptop throttled
    ddb = stack.client("dynamodb")
    ddb.update_item(
        TableName=stack.table("ConnectionsTable"),
        Key={"connectionId": {"S": bob_phone.connection_id}},
        UpdateExpression="SET connectedAt = connectedAt - :minute",
        ExpressionAttributeValues={":minute": {"N": "60000"}},
    )
    failing_posts({bob_phone.connection_id: 410, bob_laptop.connection_id: 429})
    sent = send(alice, conversation, "through the storm")

    # Then carol has it at once; the phone is forgotten (its connection item and its place
    # in bob's presence), the laptop is not
    assert [f["data"]["seq"] for f in carol.frames("message:new")] == [sent["seq"]]
    item = ddb.get_item(
        TableName=stack.table("ConnectionsTable"),
        Key={"connectionId": {"S": bob_phone.connection_id}},
        ConsistentRead=True,
    )
    assert "Item" not in item
    user = ddb.get_item(
        TableName=stack.table("UsersTable"),
        Key={"userId": {"S": bob_phone.user_id}},
        ConsistentRead=True,
    )["Item"]
    assert set(user["connectionIds"]["SS"]) == {bob_laptop.connection_id}

    # And the laptop's push waits on the delivery queue; its consumer delivers it
    (job,) = queued_retries(stack, bob_laptop.connection_id)
    assert bob_laptop.frames("message:new") == []
    failing_posts({})  # API Gateway takes posts again
    retry = stack.handler("DeliveryRetryFunction")
    record = {
        "messageId": job.id,
        "receiptHandle": uuid.uuid4().hex,
        "body": job.body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:DeliveryQueue",
        "awsRegion": REGION,
    }
    outcome = retry.lambda_handler({"Records": [record]}, FakeContext())
    assert outcome == {"batchItemFailures": []}, outcome
    delivered = bob_laptop.frames("message:new")
    assert [json.dumps(f["data"], sort_keys=True) for f in delivered] == [
        json.dumps(carol.frames("message:new")[0]["data"], sort_keys=True)
    ]


def test_a_retried_push_of_a_message_deleted_meanwhile_arrives_as_a_tombstone(
    stack: Stack, apps: tuple[ModuleType, ModuleType], failing_posts: Any
) -> None:
    app, connect = apps
    tag = uuid.uuid4().hex[:6]
    alice = Client(stack, app, connect, f"alice-{tag}")
    bob = Client(stack, app, connect, f"bob-{tag}")
    conversation = new_conversation(alice, bob)
    # Given bob's push of alice's message is throttled and waits on the delivery queue
    failing_posts({bob.connection_id: 429})
    send(alice, conversation, "my card number is 4111")
    (job,) = queued_retries(stack, bob.connection_id)
    failing_posts({})
    # When alice deletes it before the retry runs (her delete push reaches bob first)
    alice.ok("message:delete", {"conversationId": conversation, "seq": 1})
    retry = stack.handler("DeliveryRetryFunction")
    record = {
        "messageId": job.id,
        "receiptHandle": uuid.uuid4().hex,
        "body": job.body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:DeliveryQueue",
        "awsRegion": REGION,
    }
    assert retry.lambda_handler({"Records": [record]}, FakeContext()) == {"batchItemFailures": []}
    # Then the retried push is the message as it is now: a tombstone, no text
    (late,) = bob.frames("message:new")
    assert (late["data"]["seq"], late["data"]["body"]) == (1, "")
    assert late["data"]["deletedAt"] > 0
    assert "4111" not in json.dumps(bob.frames())
