"""Fuzzing through the devserver: batches of hostile frames for random actions on one real
WebSocket. Every frame gets exactly one reply (typed, never ``internal``): its id is
unique and a sentinel request follows it, so an extra reply or a missing one is seen. A
refused frame does nothing to anyone - no push on any connection, no queue message, no
write (tests/support/effects.py) - and the connection stays usable afterwards."""

from __future__ import annotations

import itertools
import json
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from switchboard.wire import all_actions
from websockets.sync.client import ClientConnection, connect

from tests.e2e.conftest import RunningDevserver
from tests.support import fuzz
from tests.support.effects import Devserver

pytestmark = [pytest.mark.e2e, pytest.mark.fuzz]

TIMEOUT = 20.0
FRAMES_PER_BATCH = 25
# Bigger messages close the socket (1009), tested elsewhere; bigger frames too, so a long
# message goes as API Gateway wants it, in frames of at most 32 KB (8192 characters).
MAX_MESSAGE_BYTES = 128 * 1024
FRAGMENT_CHARS = 8192
_sentinels = itertools.count(1)


def _frames(raw: str) -> str | list[str]:
    if len(raw) <= FRAGMENT_CHARS:
        return raw
    return [raw[i : i + FRAGMENT_CHARS] for i in range(0, len(raw), FRAGMENT_CHARS)]


def _replies_until(
    ws: ClientConnection, request_id: str | None, pushes: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Reply frames up to and including the one with ``request_id`` (None: the first
    reply); pushes in between go to ``pushes``. Fails rather than hangs."""
    replies: list[dict[str, Any]] = []
    while True:
        frame: dict[str, Any] = json.loads(ws.recv(timeout=TIMEOUT))
        if frame.get("type") != "reply":
            if pushes is not None:
                pushes.append(frame)
            continue
        replies.append(frame)
        if request_id is None or frame.get("id") == request_id:
            return replies


def _call(ws: ClientConnection, action: str, data: dict[str, Any]) -> dict[str, Any]:
    request_id = f"setup-{uuid.uuid4().hex[:8]}"
    ws.send(json.dumps({"action": action, "id": request_id, "data": data}))
    reply = _replies_until(ws, request_id)[-1]
    assert reply["ok"], reply
    result: dict[str, Any] = reply["data"]
    return result


def _sentinel(
    ws: ClientConnection, pushes: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """A ping after the frame's reply: the replies that arrive before its pong are extra
    replies to the frame, the pushes before it were posted before the ping was answered
    (this connection's frames reach the socket in order)."""
    request_id = f"sentinel-{next(_sentinels)}"
    ws.send(json.dumps({"action": "ping", "id": request_id}))
    *extra, pong = _replies_until(ws, request_id, pushes)
    assert pong["ok"] and pong["data"]["pong"] is True, pong
    return extra


def test_hostile_frames_through_the_devserver(devserver: RunningDevserver) -> None:
    tag = uuid.uuid4().hex[:6]
    user, peer, outsider = f"fuzz-{tag}", f"peer-{tag}", f"outsider-{tag}"
    effects = Devserver(devserver.http)
    tried = {"frames": 0, "batches": 0, "refused": 0}
    # The peer and the outsider stay connected: a push to them (a planted bug's fake
    # typing indicator) is a real post the effect log sees. Their conversation is one the
    # fuzzer may not touch, so the fuzzer reaches real refusals, not only unknown ids.
    with (
        connect(devserver.url(devserver.token(peer)), open_timeout=TIMEOUT) as peer_ws,
        connect(devserver.url(devserver.token(outsider)), open_timeout=TIMEOUT) as outsider_ws,
        connect(devserver.url(devserver.token(user)), open_timeout=TIMEOUT, max_size=None) as ws,
    ):
        conversation = _call(ws, "conversation:create", {"members": [peer]})["conversationId"]
        # The peer accepts: typing (the oracle check below) flows only between contacts.
        _call(peer_ws, "conversation:accept", {"conversationId": conversation})
        foreign = _call(outsider_ws, "conversation:create", {"members": [peer]})
        known = {
            "conversationId": [conversation, foreign["conversationId"]],
            "userId": [peer],
            "calleeId": [peer],
        }
        actions = sorted(all_actions())
        # The oracle sees what it must: a member's typing indicator is a push by a route
        # function to the peer's connection.
        window = effects.window()
        _call(ws, "typing:start", {"conversationId": conversation})
        assert [(e["function"], e["operation"]) for e in window.pushes()] == [
            ("MessageFunction", "PostToConnection")
        ]
        pushes: list[dict[str, Any]] = []
        assert _sentinel(peer_ws, pushes) == []
        typing = [p["data"] for p in pushes if p["type"] == "typing"]
        assert [t["userId"] for t in typing] == [user], pushes

        @settings(
            max_examples=max(3, fuzz.EXAMPLES // 4),
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(
            batch=st.lists(
                st.sampled_from(actions).flatmap(lambda action: fuzz.frames(action, known)),
                min_size=FRAMES_PER_BATCH // 2,
                max_size=FRAMES_PER_BATCH,
            )
        )
        def run(batch: list[str]) -> None:
            for raw in batch:
                if len(raw.encode()) > MAX_MESSAGE_BYTES:
                    continue
                window = effects.window()
                ws.send(_frames(raw))
                (reply,) = _replies_until(ws, None)
                happened = window.effects()  # before the sentinel's own invocation
                fuzz.check_reply(raw, json.dumps(reply))
                extra = _sentinel(ws)
                assert not extra, f"{raw[:300]!r} got more than one reply: {[reply, *extra]}"
                if not reply["ok"]:
                    tried["refused"] += 1
                    details = reply["error"].get("details")
                    reason = details.get("reason") if isinstance(details, dict) else None
                    if reason in ("busy", "already_in_call"):
                        # call:initiate's documented refusal effects (see the in-process
                        # fuzzer): its no-op ring timeout, and busy's statistics record
                        allowed = ["SendMessage"] + (["PutItem"] if reason == "busy" else [])
                        ops = [e["operation"] for e in happened]
                        assert ops == allowed, f"refused {raw[:300]!r} had effects: {happened}"
                    else:
                        assert not happened, f"refused {raw[:300]!r} had effects: {happened}"
                tried["frames"] += 1
            tried["batches"] += 1

        run()
        # The peer's socket got whatever the fuzzer's allowed frames pushed, and still works.
        assert _sentinel(peer_ws) == [] and _sentinel(outsider_ws) == []
    assert tried["frames"] >= 10 and tried["refused"] >= 1, tried
    print(f"devserver fuzz: {tried}")
