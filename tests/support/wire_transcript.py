"""A wire transcript: one fixed script of actions (sessions, messaging, 1:1 and group calls,
uploads) through the functions in-process on moto, printing every raw reply body and every
pushed frame with ids, timestamps and signatures replaced by stable placeholders. Two
checkouts' transcripts, diffed, show any change a client would see on the wire:

    PYTHONPATH=layers/common:. .venv/bin/python -m tests.support.wire_transcript > a.txt
"""

from __future__ import annotations

import json
import re
from typing import Any

from tests.integration.conftest import FakeContext, local_stack, pushed_frames, token_for
from tests.support.events import frame, ws_event

OFFER = {"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}
ANSWER = {"type": "answer", "sdp": "v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\n"}
CAND = {"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host", "sdpMid": "0"}

seen: dict[str, str] = {}


def norm(text: str) -> str:
    def sub(pattern: str, kind: str, s: str) -> str:
        def repl(m: re.Match[str]) -> str:
            return seen.setdefault(m.group(0), f"<{kind}{len(seen)}>")

        return re.sub(pattern, repl, s)

    text = re.sub(r"https?://[^\"]+", "<URL>", text)
    text = re.sub(r"\b1[6-9]\d{11}\b", "<MS>", text)  # epoch ms
    text = re.sub(r"\b1[6-9]\d{8}\b", "<S>", text)  # epoch s
    text = re.sub(r'"pid": \d+', '"pid": <PID>', text)
    text = re.sub(r"\bcv_[0-9a-f]{32}\b", "cv_<random>", text)
    text = sub(r"\b[0-9a-f]{32}\b", "H", text)
    text = sub(r"\b[A-Za-z0-9_-]{24}\b", "U", text)
    text = re.sub(r'"credential": "[^"]*"', '"credential": "<C>"', text)
    return text


def main() -> None:
    with local_stack() as stack:
        apps = {
            "msg": stack.handler("MessageFunction"),
            "conn": stack.handler("ConnectionFunction"),
            "sig": stack.handler("SignalingFunction"),
            "up": stack.handler("UploadFunction"),
        }
        conns: dict[str, str] = {}

        def connect(user: str, device: str = "d1") -> str:
            cid = f"{user}-{device}"
            apps["conn"].lambda_handler(
                ws_event("$connect", connection_id=cid, user_id=user), FakeContext()
            )
            conns[cid] = user
            return cid

        def call(app: str, cid: str, action: str, data: dict[str, Any] | None = None) -> Any:
            event = ws_event(
                action, body=frame(action, data), connection_id=cid, user_id=conns[cid]
            )
            body = apps[app].lambda_handler(event, FakeContext())["body"]
            print(f"{cid} {action}: {norm(body)}")  # logs go to stdout too: they start with {
            return json.loads(body).get("data")

        a, b, _, c, d = (
            connect("alice"),
            connect("bob"),
            connect("bob", "d2"),
            connect("carol"),
            connect("dave"),
        )
        call("conn", a, "ping")
        call("conn", a, "auth:refresh", {"token": token_for("alice")})
        call("conn", a, "admin:revoke", {"userId": "bob"})
        conv = call(
            "msg",
            a,
            "conversation:create",
            {"members": ["bob"], "title": "Bike", "listingId": "l1"},
        )["conversationId"]
        call("msg", a, "conversation:create", {"members": ["bob"], "listingId": "l1"})
        group = call("msg", a, "conversation:create", {"members": ["bob", "carol", "dave"]})[
            "conversationId"
        ]
        call(
            "msg",
            a,
            "message:send",
            {"conversationId": conv, "clientMessageId": "c1", "body": "hi"},
        )
        call(
            "msg",
            a,
            "message:send",
            {"conversationId": conv, "clientMessageId": "c1", "body": "hi"},
        )
        call(
            "msg",
            b,
            "message:send",
            {"conversationId": conv, "clientMessageId": "c2", "body": "yo"},
        )
        call("msg", a, "conversation:list", {})
        call("msg", b, "message:ack", {"conversationId": conv, "seq": 2})
        call("msg", b, "message:read", {"conversationId": conv, "seq": 2})
        call("msg", b, "message:sync", {"cursors": {conv: 0}})
        call("msg", b, "message:history", {"conversationId": conv})
        call("msg", a, "typing:start", {"conversationId": conv})
        call("msg", a, "typing:stop", {"conversationId": conv})
        call("msg", a, "presence:query", {"userIds": ["bob"]})
        call("msg", a, "preferences:get")
        call("msg", a, "preferences:set", {"emailOnOffline": True, "email": "a@example.com"})
        call("msg", a, "notification:list", {})
        call("msg", a, "notification:read", {"notificationIds": ["x"]})
        call(
            "msg",
            a,
            "message:send",
            {"conversationId": "nope", "clientMessageId": "c9", "body": "x"},
        )
        call("msg", a, "message:send", {"conversationId": conv, "body": 5})
        # calls: 1:1 with a candidate before the answer, a relay, a renegotiation, the end
        cid = call(
            "sig",
            a,
            "call:initiate",
            {"calleeId": "bob", "media": "video", "offer": OFFER, "conversationId": conv},
        )["callId"]
        call("sig", b, "call:get-active")
        call("sig", a, "call:ice-candidate", {"callId": cid, "candidate": CAND})
        call("sig", b, "call:answer", {"callId": cid, "answer": ANSWER})
        call("sig", b, "call:ice-candidate", {"callId": cid, "candidate": CAND})
        call("sig", a, "call:offer", {"callId": cid, "offer": OFFER})
        call("sig", b, "call:answer", {"callId": cid, "answer": ANSWER})
        call("sig", a, "call:get-active")
        call("sig", a, "call:end", {"callId": cid})
        call("sig", a, "call:ice-servers")
        # group call: join, invite, reject, leave
        gid = call(
            "sig",
            a,
            "call:initiate",
            {"calleeIds": ["bob", "carol"], "media": "audio", "conversationId": group},
        )["callId"]
        call("sig", b, "call:join", {"callId": gid})
        call("sig", b, "call:invite", {"callId": gid, "userIds": ["dave"]})
        call("sig", c, "call:reject", {"callId": gid, "reason": "busy now"})
        call("sig", d, "call:join", {"callId": gid})
        call("sig", d, "call:offer", {"callId": gid, "offer": OFFER, "toUserId": "alice"})
        call("sig", a, "call:answer", {"callId": gid, "answer": ANSWER, "toUserId": "dave"})
        call("sig", b, "call:leave", {"callId": gid})
        call("sig", a, "call:end", {"callId": gid})
        call("sig", d, "call:end", {"callId": gid})
        # uploads
        put = call(
            "up", a, "upload:start", {"fileName": "a.png", "contentType": "image/png", "size": 100}
        )
        call("up", a, "upload:get", {"uploadId": put["uploadId"]})
        call("up", a, "upload:complete", {"uploadId": put["uploadId"]})
        call("up", a, "upload:abort", {"uploadId": put["uploadId"]})
        big = call(
            "up",
            a,
            "upload:start",
            {"fileName": "b.pdf", "contentType": "application/pdf", "size": 20 * 1024 * 1024},
        )
        call(
            "up",
            a,
            "upload:part-done",
            {"uploadId": big["uploadId"], "partNumber": 1, "etag": "abc"},
        )
        call("up", a, "upload:abort", {"uploadId": big["uploadId"]})
        for connection in conns:
            for pushed in pushed_frames(connection):
                print(f"PUSH {connection}: {norm(json.dumps(pushed))}")


if __name__ == "__main__":
    main()
