"""Token lifetime (auth:refresh), revocation (admin:revoke), the connection-flood limit and
the send/create rate limits - handlers in-process under moto."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from tests.integration.conftest import FakeContext, Stack, token_for
from tests.integration.test_connect import authorizer_event
from tests.integration.test_messaging import Client, new_conversation, send
from tests.support.events import frame, reply_of, ws_event


def tag(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


def call(app: ModuleType, action: str, data: dict[str, Any], **event: Any) -> dict[str, Any]:
    return reply_of(
        app.lambda_handler(ws_event(action, body=frame(action, data), **event), FakeContext())
    )


@pytest.fixture(scope="module")
def connect_app(stack: Stack) -> ModuleType:
    return stack.handler("ConnectionFunction")


def test_expired_connection_continues_after_auth_refresh(
    stack: Stack, connect_app: ModuleType, context: FakeContext
) -> None:
    message_app = stack.handler("MessageFunction")
    user, other = tag("alice"), tag("bob")
    conn = f"{user}-phone"
    expired = int(time.time()) - 5
    connect_app.lambda_handler(
        ws_event("$connect", connection_id=conn, user_id=user, token_exp=expired), context
    )
    as_user: dict[str, Any] = {"connection_id": conn, "user_id": user, "token_exp": expired}
    create = {"members": [other]}

    # Given a connection whose token has expired: every action is refused ...
    assert call(message_app, "conversation:create", create, **as_user)["error"]["code"] == (
        "token_expired"
    )
    # ... a refresh with someone else's token or a forged one is refused ...
    stranger = call(connect_app, "auth:refresh", {"token": token_for(other)}, **as_user)
    forged = call(connect_app, "auth:refresh", {"token": token_for(user)[:-3] + "abc"}, **as_user)
    assert stranger["error"]["code"] == "forbidden"
    assert forged["error"]["code"] == "unauthorized"
    assert call(message_app, "conversation:create", create, **as_user)["error"]["code"] == (
        "token_expired"
    )
    # When it sends auth:refresh with a fresh token of its own user
    refreshed = call(
        connect_app, "auth:refresh", {"token": token_for(user, ttl_seconds=600)}, **as_user
    )
    assert refreshed["ok"], refreshed
    assert refreshed["data"]["expiresAt"] > time.time() + 500
    # Then the same connection (same authorizer context) may act again, in every function
    assert call(message_app, "conversation:create", create, **as_user)["ok"]
    assert call(connect_app, "ping", {}, **as_user)["ok"]


def test_admin_revoke_closes_sessions_and_refuses_old_tokens(
    stack: Stack, connect_app: ModuleType, context: FakeContext
) -> None:
    authorizer = stack.handler("AuthorizerFunction")
    user, admin = tag("mallory"), tag("admin")
    old_token = token_for(user)
    assert authorizer.lambda_handler(authorizer_event(old_token), context)["principalId"] == user
    for device in ("a", "b"):
        connect_app.lambda_handler(
            ws_event("$connect", connection_id=f"{user}-{device}", user_id=user), context
        )

    # A user may not revoke anyone (not even someone else's sessions)
    refused = call(connect_app, "admin:revoke", {"userId": user}, user_id=tag("eve"))
    assert refused["error"]["code"] == "forbidden"

    # When an admin revokes the user
    done = call(connect_app, "admin:revoke", {"userId": user}, user_id=admin, roles="admin")
    assert done["ok"], done
    assert done["data"] == {
        "userId": user,
        "closedConnections": 2,
        "alreadyClosed": 0,
        "failedConnections": [],
    }
    # Then tokens issued before cannot connect nor refresh; a token issued later can
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer.lambda_handler(authorizer_event(old_token), context)
    stale = call(
        connect_app,
        "auth:refresh",
        {"token": old_token},
        connection_id=f"{user}-a",
        user_id=user,
        token_exp=int(time.time()) - 1,
    )
    assert stale["error"]["code"] == "unauthorized"
    fresh = token_for(user, now=time.time() + 2)
    assert authorizer.lambda_handler(authorizer_event(fresh), context)["principalId"] == user


def test_connection_flood_is_refused_with_429_and_nothing_stored(
    stack: Stack, context: FakeContext
) -> None:
    app = stack.handler("ConnectionFunction", MAX_CONNECTIONS_PER_USER="2")
    ddb = stack.client("dynamodb")
    user = tag("flood")
    statuses = [
        app.lambda_handler(ws_event("$connect", connection_id=f"{user}-{i}", user_id=user), context)
        for i in range(3)
    ]
    assert statuses == [{"statusCode": 200}, {"statusCode": 200}, {"statusCode": 429}]
    refused = ddb.get_item(
        TableName=stack.table("ConnectionsTable"), Key={"connectionId": {"S": f"{user}-2"}}
    )
    assert "Item" not in refused
    # A disconnect frees a place
    app.lambda_handler(ws_event("$disconnect", connection_id=f"{user}-0", user_id=user), context)
    again = app.lambda_handler(
        ws_event("$connect", connection_id=f"{user}-3", user_id=user), context
    )
    assert again == {"statusCode": 200}


def _connect_in_this_minute(app: ModuleType, context: FakeContext) -> Callable[[str, int], Any]:
    """``connect(user, i)``: ``$connect`` of ``<user>-<i>``, stamped ``i`` ms into the
    current minute, so that every connect of a test falls in one window of the per-minute
    count whatever the clock says."""
    now_ms = int(time.time() * 1000)
    minute = now_ms - now_ms % 60_000

    def connect(user: str, i: int) -> Any:
        event = ws_event("$connect", connection_id=f"{user}-{i}", user_id=user)
        event["requestContext"]["connectedAt"] = minute + i
        return app.lambda_handler(event, context)

    return connect


def test_connecting_in_a_loop_is_refused_with_429_and_sets_nothing_off(
    stack: Stack, context: FakeContext
) -> None:
    # Each first connection of a user sends presence to all their contacts (and reads the
    # backlog): connecting and disconnecting in a loop would be an amplifier.
    app = stack.handler("ConnectionFunction", CONNECT_LIMIT_PER_MINUTE="3")
    connect = _connect_in_this_minute(app, context)
    ddb = stack.client("dynamodb")
    user = tag("flapper")
    statuses = []
    for i in range(4):
        statuses.append(connect(user, i))
        app.lambda_handler(
            ws_event("$disconnect", connection_id=f"{user}-{i}", user_id=user), context
        )
    assert statuses == [{"statusCode": 200}] * 3 + [{"statusCode": 429}]
    refused = ddb.get_item(
        TableName=stack.table("ConnectionsTable"), Key={"connectionId": {"S": f"{user}-3"}}
    )
    assert "Item" not in refused  # no item, so no stream record: no presence, no backlog
    users = ddb.get_item(TableName=stack.table("UsersTable"), Key={"userId": {"S": user}})
    assert "connectionIds" not in users["Item"]
    # Another user is not limited by this one's connects
    assert connect(tag("neighbour"), 5) == {"statusCode": 200}


def test_a_connect_refused_for_a_full_user_counts_no_connect(
    stack: Stack, context: FakeContext
) -> None:
    # The count is in the connect's own transaction: refused connects use up nothing.
    app = stack.handler(
        "ConnectionFunction", MAX_CONNECTIONS_PER_USER="1", CONNECT_LIMIT_PER_MINUTE="2"
    )
    connect = _connect_in_this_minute(app, context)
    user = tag("full")
    assert connect(user, 0) == {"statusCode": 200}
    assert [connect(user, i) for i in (1, 2, 3)] == [{"statusCode": 429}] * 3  # full: not counted
    app.lambda_handler(ws_event("$disconnect", connection_id=f"{user}-0", user_id=user), context)
    assert connect(user, 4) == {"statusCode": 200}  # the second connect of the minute


def test_send_rate_limits_per_connection_and_per_user_store_nothing_refused(
    stack: Stack, connect_app: ModuleType
) -> None:
    # An hour-long window: no window boundary can fall inside the test.
    app = stack.handler(
        "MessageFunction",
        SEND_LIMIT_PER_CONNECTION="3",
        SEND_LIMIT_PER_USER="5",
        RATE_WINDOW_SECONDS=str(10**9),
    )
    sender, receiver = tag("alice"), tag("bob")
    phone = Client(stack, app, connect_app, sender)
    laptop = Client(stack, app, connect_app, sender)
    bob = Client(stack, app, connect_app, receiver)
    conversation = new_conversation(phone, bob)

    seqs = [send(phone, conversation, f"p{i}", client_id=f"p{i}")["seq"] for i in range(3)]
    assert seqs == [1, 2, 3]
    # The connection's 4th send in the window is refused, with when to retry
    limited = phone.call(
        "message:send", {"conversationId": conversation, "clientMessageId": "p3", "body": "x"}
    )
    assert limited["error"]["code"] == "rate_limited"
    assert 0 < limited["error"]["details"]["retryAfterMs"] <= 10**9 * 1000
    # Repeating an accepted send is an idempotent retry, not a new send: never limited
    assert send(phone, conversation, "p0", client_id="p0")["seq"] == 1
    # Another device of the same user has its own connection budget, but shares the user's
    assert [send(laptop, conversation, f"l{i}")["seq"] for i in range(2)] == [4, 5]
    over_user = laptop.call(
        "message:send", {"conversationId": conversation, "clientMessageId": "l2", "body": "x"}
    )
    assert over_user["error"]["code"] == "rate_limited"
    # Other users are not affected, and the refused sends left no gap and no message
    assert send(bob, conversation, "hi")["seq"] == 6
    history = bob.ok("message:history", {"conversationId": conversation})
    assert [m["seq"] for m in history["messages"]] == [1, 2, 3, 4, 5, 6]
    assert [m["body"] for m in history["messages"]][:3] == ["p0", "p1", "p2"]


def test_conversation_create_is_rate_limited_per_user_counting_only_new_ones(
    stack: Stack, connect_app: ModuleType
) -> None:
    app = stack.handler(
        "MessageFunction", CREATE_LIMIT_PER_USER="2", RATE_WINDOW_SECONDS=str(10**9)
    )
    alice = Client(stack, app, connect_app, tag("alice"))
    bob = tag("bob")
    # Refused creates (no other member) and repeats of the same 1:1 are not counted
    assert alice.error("conversation:create", {"members": [alice.user_id]}) == "bad_request"
    assert alice.error("conversation:create", {"members": [alice.user_id]}) == "bad_request"
    assert alice.ok("conversation:create", {"members": [bob]})["created"] is True
    assert alice.ok("conversation:create", {"members": [bob]})["created"] is False
    assert alice.ok("conversation:create", {"members": [tag("x"), tag("y")]})["created"]
    # The third new conversation in the window is refused, and nothing was created
    third = alice.call("conversation:create", {"members": [tag("carol")]})
    assert third["error"]["code"] == "rate_limited"
    listed = alice.ok("conversation:list", {"limit": 100})["conversations"]
    assert len(listed) == 2


def test_refresh_with_other_roles_needs_a_new_connection(
    connect_app: ModuleType, context: FakeContext
) -> None:
    admin = tag("demoted")
    as_admin: dict[str, Any] = {"connection_id": f"{admin}-c", "user_id": admin, "roles": "admin"}
    connect_app.lambda_handler(ws_event("$connect", **as_admin), context)
    # A token without the admin role cannot extend the admin connection ...
    demoted = call(connect_app, "auth:refresh", {"token": token_for(admin)}, **as_admin)
    assert demoted["error"]["code"] == "unauthorized"
    # ... while a token with the same roles can
    same = call(connect_app, "auth:refresh", {"token": token_for(admin, ("admin",))}, **as_admin)
    assert same["ok"], same


def test_a_connect_racing_a_revocation_is_refused(
    stack: Stack, connect_app: ModuleType, context: FakeContext
) -> None:
    user, admin = tag("racer"), tag("admin")
    call(connect_app, "admin:revoke", {"userId": user}, user_id=admin, roles="admin")
    # The authorizer looked before the revocation landed: its context says iat = before
    event = ws_event("$connect", connection_id=f"{user}-late", user_id=user)
    event["requestContext"]["authorizer"]["tokenIat"] = int(time.time()) - 60
    assert connect_app.lambda_handler(event, context) == {"statusCode": 401}
    item = stack.client("dynamodb").get_item(
        TableName=stack.table("ConnectionsTable"), Key={"connectionId": {"S": f"{user}-late"}}
    )
    assert "Item" not in item
    # A token issued after the revocation connects
    event["requestContext"]["authorizer"]["tokenIat"] = int(time.time()) + 2
    assert connect_app.lambda_handler(event, context) == {"statusCode": 200}


def test_ids_left_by_missed_disconnects_do_not_lock_a_user_out(
    stack: Stack, context: FakeContext
) -> None:
    app = stack.handler("ConnectionFunction", MAX_CONNECTIONS_PER_USER="2")
    user = tag("ghosts")
    # Two connection ids whose $disconnect never came (their items are gone)
    stack.client("dynamodb").update_item(
        TableName=stack.table("UsersTable"),
        Key={"userId": {"S": user}},
        UpdateExpression="ADD connectionIds :c",
        ExpressionAttributeValues={":c": {"SS": ["ghost-1", "ghost-2"]}},
    )
    connect = ws_event("$connect", connection_id=f"{user}-real", user_id=user)
    assert app.lambda_handler(connect, context) == {"statusCode": 200}
    presence = stack.client("dynamodb").get_item(
        TableName=stack.table("UsersTable"), Key={"userId": {"S": user}}, ConsistentRead=True
    )["Item"]
    assert presence["connectionIds"]["SS"] == [f"{user}-real"]
