"""Queue processing time and failure rate in /api/analytics/queues: a real consumer
(NotificationFunction, in-process) handles a batch with one poison record; the EMF line
its batch processor prints goes through the devserver's EMF extraction into moto's
CloudWatch (as CloudWatch Logs does on AWS); the API reports exactly that batch."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from devserver.emf import EmfSink
from tests.integration.conftest import FakeContext, Stack
from tests.integration.test_analytics import admin_token, call
from tests.integration.test_notifications import job, sqs_event


def test_a_consumers_batch_is_reported_with_its_failures_and_timings(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Metrics on, as the template's environment has them (the stack turns them off)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    for name in ("POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_SERVICE_NAME"):
        monkeypatch.setenv(name, stack.env("NotificationFunction")[name])
    consumer = stack.handler("NotificationFunction")
    api = stack.handler("AnalyticsApiFunction")
    queue = stack.table("NotificationQueue")  # the local physical name
    # Given a batch of three good jobs and one that cannot be parsed
    event = sqs_event(*(job(f"u-{uuid.uuid4().hex[:6]}", "dm_q", seq) for seq in (1, 2, 3)))
    poison: dict[str, Any] = json.loads(json.dumps(event["Records"][0]))
    poison["messageId"], poison["body"] = "poison", "not a job"
    event["Records"].append(poison)
    for record in event["Records"]:
        record["eventSourceARN"] = f"arn:aws:sqs:us-east-1:123456789012:{queue}"
    capsys.readouterr()
    # When the consumer handles it
    result = consumer.lambda_handler(event, FakeContext())
    assert result == {"batchItemFailures": [{"itemIdentifier": "poison"}]}
    # And its output reaches CloudWatch as function logs do
    sink = EmfSink(stack.moto_url)
    for line in capsys.readouterr().out.splitlines():
        sink.offer(line)
    sink.flush()
    # Then /queues reports that batch: 3 processed, 1 failed, 4 timings
    status, queues = call(api, "/api/analytics/queues", admin_token())
    assert status == 200
    processing = queues["notification"]["processing"]
    assert processing["available"] is True
    assert (processing["processed"], processing["failed"]) == (3, 1)
    assert processing["failureRate"] == 0.25
    timing = processing["processingTimeMs"]
    assert timing["count"] == 4 and 0 <= timing["average"] <= timing["max"]
    # And a queue nothing was processed on reports zeros, not an error
    idle = queues["ringTimeout"]["processing"]
    assert (idle["processed"], idle["failed"], idle["failureRate"]) == (0, 0, None)
