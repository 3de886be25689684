"""The devserver is template-driven: a throwaway template with queues, a DLQ, a bucket, a
table stream and HTTP routes proves the generic machinery (event-source mappings, HTTP
API v2 events, worker isolation/timeouts/crashes) independently of Switchboard's code."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import RunningDevserver, StartDevserver

pytestmark = pytest.mark.e2e

FIXTURES = Path(__file__).parent / "fixtures" / "functions"
WAIT = 30.0

TEMPLATE = f"""
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Flavor:
    Type: String
    Default: vanilla
Globals:
  Function:
    Runtime: python3.13
    CodeUri: {FIXTURES}
    Timeout: 5
    MemorySize: 256
    Environment:
      Variables:
        RESULTS_TABLE: !Ref ResultsTable
        FLAVOR: !If [IsVanilla, plain, fancy]
        MANAGEMENT_ENDPOINT: !Sub "https://${{WsApi}}.execute-api.${{AWS::Region}}.amazonaws.com/local"
        PUBLIC_WS_URL: !Sub "wss://${{WsApi}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}/local"
Resources:
  ResultsTable:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{{AttributeName: id, AttributeType: S}}]
      KeySchema: [{{AttributeName: id, KeyType: HASH}}]
  SourceTable:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{{AttributeName: pk, AttributeType: S}}]
      KeySchema: [{{AttributeName: pk, KeyType: HASH}}]
      StreamSpecification: {{StreamViewType: NEW_AND_OLD_IMAGES}}
  WorkDLQ:
    Type: AWS::SQS::Queue
  WorkQueue:
    Type: AWS::SQS::Queue
    Properties:
      # Not below the function's Timeout (AWS refuses such a mapping): the first batch
      # waits for a cold start, and must not come back while it is being handled.
      VisibilityTimeout: 5
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt WorkDLQ.Arn
        maxReceiveCount: 2
  StrictQueue:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 1
  UploadQueue:
    Type: AWS::SQS::Queue
  UploadBucket:
    Type: AWS::S3::Bucket
    Properties:
      NotificationConfiguration:
        QueueConfigurations:
          - Event: "s3:ObjectCreated:*"
            Queue: !GetAtt UploadQueue.Arn
  PartialFunction:
    Type: AWS::Serverless::Function
    Properties:
      Handler: handlers.sqs_partial
      Events:
        Work:
          Type: SQS
          Properties:
            Queue: !GetAtt WorkQueue.Arn
            BatchSize: 10
            FunctionResponseTypes: [ReportBatchItemFailures]
  StrictFunction:
    Type: AWS::Serverless::Function
    Properties:
      Handler: handlers.sqs_all_or_nothing
      Events:
        Strict:
          Type: SQS
          Properties:
            Queue: !GetAtt StrictQueue.Arn
            BatchSize: 10
            MaximumBatchingWindowInSeconds: 1
  UploadFunction:
    Type: AWS::Serverless::Function
    Properties:
      Handler: handlers.s3_events
      Events:
        Uploads:
          Type: SQS
          Properties:
            Queue: !GetAtt UploadQueue.Arn
  StreamFunction:
    Type: AWS::Serverless::Function
    Properties:
      Handler: handlers.stream
      Events:
        Changes:
          Type: DynamoDB
          Properties:
            Stream: !GetAtt SourceTable.StreamArn
            StartingPosition: TRIM_HORIZON
            BatchSize: 10
  EchoFunction:
    Type: AWS::Serverless::Function
    Properties:
      Handler: handlers.http_echo
      Events:
        Echo:
          Type: HttpApi
          Properties: {{Path: "/api/echo/{{proxy+}}", Method: ANY}}
  EnvFunction:
    Type: AWS::Serverless::Function
    Properties:
      Handler: handlers.env
      Environment:
        Variables:
          OWN_SETTING: "42"
      Events:
        Env:
          Type: HttpApi
          Properties: {{Path: /api/env, Method: GET}}
  CrashFunction:
    Type: AWS::Serverless::Function
    Properties:
      Handler: handlers.crash
      Events:
        Crash:
          Type: HttpApi
          Properties: {{Path: /api/crash, Method: GET}}
  SlowFunction:
    Type: AWS::Serverless::Function
    Properties:
      Handler: handlers.slow
      Timeout: 1
      Events:
        Slow:
          Type: HttpApi
          Properties: {{Path: /api/slow, Method: GET}}
  WsApi:
    Type: AWS::ApiGatewayV2::Api
    Properties:
      Name: ws
      ProtocolType: WEBSOCKET
      RouteSelectionExpression: "$request.body.action"
  WsAuthorizer:
    Type: AWS::ApiGatewayV2::Authorizer
    Properties:
      ApiId: !Ref WsApi
      Name: auth
      AuthorizerType: REQUEST
      IdentitySource: [route.request.querystring.token]
      AuthorizerUri: !Join ["", ["arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/",
        "functions/", !GetAtt WsAuthFunction.Arn, "/invocations"]]
  WsIntegration:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref WsApi
      IntegrationType: AWS_PROXY
      IntegrationUri: !Sub "arn:${{AWS::Partition}}:apigateway:${{AWS::Region}}:lambda:path/\
        2015-03-31/functions/${{WsFunction.Arn}}/invocations"
  WsConnect:
    Type: AWS::ApiGatewayV2::Route
    Properties:
      ApiId: !Ref WsApi
      RouteKey: $connect
      AuthorizationType: CUSTOM
      AuthorizerId: !Ref WsAuthorizer
      Target: !Sub "integrations/${{WsIntegration}}"
  WsDisconnect:
    Type: AWS::ApiGatewayV2::Route
    Properties:
      ApiId: !Ref WsApi
      RouteKey: $disconnect
      Target: !Sub "integrations/${{WsIntegration}}"
  WsEcho:
    Type: AWS::ApiGatewayV2::Route
    Properties:
      ApiId: !Ref WsApi
      RouteKey: echo
      Target: !Join ["/", [integrations, !Ref WsIntegration]]
  WsEchoResponse:
    Type: AWS::ApiGatewayV2::RouteResponse
    Properties:
      ApiId: !Ref WsApi
      RouteId: !Ref WsEcho
      RouteResponseKey: $default
  WsExplode:
    Type: AWS::ApiGatewayV2::Route
    Properties:
      ApiId: !Ref WsApi
      RouteKey: explode
      Target: !Sub "integrations/${{WsIntegration}}"
  WsSilent:
    Type: AWS::ApiGatewayV2::Route
    Properties:
      ApiId: !Ref WsApi
      RouteKey: silent
      Target: !Sub "integrations/${{WsIntegration}}"
  WsStage:
    Type: AWS::ApiGatewayV2::Stage
    Properties:
      ApiId: !Ref WsApi
      StageName: local
  WsAuthFunction:
    Type: AWS::Serverless::Function
    Properties:
      Handler: handlers.ws_authorizer
  WsFunction:
    Type: AWS::Serverless::Function
    Properties:
      Handler: handlers.ws_app
  OnlyWhenFancy:
    Type: AWS::SQS::Queue
    Condition: IsFancy
Conditions:
  IsVanilla: !Equals [!Ref Flavor, vanilla]
  IsFancy: !Not [!Condition IsVanilla]
"""


@pytest.fixture(scope="module")
def mapped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDevserver]:
    from .conftest import _start

    workdir = tmp_path_factory.mktemp("mapped")
    template = workdir / "template.yaml"
    template.write_text(TEMPLATE)
    server = _start(
        workdir,
        ["--template", str(template), "--workers", "2"],
        env={"SWITCHBOARD_LEAK_MARKER": "must-not-reach-functions"},
    )
    try:
        yield server
    finally:
        server.stop()


def _results(ds: RunningDevserver) -> dict[str, dict[str, Any]]:
    items = ds.aws("dynamodb").scan(TableName=ds.resources["ResultsTable"])["Items"]
    return {i["id"]["S"]: i for i in items}


def _wait(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.2)


def _get(url: str) -> tuple[int, dict[str, str], Any]:
    try:
        with urllib.request.urlopen(url, timeout=15) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read() or b"null")


def test_conditions_skip_resources(mapped: RunningDevserver) -> None:
    assert "OnlyWhenFancy" not in mapped.resources
    assert "WorkQueue" in mapped.resources


def test_sqs_partial_batch_failure_and_dlq_redrive(mapped: RunningDevserver) -> None:
    sqs = mapped.aws("sqs")
    queue = mapped.resources["WorkQueue"]
    for body in ("ok-1", "fail-1", "ok-2"):
        sqs.send_message(QueueUrl=queue, MessageBody=body)
    _wait(lambda: {"done#ok-1", "done#ok-2"} <= set(_results(mapped)))
    # The failed message is retried (receive count 2), then moto moves it to the DLQ.
    _wait(lambda: "attempt#fail-1#2" in _results(mapped))
    dlq = mapped.resources["WorkDLQ"]
    bodies: list[str] = []

    def in_dlq() -> bool:
        got = sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=1).get("Messages", [])
        bodies.extend(m["Body"] for m in got)
        return "fail-1" in bodies

    _wait(in_dlq)
    results = _results(mapped)
    # Successful messages were deleted: delivered exactly once.
    assert not any(k.startswith("attempt#ok-1#2") for k in results)
    record = json.loads(results["done#ok-1"]["record"]["S"])
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"].endswith(":switchboard-local-WorkQueue")
    assert record["awsRegion"] == "us-east-1"
    assert {"messageId", "receiptHandle", "md5OfBody", "messageAttributes"} <= set(record)
    assert "SentTimestamp" in record["attributes"]


def test_sqs_error_without_partial_reporting_keeps_whole_batch(mapped: RunningDevserver) -> None:
    sqs = mapped.aws("sqs")
    queue = mapped.resources["StrictQueue"]
    sqs.send_message_batch(
        QueueUrl=queue,
        Entries=[{"Id": "1", "MessageBody": "good-s"}, {"Id": "2", "MessageBody": "fail-s"}],
    )
    # Both come back after the visibility timeout when they were in the failing batch.
    _wait(lambda: "seen#fail-s#2" in _results(mapped))
    assert "seen#fail-s#1" in _results(mapped)


def test_s3_notification_reaches_function_through_queue(mapped: RunningDevserver) -> None:
    mapped.aws("s3").put_object(
        Bucket=mapped.resources["UploadBucket"], Key="photos/a b.jpg", Body=b"\xff\xd8\xff"
    )
    _wait(lambda: "s3#photos/a b.jpg" in _results(mapped))
    assert "s3-test-event" in _results(mapped)


def test_dynamodb_stream_records_are_lambda_shaped(mapped: RunningDevserver) -> None:
    ddb = mapped.aws("dynamodb")
    table = mapped.resources["SourceTable"]
    ddb.put_item(TableName=table, Item={"pk": {"S": "k1"}, "v": {"N": "1"}})
    ddb.update_item(
        TableName=table,
        Key={"pk": {"S": "k1"}},
        UpdateExpression="SET v = :v",
        ExpressionAttributeValues={":v": {"N": "2"}},
    )
    ddb.delete_item(TableName=table, Key={"pk": {"S": "k1"}})
    _wait(
        lambda: (
            {"stream#k1#INSERT", "stream#k1#MODIFY", "stream#k1#REMOVE"} <= set(_results(mapped))
        )
    )
    modify = json.loads(_results(mapped)["stream#k1#MODIFY"]["record"]["S"])
    assert modify["eventSource"] == "aws:dynamodb"
    assert modify["dynamodb"]["OldImage"]["v"] == {"N": "1"}
    assert modify["dynamodb"]["NewImage"]["v"] == {"N": "2"}
    assert isinstance(modify["dynamodb"]["ApproximateCreationDateTime"], int)
    assert modify["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert modify["eventSourceARN"].startswith("arn:aws:dynamodb:us-east-1:")


def test_http_api_v2_event_and_response(mapped: RunningDevserver) -> None:
    status, headers, body = _get(f"{mapped.http}/api/echo/a/b%20c?x=1&x=2&y=z")
    assert status == 201
    assert headers["x-echo"] == "1"
    assert headers["Set-Cookie"].startswith("a=1")
    event = body["event"]
    assert event["version"] == "2.0"
    assert event["routeKey"] == "ANY /api/echo/{proxy+}"
    assert event["rawPath"] == "/api/echo/a/b%20c" or event["rawPath"] == "/api/echo/a/b c"
    assert event["pathParameters"] == {"proxy": "a/b c"}
    assert event["queryStringParameters"] == {"x": "1,2", "y": "z"}
    assert event["requestContext"]["http"]["method"] == "GET"
    assert event["requestContext"]["stage"] == "$default"
    assert 0 < body["remainingMs"] <= 5000
    assert body["functionName"] == "EchoFunction"

    status, _, body = _get(f"{mapped.http}/api/nothing-here")
    assert status == 404
    assert body == {"message": "Not Found"}


def test_function_environment_is_exactly_the_templates(mapped: RunningDevserver) -> None:
    status, _, body = _get(f"{mapped.http}/api/env")
    assert status == 200
    assert body["environ"]["MANAGEMENT_ENDPOINT"] == mapped.management
    assert body["environ"]["PUBLIC_WS_URL"] == mapped.ws
    env = body["environ"]
    assert env["OWN_SETTING"] == "42"  # Function's own variables ...
    assert env["FLAVOR"] == "plain"  # ... merged over Globals', with !If resolved
    assert env["RESULTS_TABLE"] == mapped.resources["ResultsTable"]
    assert env["AWS_ENDPOINT_URL"] == mapped.moto
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "EnvFunction"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert "SWITCHBOARD_LEAK_MARKER" not in env
    assert "PYTHONPATH" not in env
    assert body["sysPath"][0] == str(FIXTURES)
    assert str(Path(__file__).resolve().parents[2]) not in body["sysPath"]


def test_crashed_worker_is_replaced(mapped: RunningDevserver) -> None:
    def workers() -> list[dict[str, Any]]:
        stats = _get(f"{mapped.http}/__devserver/workers")[2]["CrashFunction"]
        return list(stats["workers"])

    # Nothing called the function yet: as on Lambda, it has no execution environment.
    assert workers() == []
    status, _, _ = _get(f"{mapped.http}/api/crash")
    assert status == 500
    # The invocation started one worker, which died; the pool replaced it.
    _wait(lambda: sorted(w["alive"] for w in workers()) == [False, True], timeout=20)
    status, _, _ = _get(f"{mapped.http}/api/crash")
    assert status == 500
    # The next invocation found a live worker (and killed it in turn); again replaced.
    _wait(lambda: sum(not w["alive"] for w in workers()) == 2, timeout=20)
    _wait(lambda: any(w["alive"] for w in workers()), timeout=20)


async def test_a_burst_starts_no_more_workers_than_the_pool_holds(
    start_devserver: StartDevserver, tmp_path: Path
) -> None:
    """40 frames written at once on one socket reach the devserver together: the pool
    (--workers 2) starts at most one more worker for them, and every frame is answered."""
    import asyncio

    import websockets

    template = tmp_path / "template.yaml"
    template.write_text(TEMPLATE)
    ds = start_devserver("--template", str(template), "--workers", "2")
    async with websockets.connect(ds.url("wendy"), open_timeout=30) as ws:
        frames = [json.dumps({"action": "echo", "n": n}) for n in range(40)]
        await asyncio.gather(*(ws.send(frame) for frame in frames))
        replies = [json.loads(await asyncio.wait_for(ws.recv(), WAIT)) for _ in frames]
        started = _get(f"{ds.http}/__devserver/workers")[2]["WsFunction"]["workers"]
    assert sorted(json.loads(r["event"]["body"])["n"] for r in replies) == list(range(40))
    assert 1 <= len(started) <= 2, started
    assert sum(w["invocations"] for w in started) == 41  # $connect + 40 frames


def test_timeout_kills_worker_and_next_invocation_works(mapped: RunningDevserver) -> None:
    def dead_workers() -> int:
        stats = _get(f"{mapped.http}/__devserver/workers")[2]["SlowFunction"]
        return sum(not w["alive"] for w in stats["workers"])

    dead = dead_workers()
    status, _, _ = _get(f"{mapped.http}/api/slow?s=5")
    assert status == 500
    # Stopped by its 1 s Timeout (the function would sleep 5 s): the invocation failed as
    # Lambda reports a timeout, and the worker that ran it was killed.
    assert "SlowFunction Sandbox.Timedout: Task timed out after 1.00 seconds" in mapped.log()
    assert dead_workers() == dead + 1
    status, _, body = _get(f"{mapped.http}/api/slow?s=0")
    assert status == 200
    assert body["slept"] == 0.0


def test_static_web_and_param_override(start_devserver: StartDevserver, tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(TEMPLATE)
    web = tmp_path / "web"
    web.mkdir()
    (web / "index.html").write_text("<h1>hello</h1>")
    ds = start_devserver("--template", str(template), "--workers", "1", "--param", "Flavor=x")
    assert "OnlyWhenFancy" in ds.resources
    with urllib.request.urlopen(f"{ds.http}/", timeout=10) as resp:
        assert resp.read() == b"<h1>hello</h1>"
    _, _, body = _get(f"{ds.http}/api/env")
    assert body["environ"]["FLAVOR"] == "fancy"


# ---------------------------------------------------------------------- generic WebSocket API
async def test_ws_api_from_a_template_authorizer_connect_routes_and_responses(
    mapped: RunningDevserver,
) -> None:
    import asyncio

    import websockets
    from websockets.exceptions import InvalidStatus

    assert mapped.ws.endswith("/local")
    for token, status in (("deny", 403), ("boom", 401), ("refuse", 403)):
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(mapped.url(token), open_timeout=10):
                pass
        assert refused.value.response.status_code == status, token

    async with websockets.connect(mapped.url("wendy"), open_timeout=30) as ws:
        # A route without RouteResponse sends nothing back; with one, the body.
        await ws.send(json.dumps({"action": "silent"}))
        await ws.send(json.dumps({"action": "echo", "x": 1}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert reply["route"] == "echo"
        ctx = reply["event"]["requestContext"]
        assert ctx["eventType"] == "MESSAGE"
        assert ctx["authorizer"]["userId"] == "wendy"
        assert ctx["authorizer"]["principalId"] == "wendy"
        assert ctx["authorizer"]["n"] == 7
        assert ctx["apiId"] == "WsApi"
        assert ctx["stage"] == "local"
        assert len(ctx["connectionId"]) == 16
        assert ctx["connectionId"].endswith("=")
        # No $default route: API Gateway answers Forbidden itself.
        await ws.send("plain text")
        forbidden = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert forbidden["message"] == "Forbidden"
        assert forbidden["connectionId"] == ctx["connectionId"]
        await ws.send(json.dumps({"action": "explode"}))
        error = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert error["message"] == "Internal server error"

    await asyncio.to_thread(_wait, lambda: "ws#wendy#disconnect" in _results(mapped))
    results = _results(mapped)
    # Refused handshakes never reach $connect's function or $disconnect.
    assert not any(k.startswith(("ws#deny", "ws#boom", "ws#refuse")) for k in results)
    disconnect = json.loads(results["ws#wendy#disconnect"]["event"]["S"])
    assert disconnect["requestContext"]["eventType"] == "DISCONNECT"
    assert disconnect["requestContext"]["disconnectStatusCode"] == 1000
    connect = json.loads(results["ws#wendy#connect"]["event"]["S"])
    assert connect["queryStringParameters"] == {"token": "wendy"}
    assert connect["requestContext"]["eventType"] == "CONNECT"


def test_management_endpoint_in_env_points_at_the_devserver(mapped: RunningDevserver) -> None:
    status, _, body = _get(f"{mapped.http}/api/env")
    assert status == 200
    assert body["environ"]["MANAGEMENT_ENDPOINT"] == mapped.management
    assert body["environ"]["PUBLIC_WS_URL"] == mapped.ws
