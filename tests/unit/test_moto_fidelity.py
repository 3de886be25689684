"""The emulator's own guarantees: devserver/moto_fidelity.py replaces moto's
TransactWriteItems (and serialises moto's writes), and every claim about gapless seqs,
idempotency and lost answers rests on it. Each scenario runs on the replacement and on
stock moto, against DynamoDB's documented semantics:

- all or nothing: "The actions are completed atomically so that either all of them
  succeed, or all of them fail" (API Reference, TransactWriteItems:
  https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html);
- a cancellation reason per item, in request order, code ``None`` where the item did
  not fail (API Reference, CancellationReason:
  https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_CancellationReason.html);
- one stream record per item change, in the order of the changes; none for a
  ConditionCheck or a cancelled transaction (Developer Guide, "Change data capture for
  DynamoDB Streams": https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Streams.html).

And the speed patches: a table Query reads only its partition (the same answer as moto's
own walk over the whole table), without creating empty partitions; the item reads'
answers, written without moto's serialiser, are the same JSON as it writes.

In-process moto (``mock_aws``): no server, no network.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table

from devserver import moto_fidelity
from devserver.moto_fidelity import (
    make_dynamodb_writes_atomic,
    stock_item_reads,
    stock_transact_write_items,
)

TABLE = "fidelity"


@pytest.fixture(params=["switchboard", "stock"])
def ddb(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A table with a NEW_AND_OLD_IMAGES stream, on the replacement or on stock moto."""
    make_dynamodb_writes_atomic()
    if request.param == "stock":
        monkeypatch.setattr(DynamoDBBackend, "transact_write_items", stock_transact_write_items())
    with _table() as client:
        yield client


@pytest.fixture
def local_stack_ddb() -> Iterator[Any]:
    """The same table on the replacement alone (as the local stack runs it)."""
    make_dynamodb_writes_atomic()
    with _table() as client:
        yield client


@contextmanager
def _table() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client(
            "dynamodb",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(account_id_endpoint_mode="disabled"),
        )
        client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        for pk, n in (("a", 1), ("b", 1), ("c", 1)):
            client.put_item(TableName=TABLE, Item={"pk": {"S": pk}, "n": {"N": str(n)}})
        yield client


def items(ddb: Any) -> dict[str, Any]:
    return {i["pk"]["S"]: i for i in ddb.scan(TableName=TABLE, ConsistentRead=True)["Items"]}


def stream_records(ddb: Any, region: str = "us-east-1") -> list[tuple[str, str]]:
    """(event name, pk) of every stream record so far, in stream order."""
    streams = boto3.client(
        "dynamodbstreams",
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(account_id_endpoint_mode="disabled"),
    )
    arn = ddb.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
    shards = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    records: list[tuple[str, str]] = []
    for shard in shards:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        got = streams.get_records(ShardIterator=iterator, Limit=1000)["Records"]
        records += [(r["eventName"], r["dynamodb"]["Keys"]["pk"]["S"]) for r in got]
    return records


def update(pk: str, condition: str | None = None, expression: str = "SET n = n + :one") -> Any:
    op: dict[str, Any] = {
        "TableName": TABLE,
        "Key": {"pk": {"S": pk}},
        "UpdateExpression": expression,
        "ExpressionAttributeValues": {":one": {"N": "1"}},
    }
    if condition:
        op["ConditionExpression"] = condition
    return {"Update": op}


def cancelled(call: Callable[[], Any]) -> ClientError:
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value


def test_all_succeed_together_with_one_stream_record_per_changed_item(ddb: Any) -> None:
    before = stream_records(ddb)
    ddb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "d"}, "n": {"N": "9"}}}},
            update("a", "n = :one"),
            {
                "ConditionCheck": {
                    "TableName": TABLE,
                    "Key": {"pk": {"S": "b"}},
                    "ConditionExpression": "attribute_exists(pk)",
                }
            },
            {"Delete": {"TableName": TABLE, "Key": {"pk": {"S": "c"}}}},
        ]
    )
    assert {k: v["n"]["N"] for k, v in items(ddb).items()} == {"a": "2", "b": "1", "d": "9"}
    # The ConditionCheck changed nothing: no record for it
    assert stream_records(ddb)[len(before) :] == [("INSERT", "d"), ("MODIFY", "a"), ("REMOVE", "c")]


def test_a_failed_condition_cancels_everything_with_a_reason_per_item(ddb: Any) -> None:
    before_items, before_records = items(ddb), stream_records(ddb)
    error = cancelled(
        lambda: ddb.transact_write_items(
            TransactItems=[
                update("a"),
                update("b", "n <> :one"),
                {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "e"}}}},
            ]
        )
    )
    assert error.response["Error"]["Code"] == "TransactionCanceledException"
    reasons = [r["Code"] for r in error.response["CancellationReasons"]]
    assert reasons == ["None", "ConditionalCheckFailed", "None"]
    # All or nothing: no item changed, no stream record
    assert items(ddb) == before_items
    assert stream_records(ddb) == before_records


def test_the_failing_item_can_be_returned_with_its_reason(ddb: Any) -> None:
    op = update("b", "n = :zero")
    op["Update"]["ExpressionAttributeValues"][":zero"] = {"N": "0"}
    op["Update"]["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    error = cancelled(lambda: ddb.transact_write_items(TransactItems=[update("a"), op]))
    first, second = error.response["CancellationReasons"]
    assert first["Code"] == "None" and "Item" not in first
    assert second["Code"] == "ConditionalCheckFailed"
    assert second["Item"] == {"pk": {"S": "b"}, "n": {"N": "1"}}


def test_a_write_failing_after_the_conditions_passed_is_rolled_back(ddb: Any) -> None:
    # Every condition holds, but the second update cannot apply (ADD of a number to a
    # string): the first update must not stay, nor its stream record.
    ddb.put_item(TableName=TABLE, Item={"pk": {"S": "s"}, "n": {"S": "text"}})
    before_items, before_records = items(ddb), stream_records(ddb)
    cancelled(
        lambda: ddb.transact_write_items(
            TransactItems=[update("a"), update("s", expression="ADD n :one")]
        )
    )
    assert items(ddb) == before_items
    assert stream_records(ddb) == before_records


def test_two_actions_on_one_item_are_refused(ddb: Any) -> None:
    before_items = items(ddb)
    error = cancelled(lambda: ddb.transact_write_items(TransactItems=[update("a"), update("a")]))
    assert error.response["Error"]["Code"] == "ValidationException"
    assert items(ddb) == before_items


def test_more_than_100_actions_are_refused(ddb: Any) -> None:
    puts = [{"Put": {"TableName": TABLE, "Item": {"pk": {"S": f"x{i}"}}}} for i in range(101)]
    cancelled(lambda: ddb.transact_write_items(TransactItems=puts))
    assert not any(pk.startswith("x") for pk in items(ddb))


def test_concurrent_conditional_transactions_leave_no_gap_and_no_double(
    local_stack_ddb: Any,
) -> None:
    """The lost update the write lock prevents: each writer reads n, then writes n + 1 on
    the condition that n is unchanged. Every success must be a distinct step. (Stock moto
    checks and writes without a lock: run against it here, several writers won the same
    step - which is why the local stack serialises moto's writes.)"""
    ddb = local_stack_ddb
    successes: list[int] = []
    lock = threading.Lock()

    def writer() -> None:
        for _ in range(15):
            current = int(
                ddb.get_item(TableName=TABLE, Key={"pk": {"S": "a"}}, ConsistentRead=True)["Item"][
                    "n"
                ]["N"]
            )
            try:
                ddb.transact_write_items(
                    TransactItems=[
                        {
                            "Update": {
                                "TableName": TABLE,
                                "Key": {"pk": {"S": "a"}},
                                "UpdateExpression": "SET n = :next",
                                "ConditionExpression": "n = :current",
                                "ExpressionAttributeValues": {
                                    ":next": {"N": str(current + 1)},
                                    ":current": {"N": str(current)},
                                },
                            }
                        }
                    ]
                )
            except ClientError as exc:
                assert exc.response["Error"]["Code"] == "TransactionCanceledException"
            else:
                with lock:
                    successes.append(current + 1)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    final = int(items(ddb)["a"]["n"]["N"])
    assert sorted(successes) == list(range(2, final + 1))


# ---------------------------------------------------------------------- Query
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


# ---------------------------------------------------------------------- fast item reads
# Every type of attribute value, nested ones and the edge cases of each (DynamoDB API
# Reference, AttributeValue:
# https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_AttributeValue.html).
EVERY_TYPE: dict[str, Any] = {
    "s": {"S": 'h\u00e9llo "quoted" \u2713 \n'},
    "empty": {"S": ""},
    "n": {"N": "-12.50"},
    "big": {"N": "123456789012345678901234567890"},
    "b": {"B": b"\x00\xffbin"},
    "ss": {"SS": ["a", "b"]},
    "ns": {"NS": ["1", "2.5"]},
    "bs": {"BS": [b"x", b"\x01"]},
    "m": {
        "M": {
            "inner": {"S": "x"},
            "bin": {"B": b"\x02"},
            "deep": {"M": {"l": {"L": [{"N": "1"}, {"NULL": True}]}}},
        }
    },
    "l": {"L": [{"S": "a"}, {"BOOL": False}, {"M": {}}, {"L": []}, {"BS": [b"\x03"]}]},
    "null": {"NULL": True},
    "yes": {"BOOL": True},
}


def _item_reads(ddb: Any) -> list[tuple[str, dict[str, Any]]]:
    """Every kind of item read the fast path writes, in the forms Switchboard uses:
    (operation, the answer's JSON as it came over the wire, before botocore parsed it)."""
    bodies: list[tuple[str, dict[str, Any]]] = []

    def keep(response_dict: dict[str, Any], event_name: str, **_: Any) -> None:
        bodies.append((event_name.rsplit(".", 1)[-1], json.loads(response_dict["body"])))

    ddb.meta.events.register("before-parse.dynamodb", keep)
    try:
        key = {"pk": {"S": "p"}, "sk": {"N": "1"}}
        ddb.get_item(TableName="reads", Key=key)
        ddb.get_item(TableName="reads", Key={"pk": {"S": "p"}, "sk": {"N": "404"}})
        ddb.get_item(TableName="reads", Key=key, ProjectionExpression="m.deep, ss")
        by_key = {
            "KeyConditionExpression": "pk = :p",
            "ExpressionAttributeValues": {":p": {"S": "p"}},
        }
        ddb.query(TableName="reads", **by_key)
        ddb.query(
            TableName="reads",
            Limit=2,
            ScanIndexForward=False,
            ConsistentRead=True,
            ReturnConsumedCapacity="INDEXES",
            **by_key,
        )
        ddb.query(TableName="reads", Select="COUNT", **by_key)
        ddb.scan(TableName="reads", ReturnConsumedCapacity="TOTAL")
        ddb.batch_get_item(
            RequestItems={"reads": {"Keys": [key, {"pk": {"S": "p"}, "sk": {"N": "3"}}]}},
            ReturnConsumedCapacity="TOTAL",
        )
    finally:
        ddb.meta.events.unregister("before-parse.dynamodb", keep)
    return bodies


def test_item_reads_answer_exactly_what_motos_serialiser_writes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from moto.dynamodb.responses import DynamoResult

    make_dynamodb_writes_atomic()
    written = moto_fidelity._plain_answer
    fast: list[dict[str, Any]] = []

    def counting(result: dict[str, Any]) -> dict[str, Any]:
        fast.append(result)
        return written(result)

    monkeypatch.setattr(moto_fidelity, "_plain_answer", counting)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(
            TableName="reads",
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "N"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        for sk in (1, 2, 3):
            ddb.put_item(
                TableName="reads", Item={"pk": {"S": "p"}, "sk": {"N": str(sk)}, **EVERY_TYPE}
            )
        answered_fast = _item_reads(ddb)
        assert len(fast) == 8  # each read was written by the fast path
        monkeypatch.setattr(DynamoResult, "execute_result", stock_item_reads())
        answered_by_moto = _item_reads(ddb)
        assert len(fast) == 8  # and these by moto's serialiser alone
    assert answered_fast == answered_by_moto
    assert [operation for operation, _ in answered_fast] == (
        ["GetItem"] * 3 + ["Query"] * 3 + ["Scan", "BatchGetItem"]
    )
    # What they read: every value as stored, binaries as base64, the page's last key.
    item = answered_fast[0][1]["Item"]
    assert item["b"] == {"B": "AP9iaW4="}
    assert item["m"]["M"]["deep"] == {"M": {"l": {"L": [{"N": "1"}, {"NULL": True}]}}}
    assert answered_fast[4][1]["LastEvaluatedKey"] == {"pk": {"S": "p"}, "sk": {"N": "2"}}
    assert answered_fast[5][1] == {"Count": 3, "ScannedCount": 3}


def test_an_update_expression_is_parsed_once_and_each_request_gets_its_own_values(
    local_stack_ddb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parse cache: one parse per expression text however many UpdateItems and
    transaction Updates use it, each applied with its own values (the tree is shared,
    never modified), and a bad expression is refused every time (errors are not cached)."""
    from moto.dynamodb.parsing.expressions import ExpressionTokenizer

    parsed: list[str] = []
    tokenize = ExpressionTokenizer.make_list
    monkeypatch.setattr(
        ExpressionTokenizer,
        "make_list",
        lambda text: parsed.append(text) or tokenize(text),  # type: ignore[func-returns-value]
    )
    expression = "SET n = n + :step, tag = :tag"  # a text no other test uses
    for pk, step in (("a", "2"), ("b", "5"), ("a", "3")):
        local_stack_ddb.update_item(
            TableName=TABLE,
            Key={"pk": {"S": pk}},
            UpdateExpression=expression,
            ExpressionAttributeValues={":step": {"N": step}, ":tag": {"S": f"{pk}{step}"}},
        )
    local_stack_ddb.transact_write_items(
        TransactItems=[
            {
                "Update": {
                    "TableName": TABLE,
                    "Key": {"pk": {"S": "c"}},
                    "UpdateExpression": expression,
                    "ExpressionAttributeValues": {":step": {"N": "10"}, ":tag": {"S": "c10"}},
                }
            }
        ]
    )
    assert parsed.count(expression) == 1
    now = items(local_stack_ddb)
    assert {pk: (i["n"]["N"], i["tag"]["S"]) for pk, i in now.items()} == {
        "a": ("6", "a3"),
        "b": ("6", "b5"),
        "c": ("11", "c10"),
    }
    for _ in range(2):
        error = cancelled(
            lambda: local_stack_ddb.update_item(
                TableName=TABLE,
                Key={"pk": {"S": "a"}},
                UpdateExpression="SET n = = :step",
                ExpressionAttributeValues={":step": {"N": "1"}},
            )
        )
        assert error.response["Error"]["Code"] == "ValidationException"
