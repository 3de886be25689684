"""Figure 2 - AWS calls per operation, counted with botocore event hooks (bench.counting)
on the clients the handlers really use, while the handlers run in-process against moto.

Operations: connect (authorizer + $connect), disconnect, ping, a 1:1 send to an online
recipient, a 1:1 send to an offline one, sends to 10 and 100 online members; and every
request action of the message function, for Scans. Many other users are connected while
the 1:1 send is counted, so a cost that grew with them would show.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from switchboard import aws

from bench import ROOT
from bench.cost import request_units
from bench.counting import CallCounter
from devserver import DEV_JWT_SECRET
from tests.integration.conftest import FakeContext, Stack
from tests.integration.test_messaging import Client
from tests.support.events import frame, ws_event

# 50 is the deployed MAX_MEMBERS. A 100-member conversation cannot be created: creation is
# one TransactWriteItems of members + 2 items, and DynamoDB allows 100 items per transaction.
GROUP_SIZES = (10, 50)


def _operation(counter: CallCounter, elapsed_ms: float, invocations: int = 1) -> dict[str, Any]:
    read_units, write_units = request_units(counter.calls, counter.items)
    return {
        "calls": counter.snapshot(),
        "items": dict(sorted(counter.items.items())),
        "dynamodb": counter.service_calls("dynamodb"),
        "read_units": read_units,
        "write_units": write_units,
        "posts": counter.calls.get("apigatewaymanagementapi.PostToConnection", 0),
        "sqs": counter.service_calls("sqs"),
        "invocations": invocations,
        "in_process_ms": round(elapsed_ms, 1),
    }


class Counted:
    """One CallCounter over the run; ``operation()`` records what a block cost."""

    def __init__(self, counter: CallCounter) -> None:
        self.counter = counter
        self.operations: dict[str, dict[str, Any]] = {}

    @contextmanager
    def operation(self, name: str, invocations: int = 1) -> Iterator[None]:
        start = time.perf_counter()
        with self.counter.measure() as inner:
            yield
        self.operations[name] = _operation(inner, (time.perf_counter() - start) * 1000, invocations)


def authorizer_event(token: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((ROOT / "events" / "connect-authorizer.json").read_text())
    event["queryStringParameters"] = {"token": token}
    event["multiValueQueryStringParameters"] = {"token": [token]}
    return event


def measure(
    stack: Stack,
    crowd: int = 30,
    group_sizes: tuple[int, ...] = GROUP_SIZES,
    progress: Callable[[str], None] = lambda _: None,
    quiet: bool = True,
) -> dict[str, Any]:
    from switchboard.auth import mint_token

    largest = max(group_sizes)
    if quiet:
        for spec in stack.functions.values():
            spec.environment["POWERTOOLS_LOG_LEVEL"] = "WARNING"
    app = stack.handler("MessageFunction")
    connect = stack.handler("ConnectionFunction")
    authorizer = stack.handler("AuthorizerFunction")
    context = FakeContext()
    counter = CallCounter().watch(
        aws.dynamodb(),
        aws.sqs(),
        app.service.delivery.gateway.client,
        connect.sessions.gateway.client,
    )
    run = Counted(counter)
    tag = uuid.uuid4().hex[:6]
    try:
        alice = Client(stack, app, connect, f"alice-{tag}")
        bob = Client(stack, app, connect, f"bob-{tag}")
        others = [Client(stack, app, connect, f"crowd{i}-{tag}") for i in range(crowd)]
        progress(f"calls: {crowd + 2} users connected")

        # connect = the authorizer + $connect (the secret is cached for the environment:
        # one warm-up connect first, then the counted one).
        authorizer.lambda_handler(authorizer_event(mint_token(DEV_JWT_SECRET, "warm")), context)
        carol_id, carol_connection = f"carol-{tag}", f"carol-conn-{tag}"
        with run.operation("connect", invocations=2):
            authorizer.lambda_handler(
                authorizer_event(mint_token(DEV_JWT_SECRET, carol_id)), context
            )
            connect.lambda_handler(
                ws_event("$connect", connection_id=carol_connection, user_id=carol_id), context
            )
        with run.operation("ping"):
            reply(connect, carol_connection, carol_id, "ping", {}, context)
        with run.operation("disconnect"):
            connect.lambda_handler(
                ws_event("$disconnect", connection_id=carol_connection, user_id=carol_id), context
            )

        conversation = alice.ok("conversation:create", {"members": [bob.user_id]})
        cid = {"conversationId": conversation["conversationId"]}
        bob.ok("conversation:accept", cid)  # a request until bob accepts (contacts from now)
        alice.ok("message:send", {**cid, "clientMessageId": "warm", "body": "warm"})
        with run.operation("send_1to1_online"):
            alice.ok("message:send", {**cid, "clientMessageId": "m1", "body": "hi"})
        if bob.frames("message:new")[-1]["data"]["body"] != "hi":
            raise RuntimeError("the counted 1:1 send was not delivered")

        offline = f"dave-{tag}"
        to_offline = alice.ok("conversation:create", {"members": [offline]})["conversationId"]
        alice.ok(
            "message:send", {"conversationId": to_offline, "clientMessageId": "w", "body": "w"}
        )
        with run.operation("send_1to1_offline"):
            alice.ok(
                "message:send",
                {"conversationId": to_offline, "clientMessageId": "m1", "body": "hi"},
            )

        members = [*others]
        while len(members) < largest:
            members.append(Client(stack, app, connect, f"member{len(members)}-{tag}"))
        for size in group_sizes:
            group = alice.ok(
                "conversation:create", {"members": [m.user_id for m in members[: size - 1]]}
            )["conversationId"]
            alice.ok("message:send", {"conversationId": group, "clientMessageId": "w", "body": "w"})
            with run.operation(f"send_group_{size}"):
                alice.ok(
                    "message:send", {"conversationId": group, "clientMessageId": "m", "body": "x"}
                )
            progress(f"calls: send to {size} members counted")

        with run.operation("request_actions", invocations=len(REQUEST_ACTIONS)):
            for action, data in REQUEST_ACTIONS:
                bob.ok(action, data(conversation["conversationId"], bob.user_id))

        message_operations(run, alice, bob, conversation["conversationId"])
        progress("calls: edit, delete, reaction, thread reply and quote counted")

        unavailable = feature_operations(stack, run, alice, bob, context)
        progress("calls: call setup and upload start counted")
    finally:
        counter.close()
    operations = run.operations
    scans = sum(
        n for op in operations.values() for key, n in op["calls"].items() if key.endswith(".Scan")
    )
    return {
        "connected_users": crowd + 2 + max(0, largest - 1 - crowd),
        "operations": operations,
        "ddb_calls_per_message": operations["send_1to1_online"]["dynamodb"],
        "scan_calls": scans,
        "not_counted": NOT_COUNTED + unavailable,
    }


def message_operations(run: Counted, alice: Client, bob: Client, conversation: str) -> None:
    """An edit, a reaction, a thread reply, a quote-reply and a delete of the online 1:1
    conversation's message (seq 2): each at most 3 DynamoDB calls, like a send."""
    at = {"conversationId": conversation, "seq": 2}
    with run.operation("message_edit"):
        alice.ok("message:edit", {**at, "body": "hi!"})
    with run.operation("message_react"):
        bob.ok("message:react", {**at, "emoji": "👍"})
    with run.operation("send_thread_reply"):
        bob.ok(
            "message:send",
            {"conversationId": conversation, "clientMessageId": "t1", "body": "re", "parentSeq": 2},
        )
    with run.operation("send_quote"):
        bob.ok(
            "message:send",
            {"conversationId": conversation, "clientMessageId": "q1", "body": "q", "replyToSeq": 2},
        )
    with run.operation("message_delete"):
        alice.ok("message:delete", at)
    if bob.frames("message:deleted")[-1]["data"]["seq"] != 2:
        raise RuntimeError("the counted delete was not pushed")


def feature_operations(
    stack: Stack, run: Counted, alice: Client, bob: Client, context: FakeContext
) -> list[str]:
    """Call setup (call:initiate + call:answer) and upload start, when their functions
    are in the template. Returns what could not be counted, and why."""
    unavailable = []
    if "SignalingFunction" in stack.functions:
        signaling = stack.handler("SignalingFunction")
        run.counter.watch(signaling.service.delivery.gateway.client)
        with run.operation("call_setup", invocations=2):
            call = reply(
                signaling,
                alice.connection_id,
                alice.user_id,
                "call:initiate",
                {"calleeId": bob.user_id, "media": "audio", "offer": SDP_OFFER},
                context,
            )["data"]
            reply(
                signaling,
                bob.connection_id,
                bob.user_id,
                "call:answer",
                {"callId": call["callId"], "answer": SDP_ANSWER},
                context,
            )
    else:
        unavailable.append("call setup: no SignalingFunction in template.yaml")
    if "UploadFunction" in stack.functions:
        uploads = stack.handler("UploadFunction")
        from switchboard.dal.uploads import s3_client

        run.counter.watch(uploads.service.delivery.gateway.client, s3_client())
        with run.operation("upload_start"):
            reply(
                uploads,
                alice.connection_id,
                alice.user_id,
                "upload:start",
                {"fileName": "photo.png", "contentType": "image/png", "size": 200_000},
                context,
            )
    else:
        unavailable.append("upload start: no UploadFunction in template.yaml")
    return unavailable


SDP_OFFER = {"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}
SDP_ANSWER = {"type": "answer", "sdp": "v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\n"}


def reply(
    module: ModuleType,
    connection_id: str,
    user_id: str,
    action: str,
    data: dict[str, Any],
    context: FakeContext,
) -> dict[str, Any]:
    event = ws_event(action, body=frame(action, data), connection_id=connection_id, user_id=user_id)
    parsed: dict[str, Any] = json.loads(module.lambda_handler(event, context)["body"])
    if not parsed.get("ok"):
        raise RuntimeError(f"{action}: {parsed}")
    return parsed


REQUEST_ACTIONS: list[tuple[str, Callable[[str, str], dict[str, Any]]]] = [
    ("conversation:list", lambda c, u: {}),
    ("message:ack", lambda c, u: {"conversationId": c, "seq": 1}),
    ("message:read", lambda c, u: {"conversationId": c, "seq": 1}),
    ("message:sync", lambda c, u: {"cursors": {c: 0}}),
    ("message:history", lambda c, u: {"conversationId": c}),
    ("typing:start", lambda c, u: {"conversationId": c}),
    ("typing:stop", lambda c, u: {"conversationId": c}),
    ("presence:query", lambda c, u: {"userIds": [u]}),
    ("preferences:get", lambda c, u: {}),
    ("preferences:set", lambda c, u: {"digestMinutes": 10}),
    ("notification:list", lambda c, u: {}),
    ("message:changes", lambda c, u: {"conversationId": c, "afterChange": 0}),
    ("thread:history", lambda c, u: {"conversationId": c, "parentSeq": 1}),
    ("conversation:mute", lambda c, u: {"conversationId": c, "until": 2**50}),
    ("conversation:accept", lambda c, u: {"conversationId": c}),
    ("conversation:decline", lambda c, u: {"conversationId": c}),
    ("user:blocks", lambda c, u: {}),
]

NOT_COUNTED = [
    "Secrets Manager GetSecretValue in the authorizer: one per execution environment per "
    "JWT_SECRET_MAX_AGE_SECONDS (cached by Powertools Parameters), not per connect",
    "stream consumers (presence and backlog on connect/disconnect): asynchronous, "
    "their cost depends on the user's conversations",
]
