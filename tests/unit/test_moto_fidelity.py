"""The devserver's moto patches: a table Query reads only its partition (same answer as
moto's own walk over the whole table), without creating empty partitions."""

from __future__ import annotations

from typing import Any

import boto3
from moto import mock_aws
from moto.dynamodb.models.table import Table

from devserver.moto_fidelity import make_dynamodb_writes_atomic


def _query(ddb: Any, pk: str, **extra: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = ddb.query(
        TableName="t",
        KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
        ExpressionAttributeValues={":p": {"S": pk}, ":s": {"S": "bike#"}},
        **extra,
    )["Items"]
    return items


def test_a_query_reads_its_partition_only_and_answers_as_before() -> None:
    make_dynamodb_writes_atomic()
    walked: list[int] = []
    original = Table.all_items

    def counting(self: Any) -> Any:
        items = original(self)
        walked.append(len(items))
        return items

    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(
            TableName="t",
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        for p in range(5):
            for i in range(20):
                sk = f"bike#{i:03d}" if i % 2 else f"cake#{i:03d}"
                ddb.put_item(TableName="t", Item={"pk": {"S": f"p{p}"}, "sk": {"S": sk}})
        Table.all_items = counting  # type: ignore[method-assign]
        try:
            newest = _query(ddb, "p3", ScanIndexForward=False, Limit=4)
            oldest = _query(ddb, "p3")
            missing = _query(ddb, "nobody")
        finally:
            Table.all_items = original  # type: ignore[method-assign]
        assert [i["sk"]["S"] for i in newest] == ["bike#019", "bike#017", "bike#015", "bike#013"]
        assert [i["sk"]["S"] for i in oldest] == [f"bike#{i:03d}" for i in range(1, 20, 2)]
        assert all(i["pk"]["S"] == "p3" for i in oldest)
        assert missing == []
        assert walked == [20, 20, 0]  # one partition's items, never the table's 100
        # Scans still see every item, and the query for "nobody" created no partition.
        assert ddb.scan(TableName="t", Select="COUNT")["Count"] == 100
