"""The refusal oracle's own test: the effect log (devserver/effects.py) records every
successful write to the embedded AWS - DynamoDB, SQS, S3, SES and management-API posts -
and nothing else (reads, failed conditional writes, cancelled transactions), so an empty
window (tests/support/effects.py) really means that nothing happened."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.conftest import Stack
from tests.integration.test_messaging import Client, new_conversation
from tests.support.effects import InProcess


def operations(window: object) -> list[tuple[str, str]]:
    return [(e["service"], e["operation"]) for e in window.effects()]  # type: ignore[attr-defined]


def test_writes_are_effects_and_reads_are_not(stack: Stack) -> None:
    ddb, sqs, s3 = stack.client("dynamodb"), stack.client("sqs"), stack.client("s3")
    table = stack.table("RateLimitsTable")
    key = {"key": {"S": f"effects-{uuid.uuid4().hex}"}}

    # Given a window, when only reads happen, then it stays empty
    window = InProcess().window()
    ddb.get_item(TableName=table, Key=key)
    ddb.scan(TableName=table, Limit=1)
    sqs.get_queue_attributes(QueueUrl=stack.resources["DeliveryQueue"], AttributeNames=["All"])
    assert window.effects() == []
    window.assert_nothing_happened("reads")

    # When writes happen, then each one is there, in order
    ddb.put_item(TableName=table, Item={**key, "n": {"N": "1"}})
    ddb.update_item(
        TableName=table,
        Key=key,
        UpdateExpression="SET n = n + :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )
    sqs.send_message(QueueUrl=stack.resources["DeliveryQueue"], MessageBody="{}")
    bucket = stack.resources["UploadsBucket"]
    s3.put_object(Bucket=bucket, Key="uploads/effects-test", Body=b"x")
    ddb.delete_item(TableName=table, Key=key)
    assert operations(window) == [
        ("DynamoDB", "PutItem"),
        ("DynamoDB", "UpdateItem"),
        ("AmazonSQS", "SendMessage"),
        ("s3", "PUT"),
        ("DynamoDB", "DeleteItem"),
    ]
    with pytest.raises(AssertionError, match="UpdateItem"):
        window.assert_nothing_happened("writes")


def test_failed_writes_are_not_effects(stack: Stack) -> None:
    ddb = stack.client("dynamodb")
    table = stack.table("RateLimitsTable")
    key = {"key": {"S": f"effects-{uuid.uuid4().hex}"}}
    ddb.put_item(TableName=table, Item={**key, "n": {"N": "1"}})
    window = InProcess().window()
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException):
        ddb.put_item(
            TableName=table,
            Item=key,
            ConditionExpression="attribute_not_exists(#k)",
            ExpressionAttributeNames={"#k": "key"},
        )
    with pytest.raises(ddb.exceptions.TransactionCanceledException):
        ddb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": {"key": {"S": uuid.uuid4().hex}}}},
                {
                    "ConditionCheck": {
                        "TableName": table,
                        "Key": key,
                        "ConditionExpression": "n = :two",
                        "ExpressionAttributeValues": {":two": {"N": "2"}},
                    }
                },
            ]
        )
    window.assert_nothing_happened("failed conditional writes")


def test_a_push_to_anyone_is_an_effect_naming_the_connection(stack: Stack) -> None:
    # Given two connected members, when one types, then the push to the other is seen
    message, connect = stack.handler("MessageFunction"), stack.handler("ConnectionFunction")
    tag = uuid.uuid4().hex[:6]
    alice = Client(stack, message, connect, f"alice-{tag}")
    bob = Client(stack, message, connect, f"bob-{tag}")
    conversation = new_conversation(alice, bob)
    window = InProcess().window({bob.connection_id: "bob"})
    alice.ok("typing:start", {"conversationId": conversation})
    assert [(e["operation"], e["target"]) for e in window.pushes()] == [
        ("PostToConnection", bob.connection_id)
    ]
    with pytest.raises(AssertionError, match="PostToConnection bob"):
        window.assert_nothing_happened("typing")
