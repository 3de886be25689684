"""$connect authorizer, $connect, $disconnect, ping - in-process under moto."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import FakeContext, Stack, token_for
from tests.support.events import frame, ws_event

METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/dev/$connect"


def authorizer_event(token: str | None) -> dict[str, Any]:
    event = json.loads(Path("events/connect-authorizer.json").read_text())
    event["queryStringParameters"] = {"token": token} if token is not None else {}
    return event


def test_authorizer_allows_a_valid_token_and_passes_identity(
    stack: Stack, context: FakeContext
) -> None:
    handler = stack.handler("AuthorizerFunction")
    # Given a token minted with the secret the template's Secrets Manager secret holds
    token = token_for("alice", ("admin",))
    # When the authorizer runs
    policy = handler.lambda_handler(authorizer_event(token), context)
    # Then it allows $connect and hands userId/roles/tokenExp to every route
    statement = policy["policyDocument"]["Statement"][0]
    assert statement["Effect"] == "Allow"
    assert statement["Resource"] == [METHOD_ARN]
    assert policy["principalId"] == "alice"
    assert policy["context"]["userId"] == "alice"
    assert policy["context"]["roles"] == "admin"
    assert policy["context"]["tokenExp"] > time.time()


@pytest.mark.parametrize(
    "token",
    [
        None,
        "",
        "garbage",
        token_for("alice", ttl_seconds=-100),
        # Issued in ~4 months: still not yet valid however long the run (999 s was not)
        token_for("a", now=time.time() + 10**7),
    ],
)
def test_authorizer_refuses_with_unauthorized(
    stack: Stack, context: FakeContext, token: str | None
) -> None:
    handler = stack.handler("AuthorizerFunction")
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        handler.lambda_handler(authorizer_event(token), context)


def test_connect_and_disconnect_maintain_connection_and_presence(
    stack: Stack, context: FakeContext, user: str
) -> None:
    app = stack.handler("ConnectionFunction")
    ddb = stack.client("dynamodb")
    connections, users = stack.table("ConnectionsTable"), stack.table("UsersTable")

    # When a user connects twice (two devices)
    for cid in ("c-one", "c-two"):
        assert app.lambda_handler(
            ws_event("$connect", connection_id=f"{user}-{cid}", user_id=user), context
        ) == {"statusCode": 200}
    # Then both connections are stored with a TTL, and the user's presence set has both
    item = ddb.get_item(TableName=connections, Key={"connectionId": {"S": f"{user}-c-one"}})["Item"]
    assert item["userId"]["S"] == user
    assert int(item["expiresAt"]["N"]) > time.time() + 7200
    presence = ddb.get_item(TableName=users, Key={"userId": {"S": user}})["Item"]
    assert set(presence["connectionIds"]["SS"]) == {f"{user}-c-one", f"{user}-c-two"}

    # When one disconnects (twice: API Gateway may repeat it) the other remains
    for _ in range(2):
        app.lambda_handler(
            ws_event("$disconnect", connection_id=f"{user}-c-one", user_id=user), context
        )
    assert "Item" not in ddb.get_item(
        TableName=connections, Key={"connectionId": {"S": f"{user}-c-one"}}
    )
    presence = ddb.get_item(TableName=users, Key={"userId": {"S": user}})["Item"]
    assert presence["connectionIds"]["SS"] == [f"{user}-c-two"]
    assert int(presence["lastSeen"]["N"]) > 0


def test_ping_replies_with_server_time(stack: Stack, context: FakeContext) -> None:
    app = stack.handler("ConnectionFunction")
    response = app.lambda_handler(ws_event("ping", body=frame("ping", request_id="p1")), context)
    reply = json.loads(response["body"])
    assert reply["id"] == "p1" and reply["ok"] is True
    assert abs(reply["data"]["serverTime"] - time.time() * 1000) < 60_000


def test_ping_tells_the_client_its_own_connection_id(stack: Stack, context: FakeContext) -> None:
    app = stack.handler("ConnectionFunction")
    event = ws_event("ping", body=frame("ping", request_id="p2"), connection_id="Abc123Def456Gh=")
    reply = json.loads(app.lambda_handler(event, context)["body"])
    assert reply["ok"] is True and reply["data"]["connectionId"] == "Abc123Def456Gh="


def test_default_route_answers_unknown_action_and_bad_json(
    stack: Stack, context: FakeContext
) -> None:
    app = stack.handler("ConnectionFunction")
    unknown = json.loads(
        app.lambda_handler(ws_event("$default", body=frame("nope:x")), context)["body"]
    )
    garbage = json.loads(
        app.lambda_handler(ws_event("$default", body="{not json"), context)["body"]
    )
    assert unknown["error"]["code"] == "unknown_action"
    assert garbage["error"]["code"] == "bad_request"
