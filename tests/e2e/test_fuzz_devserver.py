"""Fuzzing through the devserver: batches of hostile frames for random actions on one real
WebSocket. Every frame gets exactly one reply (typed, never ``internal``), nothing hangs,
and the connection stays usable afterwards."""

from __future__ import annotations

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

pytestmark = [pytest.mark.e2e, pytest.mark.fuzz]

TIMEOUT = 20.0
FRAMES_PER_BATCH = 25
# Bigger messages close the socket (1009), tested elsewhere; bigger frames too, so a long
# message goes as API Gateway wants it, in frames of at most 32 KB (8192 characters).
MAX_MESSAGE_BYTES = 128 * 1024
FRAGMENT_CHARS = 8192


def _frames(raw: str) -> str | list[str]:
    if len(raw) <= FRAGMENT_CHARS:
        return raw
    return [raw[i : i + FRAGMENT_CHARS] for i in range(0, len(raw), FRAGMENT_CHARS)]


def _reply(ws: ClientConnection) -> dict[str, Any]:
    """The next reply frame (pushes in between are skipped); fails rather than hangs."""
    while True:
        frame: dict[str, Any] = json.loads(ws.recv(timeout=TIMEOUT))
        if frame.get("type") == "reply":
            return frame


def _call(ws: ClientConnection, action: str, data: dict[str, Any]) -> dict[str, Any]:
    ws.send(json.dumps({"action": action, "id": "setup", "data": data}))
    reply = _reply(ws)
    assert reply["ok"], reply
    result: dict[str, Any] = reply["data"]
    return result


def test_hostile_frames_through_the_devserver(devserver: RunningDevserver) -> None:
    user, peer = f"fuzz-{uuid.uuid4().hex[:6]}", f"peer-{uuid.uuid4().hex[:6]}"
    with connect(devserver.url(devserver.token(user)), open_timeout=TIMEOUT) as ws:
        conversation = _call(ws, "conversation:create", {"members": [peer]})["conversationId"]
    known = {"conversationId": [conversation], "userId": [peer], "calleeId": [peer]}
    actions = sorted(all_actions())
    tried = {"frames": 0, "batches": 0}

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
        with connect(
            devserver.url(devserver.token(user)), open_timeout=TIMEOUT, max_size=None
        ) as ws:
            for raw in batch:
                if len(raw.encode()) > MAX_MESSAGE_BYTES:
                    continue
                ws.send(_frames(raw))
                fuzz.check_reply(raw, json.dumps(_reply(ws)))
                tried["frames"] += 1
            # Still usable: a normal request on the same socket works
            ws.send(json.dumps({"action": "ping", "id": "after"}))
            pong = _reply(ws)
            assert pong["id"] == "after" and pong["ok"] and pong["data"]["pong"] is True, pong
        tried["batches"] += 1

    run()
    assert tried["frames"] >= 10, tried
    print(f"devserver fuzz: {tried['frames']} frames in {tried['batches']} batches")
