"""Who talks to whom: naming a conversation must tell a non-member nothing.

A 1:1 conversation's id derives from its two members (``direct_id``, a plain hash), so
anyone can compute the id of alice and bob's conversation. Every action that takes a
conversation id answers a caller who is not (and never was) a member exactly as it
answers for a conversation that does not exist - the same code, words and details, no
other field - and does nothing in either case. Otherwise a stranger (a competitor on the
marketplace) learns whether a buyer and a seller ever talked, or who is in a group.

Each case sends the same request, as the stranger, to a real conversation of others and
to one that does not exist (the direct id of two users who never talked; a group id
nobody created), and compares the replies field for field, the request id aside, and the
DynamoDB calls each made (the same calls on the same tables: the reply's timing is no
tell either).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest
from switchboard.dal.conversations import direct_id

from tests.integration.conftest import FakeContext, Stack
from tests.integration.test_messaging import Client, new_conversation, send
from tests.integration.test_routes_match_template import template_routes
from tests.integration.test_uploads import run_processor
from tests.support.effects import InProcess
from tests.support.events import frame, ws_event
from tests.support.images import http, pdf_of_size

Request = Callable[["World", str], dict[str, Any]]


@dataclass
class World:
    modules: dict[str, ModuleType]
    routes: dict[str, str | None]
    alice: Client
    bob: Client
    carol: Client
    stranger: Client
    direct: str  # alice and bob's 1:1 (its id computable from theirs)
    group: str  # alice, bob and carol
    never_talked: str  # the direct id of two users who exist but never talked
    no_group: str  # a group id nobody created
    stranger_upload: str  # an upload of the stranger's own

    def call(self, client: Client, action: str, data: dict[str, Any]) -> dict[str, Any]:
        module = self.modules[self.routes[action] or ""]
        event = ws_event(
            action,
            body=frame(action, data),
            connection_id=client.connection_id,
            user_id=client.user_id,
        )
        reply: dict[str, Any] = json.loads(module.lambda_handler(event, FakeContext())["body"])
        return reply


@pytest.fixture(scope="module")
def world(stack: Stack) -> World:
    routes = template_routes(stack)
    modules = {
        function: stack.handler(function)
        for function in {f for key, f in routes.items() if f and not key.startswith("$")}
    }
    message, connect = modules["MessageFunction"], modules["ConnectionFunction"]
    tag = uuid.uuid4().hex[:6]
    alice, bob, carol, stranger, dave, erin = (
        Client(stack, message, connect, f"{name}-{tag}")
        for name in ("alice", "bob", "carol", "stranger", "dave", "erin")
    )
    direct = new_conversation(alice, bob)
    assert direct == direct_id({alice.user_id, bob.user_id})  # what the stranger computes
    send(alice, direct, "hello bob")
    bob.ok(
        "message:send",
        {"conversationId": direct, "clientMessageId": "r1", "body": "in a thread", "parentSeq": 1},
    )
    alice.ok("message:react", {"conversationId": direct, "seq": 1, "emoji": "👍"})
    group = new_conversation(alice, bob, carol)
    send(alice, group, "hello group")
    # The stranger is no one's nobody: a user with a conversation and an upload of their own.
    new_conversation(stranger, dave)
    upload = Client(stack, modules["UploadFunction"], connect, stranger.user_id)
    started = upload.ok(
        "upload:start", {"fileName": "a.pdf", "contentType": "application/pdf", "size": 2048}
    )
    # dave and erin exist (connected, with conversations of their own) but never talked
    never_talked = direct_id({dave.user_id, erin.user_id})
    return World(
        modules,
        routes,
        alice,
        bob,
        carol,
        stranger,
        direct,
        group,
        never_talked,
        "cv_" + uuid.uuid4().hex,
        started["uploadId"],
    )


def conv(**extra: Any) -> Request:
    return lambda _w, cid: {"conversationId": cid, **extra}


# Every request that names a conversation (the thread, quote and around variants too).
CASES: dict[str, tuple[str, Request]] = {
    "message:send": ("message:send", conv(clientMessageId="same", body="hi")),
    "message:send thread reply": (
        "message:send",
        conv(clientMessageId="same-thread", body="hi", parentSeq=1),
    ),
    "message:send quote": ("message:send", conv(clientMessageId="same-q", body="hi", replyToSeq=1)),
    "message:ack": ("message:ack", conv(seq=1)),
    "message:read": ("message:read", conv(seq=1)),
    "message:sync": ("message:sync", lambda _w, cid: {"cursors": {cid: 0}}),
    "message:history": ("message:history", conv()),
    "message:history before": ("message:history", conv(beforeSeq=2)),
    "message:history around": ("message:history", conv(aroundSeq=1)),
    "message:search": ("message:search", conv(query="hello")),
    "message:edit": ("message:edit", conv(seq=1, body="changed")),
    "message:delete": ("message:delete", conv(seq=1)),
    "message:react": ("message:react", conv(seq=1, emoji="👍")),
    "message:changes": ("message:changes", conv(afterChange=0)),
    "thread:history": ("thread:history", conv(parentSeq=1)),
    "conversation:mute": ("conversation:mute", conv(until=2**50)),
    "conversation:unmute": ("conversation:mute", conv(muted=False)),
    "typing:start": ("typing:start", conv()),
    "typing:stop": ("typing:stop", conv()),
    "conversation:accept": ("conversation:accept", conv()),
    "conversation:decline": ("conversation:decline", conv()),
    "conversation:leave": ("conversation:leave", conv()),
    "conversation:add-members": (
        "conversation:add-members",
        lambda w, cid: {"conversationId": cid, "members": [w.stranger.user_id]},
    ),
    "conversation:remove-member": (
        "conversation:remove-member",
        lambda w, cid: {"conversationId": cid, "userId": w.bob.user_id},
    ),
    "conversation:set-role": (
        "conversation:set-role",
        lambda w, cid: {"conversationId": cid, "userId": w.bob.user_id, "role": "admin"},
    ),
    "conversation:set-title": ("conversation:set-title", conv(title="mine now")),
    "upload:start voice": (
        "upload:start",
        conv(fileName="v.webm", contentType="audio/webm", size=2048, purpose="voice"),
    ),
    # a download of a shared upload names the conversation it was shared in
    "upload:get shared": (
        "upload:get",
        lambda w, cid: {"uploadId": w.stranger_upload, "conversationId": cid},
    ),
    "call:initiate 1:1": (
        "call:initiate",
        lambda w, cid: {
            "calleeId": w.bob.user_id,
            "media": "audio",
            "offer": {"type": "offer", "sdp": "v=0\r\n"},
            "conversationId": cid,
        },
    ),
    "call:initiate group": (
        "call:initiate",
        lambda w, cid: {"calleeIds": [w.bob.user_id], "media": "audio", "conversationId": cid},
    ),
}
# the stranger's own upload: answered (no conversation in it), the same either way
ANSWERED = {"upload:get shared"}


def without_id(reply: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in reply.items() if k != "id"}


@pytest.mark.parametrize("kind", ["1:1", "group"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_stranger_cannot_tell_a_conversation_of_others_from_none(
    world: World, dynamodb_calls: list[tuple[str, ...]], case: str, kind: str
) -> None:
    action, request = CASES[case]
    real, ghost = (
        (world.direct, world.never_talked) if kind == "1:1" else (world.group, world.no_group)
    )
    # Given the same request, as the stranger, to a real conversation and to none
    window = InProcess().window()
    to_real = world.call(world.stranger, action, request(world, real))
    calls_real = dynamodb_calls[:]
    del dynamodb_calls[:]
    to_none = world.call(world.stranger, action, request(world, ghost))
    # Then the replies are the same, field for field (the request id aside: each its own)
    assert without_id(to_real) == without_id(to_none), (to_real, to_none)
    # ... made of the same DynamoDB calls, on the same tables
    assert calls_real and calls_real == dynamodb_calls
    if case in ANSWERED:
        assert to_real["ok"], to_real
    else:
        # ... the answer for a conversation that does not exist, with nothing more
        assert to_none == {
            "type": "reply",
            "id": to_none["id"],
            "ok": False,
            "error": {"code": "not_found", "message": "conversation not found"},
        }, to_none
        # And neither did anything to anyone: no push, no write, no queue message
        window.assert_nothing_happened(f"{case} by a stranger")


def test_a_file_shared_with_a_stranger_does_not_tell_where_else_it_was_shared(
    stack: Stack, world: World, dynamodb_calls: list[tuple[str, ...]]
) -> None:
    """A seller sends the same photo to every buyer: each buyer has its upload id (their
    message carries it), and ``upload:get`` takes any conversation id with it. Whether the
    id names a conversation the file was shared in must not show, not even in the reads
    made: else a buyer (a competitor) probes ``direct_id(seller, X)`` for any X and learns
    whom else the seller sent it to."""
    alice, bob = world.alice, world.bob
    connect = world.modules["ConnectionFunction"]
    upload_app = world.modules["UploadFunction"]
    tag = uuid.uuid4().hex[:6]
    buyer = Client(stack, world.modules["MessageFunction"], connect, f"buyer-{tag}")
    buyer_uploads = Client(stack, upload_app, connect, buyer.user_id)
    alice_uploads = Client(stack, upload_app, connect, alice.user_id)
    pdf = pdf_of_size(2048)
    started = alice_uploads.ok(
        "upload:start", {"fileName": "offer.pdf", "contentType": "application/pdf", "size": 2048}
    )
    assert http("PUT", started["url"], pdf, started["headers"])[0] == 200
    alice_uploads.ok("upload:complete", {"uploadId": started["uploadId"]})
    run_processor(stack, stack.handler("UploadProcessorFunction"))
    attachment = {
        "uploadId": started["uploadId"],
        "fileName": "offer.pdf",
        "contentType": "application/pdf",
        "size": 2048,
    }
    # Given the file sent to bob, and to the buyer
    with_buyer = new_conversation(alice, buyer)
    for conversation in (world.direct, with_buyer):
        alice.ok(
            "message:send",
            {
                "conversationId": conversation,
                "clientMessageId": uuid.uuid4().hex,
                "body": "",
                "attachments": [attachment],
            },
        )
    shared = {"uploadId": started["uploadId"], "conversationId": with_buyer}
    assert buyer_uploads.ok("upload:get", shared)["fileName"] == "offer.pdf"
    # When the buyer names alice and bob's conversation, and one alice never had
    window = InProcess().window()
    del dynamodb_calls[:]
    to_real = world.call(buyer_uploads, "upload:get", {**shared, "conversationId": world.direct})
    calls_real = dynamodb_calls[:]
    del dynamodb_calls[:]
    ghost = direct_id({alice.user_id, f"nobody-{tag}"})
    to_none = world.call(buyer_uploads, "upload:get", {**shared, "conversationId": ghost})
    # Then both are the same not_found, made of the same DynamoDB calls, and did nothing
    assert without_id(to_real) == without_id(to_none), (to_real, to_none)
    assert to_none["error"]["code"] == "not_found", to_none
    assert calls_real and calls_real == dynamodb_calls, (calls_real, dynamodb_calls)
    window.assert_nothing_happened("upload:get of another conversation by a buyer")
    # (bob, a member there, still downloads it through his conversation)
    bob_uploads = Client(stack, upload_app, connect, bob.user_id)
    assert bob_uploads.ok("upload:get", {**shared, "conversationId": world.direct})["url"]
