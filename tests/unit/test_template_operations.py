"""template.yaml's operations resources stay consistent with what they watch: an age alarm
on every main queue, Logs Insights queries over the functions that write the lines they
read, and the DLQ-arrivals query's thresholds equal to each queue's maxReceiveCount."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from devserver.template import load_yaml

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    doc: dict[str, Any] = load_yaml(TEMPLATE)
    return dict(doc["Resources"])


def _of_type(resources: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v.get("Properties") or {} for k, v in resources.items() if v["Type"] == kind}


def _queue_of(dimension_value: Any) -> str:
    # !GetAtt Queue.QueueName -> {"Fn::GetAtt": ["Queue", "QueueName"]} (or "Queue.QueueName")
    target = dimension_value["Fn::GetAtt"]
    return str(target[0] if isinstance(target, list) else target.split(".")[0])


def test_every_main_queue_has_an_age_of_oldest_message_alarm(resources: dict[str, Any]) -> None:
    queues = _of_type(resources, "AWS::SQS::Queue")
    main = {name for name, props in queues.items() if "RedrivePolicy" in props}
    assert main == {"DeliveryQueue", "NotificationQueue", "RingTimeoutQueue", "UploadEventsQueue"}
    alarmed = {
        _queue_of(props["Dimensions"][0]["Value"])
        for props in _of_type(resources, "AWS::CloudWatch::Alarm").values()
        if props.get("MetricName") == "ApproximateAgeOfOldestMessage"
    }
    assert alarmed == main


def test_query_definitions_exist_for_what_operators_ask(resources: dict[str, Any]) -> None:
    queries = _of_type(resources, "AWS::Logs::QueryDefinition")
    assert set(queries) == {
        "ErrorsByActionQuery",
        "SlowestActionsQuery",
        "UserSessionTrailQuery",
        "DlqArrivalsQuery",
    }
    functions = set(_of_type(resources, "AWS::Serverless::Function"))
    for name, props in queries.items():
        for group in props["LogGroupNames"]:
            match = re.fullmatch(r"/aws/lambda/\$\{(\w+)\}", group["Fn::Sub"])
            assert match and match.group(1) in functions, (name, group)


def test_dlq_arrivals_thresholds_are_the_queues_max_receive_counts(
    resources: dict[str, Any],
) -> None:
    query = resources["DlqArrivalsQuery"]["Properties"]["QueryString"]["Fn::Sub"]
    queues = _of_type(resources, "AWS::SQS::Queue")
    for name, props in queues.items():
        if "RedrivePolicy" not in props:
            continue
        count = int(props["RedrivePolicy"]["maxReceiveCount"])
        # The queue is named in a clause whose threshold is its maxReceiveCount
        clause = next(c for c in query.split(" or ") if f"${{{name}.QueueName}}" in c)
        assert f"receiveCount >= {count}" in clause, (name, clause)
