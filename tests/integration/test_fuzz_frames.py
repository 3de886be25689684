"""Fuzzing every action through the real handlers (in-process, under moto): each hostile
frame gets exactly one typed reply, never ``internal``, a refused one does nothing to
anyone (tests/support/effects.py), and stored data stays consistent.
The frames come from tests/support/fuzz.py; FUZZ_EXAMPLES sets how many per action."""

from __future__ import annotations

import json
import time
import uuid
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from switchboard.wire import all_actions

from tests.integration.conftest import FakeContext, Stack
from tests.integration.test_messaging import Client, new_conversation, send
from tests.integration.test_routes_match_template import template_routes
from tests.support import fuzz
from tests.support.effects import InProcess
from tests.support.events import frame, ws_event

# One xdist worker runs the whole module (make test: --dist loadgroup), so the
# consistency check at the end sees what every action's fuzzing did.
pytestmark = [pytest.mark.fuzz, pytest.mark.xdist_group("fuzz-frames")]

# What a connection with an expired token may get: token_expired, or the frame-level
# refusals that come before the caller is looked at (malformed frame, unknown action).
EXPIRED_CODES = {"token_expired", "bad_request", "unknown_action"}

# High enough that the fuzzer reaches the code behind the limits, not only rate_limited.
GENEROUS_LIMITS = {
    "SEND_LIMIT_PER_CONNECTION": "100000",
    "SEND_LIMIT_PER_USER": "100000",
    "CREATE_LIMIT_PER_USER": "100000",
    "SEARCH_LIMIT_PER_USER": "100000",
}


class Target:
    """The fuzzing user (sometimes with the admin role), a conversation they share with
    a peer, the peer's conversation with an outsider, a call and an upload of others (so
    the fuzzer reaches real refusals, not only unknown ids; everyone is connected, so a
    push a refusal should not make would be a real post), and the handler module of
    every function that serves actions."""

    def __init__(self, stack: Stack) -> None:
        self.routes = template_routes(stack)
        self.users_table = stack.table("UsersTable")
        self.modules: dict[str, ModuleType] = {}
        for function in {f for key, f in self.routes.items() if f and not key.startswith("$")}:
            self.modules[function] = stack.handler(function, **GENEROUS_LIMITS)
        connect = self.modules["ConnectionFunction"]
        message = self.modules["MessageFunction"]
        tag = uuid.uuid4().hex[:6]
        self.user = Client(stack, message, connect, f"fuzzer-{tag}")
        self.peer = Client(stack, message, connect, f"peer-{tag}")
        self.outsider = Client(stack, message, connect, f"outsider-{tag}")
        self.conversation = new_conversation(self.user, self.peer)
        send(self.peer, self.conversation, "hello")
        foreign = new_conversation(self.peer, self.outsider)
        send(self.outsider, foreign, "not for the fuzzer")
        self.known = {
            "conversationId": [self.conversation, foreign],
            "userId": [self.peer.user_id, self.user.user_id],
            "calleeId": [self.peer.user_id],
        }
        self.names = {
            self.user.connection_id: "the fuzzer",
            self.peer.connection_id: "the peer",
            self.outsider.connection_id: "the outsider",
        }
        self.frames = 0
        start = {"fileName": "a.png", "contentType": "image/png", "size": 2048}
        own = self._as(self.user, "upload:start", start)["uploadId"]
        self.known["uploadId"] = [own, self._as(self.peer, "upload:start", start)["uploadId"]]
        invite = {
            "calleeId": self.outsider.user_id,
            "media": "audio",
            "offer": {"type": "offer", "sdp": "v=0\r\n"},
        }
        self.known["callId"] = [self._as(self.peer, "call:initiate", invite)["callId"]]

    def _as(self, client: Client, action: str, data: dict[str, Any]) -> dict[str, Any]:
        """A setup request by someone else than the fuzzer."""
        module = self.modules[self.routes[action] or ""]
        event = ws_event(
            action,
            body=frame(action, data),
            connection_id=client.connection_id,
            user_id=client.user_id,
        )
        reply = json.loads(module.lambda_handler(event, FakeContext())["body"])
        assert reply["ok"], reply
        result: dict[str, Any] = reply["data"]
        return result

    def invoke(
        self, action: str, raw: str, admin: bool, *, expired: bool = False
    ) -> dict[str, Any]:
        route = action if action in self.routes else "$default"
        module = self.modules[self.routes[route] or "ConnectionFunction"]
        event = ws_event(
            route,
            body=raw,
            connection_id=self.user.connection_id,
            user_id=self.user.user_id,
            roles="admin" if admin else "",
            token_exp=int(time.time()) - 60 if expired else None,
        )
        window = InProcess().window(self.names)
        response = module.lambda_handler(event, FakeContext())
        self.frames += 1
        assert response["statusCode"] == 200
        reply = fuzz.check_reply(raw, response["body"])
        details = {} if reply["ok"] else reply["error"].get("details")
        if isinstance(details, dict) and details.get("reason") in ("busy", "already_in_call"):
            # call:initiate schedules its ring timeout before storing the call (so that no
            # stored call can lose it); a refused attempt leaves that one no-op message,
            # and busy also records the attempt (holding nobody) for the call statistics.
            # Nothing else, and no push to anyone.
            expected = ["SendMessage"] + (["PutItem"] if details["reason"] == "busy" else [])
            assert [e["operation"] for e in window.effects()] == expected, raw[:300]
        elif not reply["ok"] and reply["error"]["message"] == "wrong or expired code":
            # A wrong e-mail code is counted (five void the code: no brute force), on the
            # caller's own Users item; nothing else happens.
            assert [(e["operation"], e["target"]) for e in window.effects()] == [
                ("UpdateItem", self.users_table)
            ], raw[:300]
        elif not reply["ok"]:
            window.assert_nothing_happened(f"{raw[:300]!r} ({reply['error']})")
        if expired and action != "auth:refresh":
            # An expired connection reaches nothing: refused before the data is read.
            assert not reply["ok"], reply
            assert reply["error"]["code"] in EXPIRED_CODES, reply
        return reply


@pytest.fixture(scope="module")
def target(stack: Stack) -> Target:
    return Target(stack)


@pytest.mark.parametrize("action", sorted(all_actions()))
def test_every_hostile_frame_gets_one_typed_reply(target: Target, action: str) -> None:
    @settings(
        max_examples=fuzz.EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        raw=fuzz.frames(action, target.known),
        admin=st.booleans(),
        expired=st.sampled_from([False, False, False, True]),
    )
    def run(raw: str, admin: bool, expired: bool) -> None:
        target.invoke(action, raw, admin, expired=expired)

    before = target.frames
    run()
    assert target.frames - before >= min(fuzz.EXAMPLES, 10), "fuzzing did not run"


def test_stored_data_is_consistent_after_fuzzing(target: Target, stack: Stack) -> None:
    """Runs after the fuzzing above (same module): the shared conversation still has
    gapless seqs 1..lastSeq, every stored message is well-formed, and the connection
    still works for a normal send."""
    print(f"fuzzed {target.frames} frames over {len(all_actions())} actions")
    assert send(target.user, target.conversation, "still here")["seq"] > 1
    history = target.user.ok("message:history", {"conversationId": target.conversation})
    last = history["lastSeq"]
    seen: list[int] = []
    before = None
    while True:
        page = target.user.ok(
            "message:history",
            {"conversationId": target.conversation, "limit": 100}
            | ({"beforeSeq": before} if before else {}),
        )
        seen = [m["seq"] for m in page["messages"]] + seen
        for message in page["messages"]:
            assert isinstance(message["body"], str)
            json.dumps(message)
        if not page["hasMore"]:
            break
        before = page["messages"][0]["seq"]
    assert seen == list(range(1, last + 1))
