"""The router's one "handled" log line per WebSocket event: what the Logs Insights query
definitions in template.yaml read (action, ok, code, durationMs; userId and connectionId
on every line of the event, and on no later event's lines)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import Field
from switchboard.errors import Forbidden
from switchboard.observability import logger
from switchboard.protocol import WireData, WireModel
from switchboard.router import Request, WebSocketRouter

from tests.support.events import frame, ws_event


class Echo(WireModel):
    text: str = Field(max_length=10)


class Echoed(WireData):
    text: str


REPLIES: dict[str, type[WireData]] = {"echo": Echoed, "forbidden": Echoed, "boom": Echoed}


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The JSON lines the Powertools logger writes (its handler's stream, as on Lambda)."""
    handler = logger.registered_handler
    stream = io.StringIO()
    previous = handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line]
    finally:
        handler.setStream(previous)  # type: ignore[attr-defined]


def test_every_event_logs_one_handled_line_with_its_outcome(
    log_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    router = WebSocketRouter(REPLIES)

    @router.action("echo", Echo)
    def echo(request: Request[Echo]) -> Echoed:
        return Echoed(text=request.data.text)

    @router.action("forbidden", Echo)
    def refuse(request: Request[Echo]) -> None:
        raise Forbidden("not yours")

    @router.action("boom", Echo)
    def boom(request: Request[Echo]) -> None:
        raise RuntimeError("bug")

    # Given three requests of two users and a connect without a lifecycle handler
    router.resolve(ws_event("echo", body=frame("echo", {"text": "hi"}), user_id="alice"))
    router.resolve(ws_event("forbidden", body=frame("forbidden", {"text": "x"}), user_id="bob"))
    router.resolve(ws_event("boom", body=frame("boom", {"text": "x"}), connection_id="c-9"))
    router.resolve(ws_event("$connect", user_id="carol", connection_id="c-10"))
    router.resolve(ws_event("$default", body="not json", authorizer=False))
    logged = log_lines()
    handled = [line for line in logged if line["message"] == "handled"]
    # Then each event logged exactly one "handled" line with its action and outcome
    assert [(h["action"], h.get("ok"), h.get("code")) for h in handled] == [
        ("echo", True, None),
        ("forbidden", False, "forbidden"),
        ("boom", False, "internal"),
        ("$connect", None, None),
        ("$default", False, "bad_request"),
    ]
    assert all(isinstance(h["durationMs"], float) and h["durationMs"] >= 0 for h in handled)
    # And every line of an event names its user and connection, and only that event's
    assert [h.get("userId") for h in handled] == ["alice", "bob", "alice", "carol", None]
    assert handled[2]["connectionId"] == "c-9" and handled[3]["connectionId"] == "c-10"
    refused = next(line for line in logged if line["message"] == "request refused")
    assert refused["userId"] == "bob" and refused["route"] == "forbidden"
    failed = next(line for line in logged if line["message"] == "unhandled error")
    assert failed["connectionId"] == "c-9" and failed["level"] == "ERROR"


def test_a_failed_queue_or_stream_record_is_logged_with_its_source_and_attempt(
    log_lines: Callable[[], list[dict[str, Any]]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Switchboard")
    # (other tests on this worker may have left metrics disabled in the environment)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    from aws_lambda_powertools.utilities.batch import EventType, process_partial_response
    from switchboard.batch import LoggedBatchProcessor

    class Context:
        function_name = "f"
        memory_limit_in_mb = 128
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:f"
        aws_request_id = "r"

    def fail_on_bad(record: Any) -> None:
        if "bad" in json.dumps(record.raw_event):
            raise ValueError("cannot handle it")

    queue = "arn:aws:sqs:us-east-1:123456789012:stack-DeliveryQueue-AB12"
    sqs_event = {
        "Records": [
            {
                "messageId": f"m-{body}",
                "receiptHandle": "h",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "3"},
                "eventSource": "aws:sqs",
                "eventSourceARN": queue,
            }
            for body in ("good", "bad")
        ]
    }
    # When one record of a queue batch and one of a stream batch fail
    sqs = process_partial_response(
        sqs_event, fail_on_bad, LoggedBatchProcessor(event_type=EventType.SQS), Context()
    )
    stream_event = {
        "Records": [
            {
                "eventID": f"e{i}",
                "eventName": "INSERT",
                "eventSource": "aws:dynamodb",
                "eventSourceARN": "arn:aws:dynamodb:us-east-1:1:table/Metrics-X/stream/2026",
                "dynamodb": {"SequenceNumber": f"4{i}", "NewImage": {"k": {"S": value}}},
            }
            for i, value in enumerate(("good", "bad"))
        ]
    }
    stream = process_partial_response(
        stream_event,
        fail_on_bad,
        LoggedBatchProcessor(event_type=EventType.DynamoDBStreams),
        Context(),
    )
    # Then only the failed ones are reported, and each is logged with where it came from
    assert sqs == {"batchItemFailures": [{"itemIdentifier": "m-bad"}]}
    assert stream == {"batchItemFailures": [{"itemIdentifier": "41"}]}
    failed = [line for line in log_lines() if line["message"] == "record failed"]
    assert [(f["source"], f.get("receiveCount"), f.get("sequenceNumber")) for f in failed] == [
        ("stack-DeliveryQueue-AB12", 3, None),
        ("Metrics-X", None, "41"),
    ]
    assert failed[0]["messageId"] == "m-bad" and failed[0]["errorType"] == "ValueError"
    assert all(f["level"] == "WARNING" for f in failed)
    # And the queue batch (only it: streams are not queues) published its EMF metrics
    emf = [
        json.loads(line)
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("{") and '"_aws"' in line
    ]
    assert len(emf) == 1
    directive = emf[0]["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "Switchboard"
    assert any("QueueName" in dimensions for dimensions in directive["Dimensions"])
    assert emf[0]["QueueName"] == "stack-DeliveryQueue-AB12"
    assert emf[0]["QueueRecordsProcessed"] == [1.0] and emf[0]["QueueRecordsFailed"] == [1.0]
    timings = emf[0]["QueueRecordProcessingTime"]
    assert len(timings) == 2 and all(t >= 0 for t in timings)
