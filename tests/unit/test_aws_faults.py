"""The devserver's AWS fault injection (devserver/aws_faults.py) in front of a WSGI app."""

from __future__ import annotations

from typing import Any

import pytest

from devserver.aws_faults import AwsFaults, FaultyApp, StreamFaults, app_id


class CountingApp:
    """A WSGI app that records the requests it really served."""

    def __init__(self) -> None:
        self.served: list[str] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.served.append(environ.get("HTTP_X_AMZ_TARGET", ""))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]


def call(app: FaultyApp, target: str, user_agent: str) -> str:
    statuses: list[str] = []
    environ = {"HTTP_X_AMZ_TARGET": target, "HTTP_USER_AGENT": user_agent}
    b"".join(app(environ, lambda status, headers: statuses.append(status)))
    return statuses[-1]


FUNCTION_UA = f"Boto3/1.44 md/x app/{app_id('MessageFunction')}"


@pytest.mark.parametrize(("mode", "served"), [("before", 0), ("after", 1)])
def test_failed_requests_happen_or_not_as_the_mode_says(mode: str, served: int) -> None:
    faults, backend = AwsFaults(), CountingApp()
    faults.configure({"failRate": 1.0, "services": ["dynamodb"], "mode": mode, "seed": 1})
    app = FaultyApp(backend, faults)
    assert call(app, "DynamoDB_20120810.TransactWriteItems", FUNCTION_UA).startswith("500")
    assert len(backend.served) == served
    assert faults.snapshot()["injected"] == {f"dynamodb.TransactWriteItems.{mode}": 1}


def test_only_the_functions_requests_to_listed_services_fail() -> None:
    faults, backend = AwsFaults(), CountingApp()
    faults.configure({"failRate": 1.0, "services": ["dynamodb"]})
    app = FaultyApp(backend, faults)
    # the devserver's own pollers (no app id) and unlisted services pass
    assert call(app, "DynamoDB_20120810.GetItem", "Boto3/1.44").startswith("200")
    assert call(app, "AmazonSQS.SendMessage", FUNCTION_UA).startswith("200")
    assert call(app, "DynamoDB_20120810.GetItem", FUNCTION_UA).startswith("500")
    assert faults.snapshot()["checked"] == 1


def test_a_functions_list_fails_only_the_requests_of_those_functions() -> None:
    faults, backend = AwsFaults(), CountingApp()
    faults.configure({"failRate": 1.0, "services": ["dynamodb"], "functions": ["Aggregator"]})
    app = FaultyApp(backend, faults)
    aggregator = f"Boto3/1.44 md/x app/{app_id('Aggregator')} cfg/retry-mode#standard"
    assert call(app, "DynamoDB_20120810.UpdateItem", aggregator).startswith("500")
    assert call(app, "DynamoDB_20120810.UpdateItem", FUNCTION_UA).startswith("200")
    assert backend.served == ["DynamoDB_20120810.UpdateItem"]  # the MessageFunction's
    assert faults.snapshot()["functions"] == ["Aggregator"]


def test_a_seed_gives_the_same_decisions() -> None:
    def decisions() -> list[str | None]:
        faults = AwsFaults()
        faults.configure({"failRate": 0.3, "mode": "both", "seed": 7})
        return [faults.decide("sqs", "SendMessage") for _ in range(200)]

    first = decisions()
    assert first == decisions()
    assert 20 < sum(d is not None for d in first) < 100
    assert {"before", "after"} <= set(first)


@pytest.mark.parametrize(
    "config",
    [
        {"failRate": 2},
        {"failRate": True},
        {"services": ["s3"]},
        {"mode": "sometimes"},
        {"seed": "x"},
        {"functions": "AggregatorFunction"},
        {"other": 1},
        [],
    ],
)
def test_bad_configuration_is_refused(config: Any) -> None:
    with pytest.raises(ValueError, match=r"."):
        AwsFaults().configure(config)


def test_stream_replays_follow_the_rate() -> None:
    streams = StreamFaults()
    assert not any(streams.replay() for _ in range(50))
    streams.configure({"replayRate": 1.0})
    assert all(streams.replay() for _ in range(5))
    assert streams.snapshot()["replayed"] == 5


def test_moto_dispatch_lists_moto_modules_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """After list_moto_modules_once, finding a request's service lists no folder (it did
    on every request) and still finds the right one."""
    import os

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    from devserver.aws_faults import list_moto_modules_once

    list_moto_modules_once()
    dispatcher = DomainDispatcherApplication(create_backend_app)
    authorization = "AWS4-HMAC-SHA256 Credential=t/20261202/us-east-1/{}/aws4_request"
    requests = {
        "dynamodb": "DynamoDB_20120810.GetItem",
        "sqs": "AmazonSQS.ReceiveMessage",
    }

    def service(name: str) -> str:
        app = dispatcher.get_application(
            {
                "REQUEST_METHOD": "POST",
                "PATH_INFO": "/",
                "SERVER_NAME": "127.0.0.1",
                "HTTP_X_AMZ_TARGET": requests[name],
                "HTTP_AUTHORIZATION": authorization.format(name),
            }
        )
        return next(key for key, one in dispatcher.app_instances.items() if one is app)

    for name in requests:  # each service's app is built once (botocore loads its model)
        assert service(name) == name
    listed: list[str] = []
    listdir = os.listdir
    monkeypatch.setattr(os, "listdir", lambda path=".": listed.append(str(path)) or listdir(path))
    for _ in range(3):
        for name in requests:
            assert service(name) == name
    assert listed == []


def test_moto_names_a_handler_classs_methods_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """After name_handler_methods_once, a response class's methods are listed once, not
    per request, and the answer is the same."""
    import inspect

    from moto.core import responses
    from moto.dynamodb.responses import DynamoHandler
    from moto.sqs.responses import SQSResponse

    from devserver.aws_faults import name_handler_methods_once

    expected = {c: set(responses.method_names_from_class(c)) for c in (DynamoHandler, SQSResponse)}
    name_handler_methods_once()
    for clazz, names in expected.items():
        assert set(responses.method_names_from_class(clazz)) == names
    listed: list[object] = []
    getmembers = inspect.getmembers
    monkeypatch.setattr(
        inspect, "getmembers", lambda o, *a, **k: listed.append(o) or getmembers(o, *a, **k)
    )
    for _ in range(3):
        assert "transact_write_items" in responses.method_names_from_class(DynamoHandler)
        assert "receive_message" in responses.method_names_from_class(SQSResponse)
    assert listed == []
