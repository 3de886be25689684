"""A stream consumer's dead-letter queue replayed in one command (scripts/replay.py,
`make replay`), the whole loop on the devserver: the aggregator's DynamoDB calls fail (AWS
fault injection, that function only), its batches exhaust MaximumRetryAttempts and the
devserver's stream mapping sends Lambda's on-failure invocation records to AnalyticsDLQ;
the figures miss those changes; after the cause is gone one command reads each record's
range from the stream and invokes the aggregator with it (through the devserver's Lambda
Invoke API), and the figures are exact, the DLQ empty.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import (
    DynamoDBStreamLambdaOnFailureDestinationModel,
)

from .clients import Session, admin, clear_faults, eventually, peek_queue
from .conftest import RunningDevserver, StartDevserver
from .test_analytics import SETTLE_TIMEOUT, api_get, stream_records
from .test_redrive import depth, operator_command

pytestmark = pytest.mark.e2e

# 10 retries (the template's MaximumRetryAttempts) with the devserver's backoff, bisected
# halves each retried again, on every source stream at once, on a loaded machine.
FAILURE_TIMEOUT = 180.0
AGGREGATOR = "AggregatorFunction"


def replay(ds: RunningDevserver, dlq: str) -> subprocess.CompletedProcess[str]:
    # The Lambda Invoke API is the devserver's own (its HTTP port), the rest moto's.
    return operator_command(ds, "-m", "scripts.replay", dlq, "--lambda-endpoint-url", ds.http)


def stream_positions(ds: RunningDevserver) -> set[tuple[str, int]]:
    """(stream ARN, sequence number) of every record the Messages table's stream holds:
    each send writes one, and the aggregator needs DynamoDB to count it (other tables'
    records of a send may need no call, and are then counted despite the fault)."""
    table = ds.aws("dynamodb").describe_table(TableName=ds.resources["MessagesTable"])
    arn = table["Table"]["LatestStreamArn"]
    return {
        (arn, int(r["dynamodb"]["SequenceNumber"]))
        for r in stream_records(ds)
        if r["eventSourceARN"] == arn
    }


def dead_letters(ds: RunningDevserver) -> list[DynamoDBStreamLambdaOnFailureDestinationModel]:
    return [
        DynamoDBStreamLambdaOnFailureDestinationModel.model_validate_json(body)
        for body in peek_queue(ds, "AnalyticsDLQ")
    ]


def covered(records: list[DynamoDBStreamLambdaOnFailureDestinationModel]) -> set[tuple[str, int]]:
    return {
        (r.ddb_stream_batch_info.stream_arn, seq)
        for r in records
        for seq in range(
            int(r.ddb_stream_batch_info.start_sequence_number),
            int(r.ddb_stream_batch_info.end_sequence_number) + 1,
        )
    }


def figures(ds: RunningDevserver) -> tuple[int, int, int]:
    token = ds.token("ops", admin=True)
    status, messages = api_get(ds, "/api/analytics/messages", token)
    assert status == 200, messages
    status, alice = api_get(ds, "/api/analytics/sessions/rp-alice", token)
    assert status == 200, alice
    return messages["sent"], messages["recipients"], alice["messages"]


async def test_a_failed_stream_batch_lands_in_its_dlq_and_one_command_replays_it(
    start_devserver: StartDevserver,
) -> None:
    ds = await asyncio.to_thread(start_devserver)  # its own: its faults fail a consumer
    async with Session(ds) as s:
        alice = await s.connect("rp-alice")
        await s.connect("rp-bob")
        conversation = await alice.create_conversation(["rp-bob"])
        await alice.send(conversation, "counted at once")
        await eventually(lambda: figures(ds) == (1, 1, 1), timeout=SETTLE_TIMEOUT, interval=1)
        before = stream_positions(ds)
        # Given the aggregator's every DynamoDB call fails (the other functions' do not)
        admin(
            ds,
            "POST",
            "/__devserver/faults",
            {
                "aws": {
                    "failRate": 1.0,
                    "services": ["dynamodb"],
                    "functions": ["AggregatorFunction"],
                }
            },
        )
        try:
            for i in range(2):
                await alice.send(conversation, f"counted after the replay {i}")
            written = stream_positions(ds) - before
            assert len(written) == 2
            # When every batch holding those records has exhausted its retries, each is
            # located by an invocation record in AnalyticsDLQ (Lambda's documented shape)
            await eventually(
                lambda: written <= covered(dead_letters(ds)),
                timeout=FAILURE_TIMEOUT,
                interval=2.0,
            )
        finally:
            clear_faults(ds)  # the cause is fixed
        letters = dead_letters(ds)
        assert all(r.request_context.condition == "RetryAttemptsExhausted" for r in letters)
        functions = {r.request_context.function_arn for r in letters}
        assert len(functions) == 1 and AGGREGATOR in functions.pop()
        # 1 + MaximumRetryAttempts (10) invocations of each skipped batch
        assert {r.request_context.approximate_invoke_count for r in letters} == {11}
        assert figures(ds) == (1, 1, 1)  # the two sends are missing from the figures
        assert depth(ds, "AnalyticsDLQ") == len(letters) >= 1

        # When the operator replays the DLQ in one command
        done = await asyncio.to_thread(replay, ds, "AnalyticsDLQ")
        assert done.returncode == 0, done.stdout + done.stderr
        sys.stdout.write(done.stdout)
        total = int(done.stdout.split(": ", 1)[1].split(" invocation records", 1)[0])
        assert total >= len(letters)  # and any that failed while the fault was cleared
        assert f"replayed {total} invocation records" in done.stdout, done.stdout
        assert done.stdout.count("records replayed, deleted") == total

        # Then the figures are exact (each change counted once) and the DLQ is empty
        assert figures(ds) == (3, 3, 3)
        assert depth(ds, "AnalyticsDLQ") == 0
        # And a second run finds nothing to do and changes nothing
        again = await asyncio.to_thread(replay, ds, "AnalyticsDLQ")
        assert again.returncode == 0 and "replayed 0 invocation records" in again.stdout
        assert figures(ds) == (3, 3, 3)
        # And a queue DLQ is refused (that is `make redrive`'s), its content untouched
        sqs_dlq = ds.aws("sqs").get_queue_url(QueueName="switchboard-local-DeliveryDLQ")
        ds.aws("sqs").send_message(QueueUrl=sqs_dlq["QueueUrl"], MessageBody=json.dumps({}))
        refused = await asyncio.to_thread(replay, ds, "DeliveryDLQ")
        assert refused.returncode == 2 and "make redrive" in refused.stderr
        assert depth(ds, "DeliveryDLQ") == 1


def test_the_lambda_invoke_api_answers_as_lambda_does(
    devserver: RunningDevserver,
) -> None:
    import boto3
    from botocore.exceptions import ClientError

    lam = boto3.client(
        "lambda",
        endpoint_url=devserver.http,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with pytest.raises(ClientError) as raised:
        lam.invoke(FunctionName="NoSuchFunction", Payload=b"{}")
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"
    # A function that raises: Lambda's 200 with the error payload and X-Amz-Function-Error
    # (the replay's success path is the test above).
    answer: Any = lam.invoke(FunctionName=AGGREGATOR, Payload=b'{"Records": []}')
    assert answer["StatusCode"] == 200 and answer["FunctionError"] == "Unhandled"
    assert json.loads(answer["Payload"].read())["errorType"]
