"""The devserver's on-failure invocation record has the shape Lambda documents: parsed by
Powertools' model of it (a third party's reading of the AWS documentation)."""

from __future__ import annotations

from pathlib import Path

from aws_lambda_powertools.utilities.parser.models import (
    DynamoDBStreamLambdaOnFailureDestinationModel,
)

from devserver.stream_failures import invocation_record
from devserver.template import FunctionSpec
from devserver.workers import InvocationResult

STREAM = "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026-12-01T00:00:00.000"
SPEC = FunctionSpec(
    logical_id="AggregatorFunction",
    name="switchboard-local-AggregatorFunction",
    arn="arn:aws:lambda:us-east-1:123456789012:function:switchboard-local-AggregatorFunction",
    code_uri=Path("functions/analytics"),
    handler="aggregator.lambda_handler",
    timeout=60.0,
    memory_size=512,
    environment={},
    layer_paths=[],
)


def record(seq: int, created: int) -> dict[str, object]:
    return {"dynamodb": {"SequenceNumber": str(seq), "ApproximateCreationDateTime": created}}


def test_the_record_locates_the_skipped_range_in_lambdas_documented_shape() -> None:
    failed = InvocationResult(False, error={"errorType": "X"}, request_id="req-1")
    body = invocation_record(
        SPEC,
        STREAM,
        "shardId-1",
        [record(11, 1_796_083_200), record(13, 1_796_083_201)],
        11,
        failed,
        1_796_083_230.25,
    )
    parsed = DynamoDBStreamLambdaOnFailureDestinationModel.model_validate(body)
    batch = parsed.ddb_stream_batch_info
    assert (batch.start_sequence_number, batch.end_sequence_number) == ("11", "13")
    assert (batch.shard_id, batch.stream_arn, batch.batch_size) == ("shardId-1", STREAM, 2)
    assert batch.approximate_arrival_of_last_record.timestamp() == 1_796_083_201
    context = parsed.request_context
    assert context.function_arn == SPEC.arn
    assert context.condition == "RetryAttemptsExhausted"
    assert context.approximate_invoke_count == 11
    assert context.request_id == "req-1"
    assert parsed.response_context.function_error == "Unhandled"
    assert body["timestamp"] == "2026-12-01T00:00:30.250Z"


def test_a_batch_that_reported_item_failures_has_no_function_error() -> None:
    answered = InvocationResult(True, payload={"batchItemFailures": [{"itemIdentifier": "7"}]})
    body = invocation_record(SPEC, STREAM, "s", [record(7, 1)], 3, answered, 2.0)
    parsed = DynamoDBStreamLambdaOnFailureDestinationModel.model_validate(body)
    assert parsed.response_context.function_error is None
    assert parsed.response_context.status_code == 200
