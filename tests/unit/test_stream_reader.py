"""The devserver's DynamoDB stream mappings read moto's stream in-process
(devserver/streams.py) and wake on appends instead of polling GetRecords over HTTP: every
record, once, in stream order, Lambda-shaped; LATEST starts after what is already there;
a batching window does not hold back a full batch; a write wakes a waiting reader (no
timer involved); and the mapping makes no DynamoDB Streams API call at all.

In-process moto (``mock_aws``): no server, no network.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from devserver.event_sources import EventSources
from devserver.moto_fidelity import make_dynamodb_writes_atomic
from devserver.streams import StreamReader, watch_stream_appends
from devserver.workers import InvocationResult
from tests.unit.test_stream_failures import SPEC

TABLE = "streamed"


@pytest.fixture
def ddb() -> Iterator[tuple[Any, str]]:
    make_dynamodb_writes_atomic()
    watch_stream_appends()
    with mock_aws():
        client = boto3.client(
            "dynamodb",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(account_id_endpoint_mode="disabled"),
        )
        table = client.create_table(
            TableName=TABLE,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        yield client, table["TableDescription"]["LatestStreamArn"]


def put(client: Any, *keys: str) -> None:
    for key in keys:
        client.put_item(
            TableName=TABLE, Item={"pk": {"S": key}, "blob": {"B": key.encode() + b"\x00\xff"}}
        )


class Pools:
    """Records the batches the mapping invokes the function with."""

    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.arrived = asyncio.Event()

    async def invoke(self, _logical_id: str, event: dict[str, Any]) -> InvocationResult:
        self.batches.append(event["Records"])
        self.arrived.set()
        return InvocationResult(True, payload={"batchItemFailures": []})

    def keys(self) -> list[str]:
        return [r["dynamodb"]["Keys"]["pk"]["S"] for b in self.batches for r in b]


async def mapped(
    client: Any, stream_arn: str, props: dict[str, Any], before: list[str], after: list[str]
) -> Pools:
    """Runs one stream mapping: ``before`` written before it starts, ``after`` once it
    runs; returns when every record it should deliver has been delivered."""
    put(client, *before)
    pools = Pools()
    sources = EventSources([], pools, "")  # type: ignore[arg-type]
    task = asyncio.create_task(sources._dynamodb(SPEC, {"Stream": stream_arn, **props}, "t"))
    await asyncio.sleep(0)  # the mapping takes its starting position
    await asyncio.sleep(0)
    expected = (before if props.get("StartingPosition") == "TRIM_HORIZON" else []) + after
    put(client, *after)
    async with asyncio.timeout(30):
        while len(pools.keys()) < len(expected):
            pools.arrived.clear()
            await pools.arrived.wait()
    await sources.stop()
    await asyncio.gather(task, return_exceptions=True)
    assert pools.keys() == expected
    return pools


def test_every_record_once_in_order_and_lambda_shaped(ddb: tuple[Any, str]) -> None:
    client, arn = ddb
    props = {"StartingPosition": "TRIM_HORIZON", "BatchSize": 100}
    pools = asyncio.run(mapped(client, arn, props, ["a", "b"], ["c", "d", "e"]))
    record = pools.batches[0][0]
    assert record["eventName"] == "INSERT"
    assert record["eventSource"] == "aws:dynamodb"
    assert record["eventSourceARN"] == arn
    image = record["dynamodb"]["NewImage"]
    # Binary attributes arrive base64-encoded, as in a Lambda event.
    assert base64.b64decode(image["blob"]["B"]) == b"a\x00\xff"
    assert isinstance(record["dynamodb"]["ApproximateCreationDateTime"], int)
    seqs = [int(r["dynamodb"]["SequenceNumber"]) for b in pools.batches for r in b]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)


def test_latest_starts_after_what_is_already_there(ddb: tuple[Any, str]) -> None:
    client, arn = ddb
    props = {"StartingPosition": "LATEST", "BatchSize": 100}
    asyncio.run(mapped(client, arn, props, ["old1", "old2"], ["new1", "new2"]))


def test_a_full_batch_does_not_wait_for_the_batching_window(ddb: tuple[Any, str]) -> None:
    """A 600 s window: the test's 30 s bound would fail if a full batch waited for it."""
    client, arn = ddb
    props = {
        "StartingPosition": "TRIM_HORIZON",
        "BatchSize": 2,
        "MaximumBatchingWindowInSeconds": 600,
    }
    pools = asyncio.run(mapped(client, arn, props, [], ["a", "b", "c", "d"]))
    assert all(len(b) == 2 for b in pools.batches)


def test_a_write_wakes_a_waiting_reader(ddb: tuple[Any, str]) -> None:
    client, arn = ddb

    async def run() -> list[str]:
        reader = StreamReader(arn)
        try:
            cursor = reader.cursor("LATEST")
            assert reader.read(cursor, 10) == []
            assert not reader._wake.is_set()
            await asyncio.to_thread(put, client, "x")
            await asyncio.sleep(0)  # the wake-up is scheduled onto the loop
            assert reader._wake.is_set()
            return [r["dynamodb"]["Keys"]["pk"]["S"] for r in reader.read(cursor, 10)]
        finally:
            reader.close()

    assert asyncio.run(run()) == ["x"]


def test_the_mapping_makes_no_streams_api_call(
    ddb: tuple[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No GetRecords/GetShardIterator/DescribeStream through moto's API: the records come
    from the backend directly."""
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend

    called: list[str] = []
    for name in ("get_records", "get_shard_iterator", "describe_stream"):
        original = getattr(DynamoDBStreamsBackend, name)

        def spy(self: Any, *args: Any, _name: str = name, _f: Any = original, **kw: Any) -> Any:
            called.append(_name)
            return _f(self, *args, **kw)

        monkeypatch.setattr(DynamoDBStreamsBackend, name, spy)
    client, arn = ddb
    asyncio.run(mapped(client, arn, {"StartingPosition": "TRIM_HORIZON"}, ["a"], ["b"]))
    assert called == []
