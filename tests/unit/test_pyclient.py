"""The Python client's reconnect / resume / de-duplication / backoff / request-reply logic,
against a real local `websockets` server written here that speaks Switchboard's frames
and is scripted per test: it drops connections, refuses handshakes, stays silent, pushes
duplicates and out-of-order messages. Nothing of the client is mocked. Every wait is
bounded; no test asserts wall-clock timings."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from switchboard.errors import ErrorCode
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from switchboard_client import (
    ERRORS_BY_CODE,
    AuthenticationFailed,
    Backoff,
    Client,
    ConnectionLost,
    Event,
    Forbidden,
    GatewayError,
    Inbox,
    Message,
    PayloadTooLarge,
    RateLimited,
    RequestTimeout,
    ServerError,
    TokenExpired,
    UnexpectedReply,
    wire,
)

WAIT = 10.0
GOOD_TOKEN = "good-token"


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coroutine, 60))


async def until(predicate: Callable[[], object], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def wired(model: wire.WireModel) -> dict[str, Any]:
    """A reply or push as the server puts it on the wire: built from the client's own
    generated models (switchboard_client.wire), so this scripted server cannot drift
    from the protocol (absent optional fields stay absent)."""
    return model.model_dump(mode="json", exclude_unset=True)


def message(conversation_id: str, seq: int, sender: str = "bob") -> dict[str, Any]:
    return wired(
        wire.Message(
            conversationId=conversation_id,
            seq=seq,
            messageId=f"m-{conversation_id}-{seq}",
            senderId=sender,
            body=f"message {seq}",
            createdAt=1_700_000_000_000 + seq,
            clientMessageId=f"c-{seq}",
        )
    )


class ScriptedServer:
    """Switchboard's side of the wire, in memory, for one user: conversations with gapless
    seqs, idempotent sends, acks, a paged listing, sync with ``hasMore``, and the backlog
    (everything after the acked seq) pushed on connect. Tests script the failures."""

    def __init__(self, *, backlog_on_connect: bool = True) -> None:
        self.messages: dict[str, list[dict[str, Any]]] = {}
        self.acked: dict[str, int] = {}
        self.request_ids: set[str] = set()  # conversations listed in the requests folder
        self.sends: dict[tuple[str, str], dict[str, Any]] = {}  # (conv, cmid) -> reply
        self.frames: list[dict[str, Any]] = []  # every request received
        self.connections: list[ServerConnection] = []
        self.handshakes = 0
        self.tokens_seen: list[str] = []
        self.down = False  # refuse handshakes with 503 while True
        self.accepts: Callable[[str], bool] = lambda token: token == GOOD_TOKEN
        self.silent: set[str] = set()  # actions never answered
        self.errors: dict[str, dict[str, Any]] = {}  # action -> error body
        self.replies: dict[str, dict[str, Any]] = {}  # action -> scripted reply data
        self.drop_on: set[str] = set()  # actions that close the socket instead of replying
        self.gateway_fail: set[str] = set()  # processed, then API Gateway's error frame
        self.backlog_on_connect = backlog_on_connect
        self.duplicate_backlog = False
        self.backlog_batched = False  # whether a client asked for message:batch frames
        self._server: Server | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> str:
        self._server = await serve(
            self._handle, "127.0.0.1", 0, process_request=self._process_request
        )
        port = self._server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}/dev"

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await asyncio.wait_for(self._server.wait_closed(), WAIT)

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.handshakes += 1
        token = parse_qs(urlsplit(request.path).query).get("token", [""])[0]
        self.tokens_seen.append(token)
        if self.down:
            return connection.respond(503, "Service Unavailable\n")
        if not self.accepts(token):
            return connection.respond(401, '{"message": "Unauthorized"}')
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections.append(ws)
        try:
            if self.backlog_on_connect:
                await self._push_backlog(ws)
            async for raw in ws:
                frame = json.loads(raw)
                self.frames.append(frame)
                action = frame["action"]
                if action in self.drop_on:
                    self.drop_on.discard(action)
                    self._answer(action, frame.get("data") or {})  # processed, reply lost
                    await ws.close(1011, "scripted drop")
                    return
                if action in self.silent:
                    continue
                if action == "keepalive":  # API Gateway's MOCK answer: a pong, no id
                    pong = {"serverTime": int(time.time() * 1000), "connectionId": "x="}
                    await ws.send(json.dumps({"type": "pong", "data": pong}))
                    continue
                if action in self.gateway_fail:
                    self.gateway_fail.discard(action)
                    self._answer(action, frame.get("data") or {})
                    error = {"message": "Internal server error", "connectionId": "x="}
                    await ws.send(json.dumps({**error, "requestId": "r"}))
                    continue
                if action in self.errors:
                    reply = {"type": "reply", "id": frame["id"], "ok": False}
                    reply["error"] = self.errors[action]
                else:
                    data = self._answer(action, frame.get("data") or {})
                    reply = {"type": "reply", "id": frame["id"], "ok": True, "data": data}
                await ws.send(json.dumps(reply))
        except ConnectionClosed:
            pass
        finally:
            self.connections.remove(ws)

    async def _push_backlog(self, ws: ServerConnection) -> None:
        # A client that asks for backlog=batch (ours does) gets message:batch frames of
        # two messages, as the server packs them; any other one message:new frames.
        batched = "backlog=batch" in (ws.request.path if ws.request else "")
        self.backlog_batched = self.backlog_batched or batched
        copies = 2 if self.duplicate_backlog else 1
        for conversation_id, stored in self.messages.items():
            items = stored[self.acked.get(conversation_id, 0) :]
            if batched:
                for start in range(0, len(items), 2):
                    frame = {
                        "type": "message:batch",
                        "data": {"messages": items[start : start + 2]},
                    }
                    for _ in range(copies):
                        await ws.send(json.dumps(frame))
                continue
            for item in items:
                for _ in range(copies):
                    await ws.send(json.dumps({"type": "message:new", "data": item}))

    # ------------------------------------------------------------------ the protocol
    def _answer(self, action: str, data: dict[str, Any]) -> dict[str, Any]:
        if action in self.replies:
            return self.replies[action]
        if action == "ping":
            return wired(wire.Pong(pong=True, serverTime=0, pid=1, connectionId="scripted="))
        if action == "conversation:list":
            requests = data.get("folder") == "requests"
            ids = sorted(c for c in self.messages if (c in self.request_ids) == requests)
            start = int(data.get("cursor") or 0)
            page = ids[start : start + int(data.get("limit", 20))]
            following = start + len(page)
            return wired(
                wire.ConversationPage(
                    conversations=[
                        wire.ConversationSummary(
                            conversationId=c,
                            title=None,
                            listingId=None,
                            members=["me", "bob"],
                            lastSeq=len(self.messages[c]),
                            lastMessage=None,
                            lastActivityAt=0,
                            ackedSeq=self.acked.get(c, 0),
                            readSeq=0,
                            unread=len(self.messages[c]),
                            request=c in self.request_ids,
                        )
                        for c in page
                    ],
                    cursor=str(following) if following < len(ids) else None,
                )
            )
        if action == "message:sync":
            out: dict[str, wire.SyncedConversation] = {}
            limit = int(data.get("limit", 100))
            for conversation_id, after in data["cursors"].items():
                history = self.messages[conversation_id]
                batch = history[after : after + limit]
                shown = batch[-1]["seq"] if batch else after
                out[conversation_id] = wire.SyncedConversation(
                    lastSeq=len(history),
                    messages=[wire.Message.model_validate(m) for m in batch],
                    hasMore=shown < len(history),
                )
            return wired(wire.SyncResult(conversations=out))
        if action in ("message:ack", "message:read"):
            conversation_id = data["conversationId"]
            seq = min(int(data["seq"]), len(self.messages[conversation_id]))
            moved = seq > self.acked.get(conversation_id, 0)
            if moved:
                self.acked[conversation_id] = seq
            return wired(wire.CursorMoved(conversationId=conversation_id, seq=seq, moved=moved))
        if action == "message:send":
            key = (data["conversationId"], data["clientMessageId"])
            if key not in self.sends:
                stored = self.messages.setdefault(data["conversationId"], [])
                item = message(data["conversationId"], len(stored) + 1, sender="me")
                item["body"] = data["body"]
                item["clientMessageId"] = data["clientMessageId"]
                stored.append(item)
                self.sends[key] = wired(
                    wire.MessageSent(
                        seq=item["seq"], messageId=item["messageId"], createdAt=item["createdAt"]
                    )
                )
            return self.sends[key]
        if action == "auth:refresh":
            return wired(wire.TokenRefreshed(expiresAt=2_000_000_000))
        if action in ("typing:start", "typing:stop"):
            return wired(wire.TypingSent(sent=True))
        if action == "preferences:verify-email":
            verified = data["code"] == "012345"
            view = wire.PreferencesView(
                emailOnOffline=True,
                email="me@example.com",
                emailVerified=verified,
                digestMinutes=15,
            )
            return wired(view)
        return {"echo": data}

    # ------------------------------------------------------------------ scripting
    def store(self, conversation_id: str, count: int) -> list[dict[str, Any]]:
        stored = self.messages.setdefault(conversation_id, [])
        for _ in range(count):
            stored.append(message(conversation_id, len(stored) + 1))
        return stored

    async def push(self, conversation_id: str, *seqs: int) -> None:
        for seq in seqs:
            item = self.messages[conversation_id][seq - 1]
            for ws in list(self.connections):
                await ws.send(json.dumps({"type": "message:new", "data": item}))

    async def drop_all(self) -> None:
        for ws in list(self.connections):
            await ws.close(1011, "scripted drop")

    def requests(self, action: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["action"] == action]


def client_for(url: str, **options: Any) -> Client:
    options.setdefault("backoff", Backoff(base=0.01, cap=0.05, rng=random.Random(1)))
    options.setdefault("gap_fill_delay", 30.0)  # tests that want a sync lower it
    return Client(url, GOOD_TOKEN, **options)


async def with_server(
    scenario: Callable[[ScriptedServer, str], Awaitable[None]], **options: Any
) -> None:
    server = ScriptedServer(**options)
    url = await server.start()
    try:
        await scenario(server, url)
    finally:
        await server.stop()


async def seqs_from(stream: Any, count: int) -> list[int]:
    got = []
    for _ in range(count):
        event = await stream.get(timeout=WAIT)
        assert event.message is not None
        got.append(event.message.seq)
    return got


# ---------------------------------------------------------------------- request / reply
def test_replies_resolve_requests_and_error_replies_raise_typed_errors() -> None:
    async def scenario(server: ScriptedServer, url: str) -> None:
        server.errors["presence:query"] = {
            "code": "forbidden",
            "message": "presence is visible only for people you share a conversation with",
        }
        server.errors["preferences:set"] = {
            "code": "rate_limited",
            "message": "slow down",
            "details": {"retryAfterMs": 1500},
        }
        server.errors["future:thing"] = {"code": "teapot", "message": "new code"}
        async with client_for(url) as client:
            assert (await client.ping()).pong is True
            # Given an error reply, when awaited, then the typed exception carries the code.
            with pytest.raises(Forbidden) as forbidden:
                await client.query_presence(["stranger"])
            assert forbidden.value.code == "forbidden"
            assert forbidden.value.action == "presence:query"
            with pytest.raises(RateLimited) as limited:
                await client.set_preferences(digest_minutes=5)
            assert limited.value.retry_after == 1.5
            with pytest.raises(ServerError) as unknown:
                await client.request("future:thing")
            assert unknown.value.code == "teapot"
            verified = await client.verify_email("012345")
            assert verified.emailVerified is True
            assert server.frames[-1]["action"] == "preferences:verify-email"
            assert server.frames[-1]["data"] == {"code": "012345"}
            # Replies are matched by id, not by order.
            results = await asyncio.gather(*(client.request("x", {"n": n}) for n in range(20)))
            assert [r["echo"]["n"] for r in results] == list(range(20))
            ids = [f["id"] for f in server.frames if f["action"] == "x"]
            assert len(set(ids)) == 20

    run(with_server(scenario))


def test_replies_are_typed_and_a_reply_off_the_contract_is_refused() -> None:
    async def scenario(server: ScriptedServer, url: str) -> None:
        server.store("c1", 2)
        async with client_for(url) as client:
            # A reply parses into the action's generated model ...
            page = await client.list_conversations()
            assert isinstance(page, wire.ConversationPage)
            assert [c.conversationId for c in page.conversations] == ["c1"]
            assert page.conversations[0].lastSeq == 2
            # ... and one that does not match the contract raises, typed.
            server.replies["preferences:get"] = {"emailOnOffline": "maybe"}
            with pytest.raises(UnexpectedReply, match="PreferencesView"):
                await client.get_preferences()

    run(with_server(scenario))


def test_client_error_classes_cover_every_server_error_code() -> None:
    assert set(ERRORS_BY_CODE) == {code.value for code in ErrorCode}


def test_a_request_without_reply_times_out_and_the_client_stays_usable() -> None:
    async def scenario(server: ScriptedServer, url: str) -> None:
        server.silent.add("message:history")
        async with client_for(url) as client:
            with pytest.raises(RequestTimeout):
                await client.request("message:history", {"conversationId": "c"}, timeout=0.2)
            assert (await client.ping()).pong is True
            assert client.stats.connections == 1

    run(with_server(scenario))


def test_a_frame_over_the_message_limit_is_refused_locally_and_big_ones_are_fragmented() -> None:
    async def scenario(server: ScriptedServer, url: str) -> None:
        async with client_for(url) as client:
            with pytest.raises(PayloadTooLarge):
                await client.request("x", {"blob": "a" * (130 * 1024)})
            # 60 KB goes out in fragments of <= 32 KB; the server reassembles it.
            reply = await client.request("x", {"blob": "é" * 30_000})
            assert reply["echo"]["blob"] == "é" * 30_000

    run(with_server(scenario))


# ---------------------------------------------------------------------- de-duplication
def test_duplicate_and_reordered_pushes_are_delivered_once_in_seq_order_and_acked() -> None:
    async def scenario(server: ScriptedServer, url: str) -> None:
        server.messages["c1"] = []
        async with client_for(url) as client, client.events("message:new") as stream:
            server.store("c1", 3)
            # When the wire carries 1, 1, 3, 2, 3 ...
            await server.push("c1", 1, 1, 3, 2, 3)
            # ... then the application sees 1, 2, 3 once each, in order.
            assert await seqs_from(stream, 3) == [1, 2, 3]
            await until(lambda: server.acked.get("c1") == 3)
            assert client.duplicates_dropped == 2
            assert client.cursors == {"c1": 3}
            assert server.requests("message:sync") == []  # the late push filled the gap
            with pytest.raises(TimeoutError):
                await stream.get(timeout=0.2)

    run(with_server(scenario))


def test_a_gap_no_push_fills_is_filled_by_message_sync_from_the_cursor() -> None:
    async def scenario(server: ScriptedServer, url: str) -> None:
        server.messages["c1"] = []
        async with client_for(url, gap_fill_delay=0.05) as client:
            async with client.events("message:new") as stream:
                server.store("c1", 3)
                await server.push("c1", 1, 3)  # 2's push is lost
                assert await seqs_from(stream, 3) == [1, 2, 3]
            syncs = server.requests("message:sync")
            assert [s["data"]["cursors"] for s in syncs] == [{"c1": 1}]
            assert client.duplicates_dropped == 1  # 3 came by push and by sync

    run(with_server(scenario))


# ---------------------------------------------------------------------- reconnect / resume
def test_after_a_drop_the_client_reconnects_with_backoff_and_resumes_every_message_once() -> None:
    async def scenario(server: ScriptedServer, url: str) -> None:
        server.messages["c1"] = []
        server.silent.add("message:history")
        async with client_for(url) as client, client.events() as stream:
            server.store("c1", 3)
            await server.push("c1", 1, 2, 3)
            await until(lambda: server.acked.get("c1") == 3)

            # Given a request in flight, when the server drops the connection and refuses
            # the next handshakes while messages 4-6 arrive, ...
            pending = asyncio.ensure_future(
                client.request("message:history", {"conversationId": "c1"})
            )
            await until(lambda: server.requests("message:history"))
            server.down = True
            server.duplicate_backlog = True  # ... and the backlog comes twice on reconnect
            await server.drop_all()
            with pytest.raises(ConnectionLost):
                await pending
            server.store("c1", 3)
            refused = server.handshakes
            await until(lambda: server.handshakes >= refused + 3)
            server.down = False

            # ... then the client reconnects by itself and delivers 4, 5, 6 once, in order.
            events: list[Event] = []
            while len([e for e in events if e.message]) < 6:
                events.append(await stream.get(timeout=WAIT))
            kinds = [e.type for e in events]
            assert "client:disconnected" in kinds
            assert "client:reconnecting" in kinds
            assert [e.message.seq for e in events if e.message] == [1, 2, 3, 4, 5, 6]
            assert kinds.index("client:disconnected") < kinds.index("client:reconnecting")
            await until(lambda: server.acked.get("c1") == 6)
            assert server.backlog_batched  # 4-6 came as message:batch frames (twice)
            assert client.stats.connections == 2
            assert client.stats.failed_attempts >= 3
            # the backlog pushed 4-6 twice (and the resume's sync may have fetched them too)
            assert client.duplicates_dropped >= 3
            with pytest.raises(TimeoutError):
                while True:  # nothing else but connection events
                    extra = await stream.get(timeout=0.2)
                    assert extra.message is None, extra

    run(with_server(scenario))


def test_resume_without_a_server_backlog_still_gets_everything_by_sync() -> None:
    async def scenario(server: ScriptedServer, url: str) -> None:
        server.store("c1", 2)
        server.store("c2", 150)  # more than one sync page (limit 100)
        server.acked["c2"] = 10
        client = client_for(url)
        # Subscribed before connecting: the resume delivers during connect().
        async with client.events("message:new") as stream, client:
            got: dict[str, list[int]] = {"c1": [], "c2": []}
            for _ in range(2 + 140):
                event = await stream.get(timeout=WAIT)
                assert event.message is not None
                got[event.message.conversation_id].append(event.message.seq)
            assert got == {"c1": [1, 2], "c2": list(range(11, 151))}
            await until(lambda: server.acked == {"c1": 2, "c2": 150})

    run(with_server(scenario, backlog_on_connect=False))


def test_the_resume_syncs_message_requests_too() -> None:
    async def scenario(server: ScriptedServer, url: str) -> None:
        server.store("c1", 1)
        server.store("r1", 2)  # a stranger's conversation: listed only under "requests"
        server.request_ids.add("r1")
        client = client_for(url)
        async with client.events("message:new") as stream, client:
            got = set()
            for _ in range(3):
                event = await stream.get(timeout=WAIT)
                assert event.message is not None
                got.add((event.message.conversation_id, event.message.seq))
            assert got == {("c1", 1), ("r1", 1), ("r1", 2)}
        folders = [
            f["data"].get("folder") for f in server.frames if f["action"] == "conversation:list"
        ]
        assert folders == [None, "requests"]

    run(with_server(scenario, backlog_on_connect=False))


def test_a_client_given_saved_cursors_resumes_exactly_there() -> None:
    async def scenario(server: ScriptedServer, url: str) -> None:
        server.store("c1", 5)  # the server's acked is 0 (another device never acked)
        client = client_for(url, cursors={"c1": 2})
        async with client.events("message:new") as stream, client:
            assert await seqs_from(stream, 3) == [3, 4, 5]
            assert client.duplicates_dropped >= 2  # 1 and 2 of the backlog push
            with pytest.raises(TimeoutError):
                await stream.get(timeout=0.2)

    run(with_server(scenario))


def test_a_send_whose_reply_is_lost_is_retried_after_reconnect_and_stored_once() -> None:
    async def scenario(server: ScriptedServer, url: str) -> None:
        server.messages["c1"] = []
        server.drop_on.add("message:send")  # stored, then the socket dies before the reply
        async with client_for(url) as client:
            sent = await client.send_message("c1", "hello", client_message_id="cm-1")
            assert sent.seq == 1
            attempts = server.requests("message:send")
            assert [a["data"]["clientMessageId"] for a in attempts] == ["cm-1", "cm-1"]
            assert len(server.messages["c1"]) == 1
            assert client.stats.connections == 2
            # Its own message is not handed back to the application by the resume.
            assert client.cursors == {"c1": 1}
            assert client.stats.delivered == 0

    run(with_server(scenario))


def test_an_api_gateway_error_frame_fails_the_waiting_requests_and_sends_are_retried() -> None:
    async def scenario(server: ScriptedServer, url: str) -> None:
        server.messages["c1"] = []
        async with client_for(url) as client:
            server.gateway_fail.add("x")
            with pytest.raises(GatewayError) as failed:
                await client.request("x")
            assert failed.value.code == "gateway_error"
            server.gateway_fail.add("message:send")
            sent = await client.send_message("c1", "hello", client_message_id="cm-2")
            assert sent.seq == 1 and len(server.messages["c1"]) == 1
            assert len(server.requests("message:send")) == 2
            assert client.stats.connections == 1

    run(with_server(scenario))


def test_an_error_frame_with_several_requests_waiting_fails_none_of_them_at_once() -> None:
    async def scenario(server: ScriptedServer, url: str) -> None:
        async with client_for(url) as client:
            server.gateway_fail.add("x")
            # Which request died is unknown: the other gets its real reply, the dead one
            # runs into its own timeout (instead of both failing, and both being retried).
            dead, alive = await asyncio.gather(
                client.request("x", timeout=1.0), client.ping(), return_exceptions=True
            )
            assert isinstance(dead, RequestTimeout), dead
            assert isinstance(alive, wire.Pong) and alive.pong is True

    run(with_server(scenario))


def test_a_refused_token_stops_the_client_and_a_token_provider_gets_one_more_try() -> None:
    async def scenario(server: ScriptedServer, url: str) -> None:
        client = Client(url, "forged", backoff=Backoff(base=0.01, cap=0.05))
        with pytest.raises(AuthenticationFailed) as failed:
            await client.connect()
        assert failed.value.status == 401
        assert server.handshakes == 1  # a static token is not retried
        with pytest.raises(AuthenticationFailed):
            await client.ping()
        await client.close()

        tokens = iter(["expired", GOOD_TOKEN])
        async with Client(url, lambda: next(tokens)) as refreshed:
            assert (await refreshed.ping()).pong is True
        assert server.tokens_seen[-2:] == ["expired", GOOD_TOKEN]

    run(with_server(scenario))


def test_token_expired_is_refreshed_in_place_or_else_by_reconnecting() -> None:
    async def scenario(server: ScriptedServer, url: str) -> None:
        server.errors["message:history"] = {"code": "token_expired", "message": "expired"}
        calls = []

        async def provide() -> str:
            calls.append(1)
            return GOOD_TOKEN

        async with Client(url, provide, backoff=Backoff(base=0.01, cap=0.05)) as client:
            # Given an expired connection token, the failed request raises TokenExpired
            # and the client sends auth:refresh with the provider's next token.
            with pytest.raises(TokenExpired):
                await client.history("c1")
            await until(lambda: server.requests("auth:refresh"))
            assert server.requests("auth:refresh")[0]["data"] == {"token": GOOD_TOKEN}
            assert client.stats.connections == 1
            # When the refresh is refused too, the client reconnects.
            server.errors["auth:refresh"] = {"code": "unauthorized", "message": "revoked"}
            with pytest.raises(TokenExpired):
                await client.history("c1")
            await until(lambda: client.stats.connections == 2 and client.connected)
            assert len(calls) == 4  # connect, refresh, refresh, reconnect

    run(with_server(scenario))


def test_a_token_provider_token_is_refreshed_before_it_expires() -> None:
    async def scenario(server: ScriptedServer, url: str) -> None:
        server.accepts = lambda token: True

        def jwt_expiring_soon() -> str:
            claims = {"sub": "me", "exp": time.time() + 0.5}
            payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode()
            return f"e30.{payload.rstrip('=')}.sig"

        async with Client(url, jwt_expiring_soon, refresh_margin=1.0):
            await until(lambda: len(server.requests("auth:refresh")) >= 2)
        tokens = [r["data"]["token"] for r in server.requests("auth:refresh")]
        assert len(set(tokens)) == len(tokens)  # a new token each time

    run(with_server(scenario))


def test_keepalive_pings_and_a_silent_server_is_replaced_by_a_new_connection() -> None:
    async def scenario(server: ScriptedServer, url: str) -> None:
        # Keep-alives every 50 ms, but a pong may take its time on a loaded 2-core machine:
        # the 3 s timeout only decides how long the silent phase below takes to be noticed.
        async with client_for(url, keepalive_interval=0.05, keepalive_timeout=3.0) as client:
            await until(lambda: len(server.requests("keepalive")) >= 3)
            # the id-less pongs kept the connection: no reconnect, no ping (Lambda) request
            assert client.stats.connections == 1
            assert not server.requests("ping")
            assert all("id" not in frame for frame in server.requests("keepalive"))
            server.silent.add("keepalive")  # a half-dead connection: frames go nowhere
            await until(lambda: client.stats.connections >= 2)

    run(with_server(scenario))


# ---------------------------------------------------------------------- backoff
def test_backoff_grows_exponentially_with_full_jitter_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(base=0.5, factor=2, cap=8, rng=random.Random(42))
    assert [backoff.ceiling(n) for n in range(7)] == [0.5, 1, 2, 4, 8, 8, 8]
    assert backoff.ceiling(10_000) == 8  # no overflow
    for round_ in range(200):
        backoff.reset()
        delays = [backoff.next_delay() for _ in range(7)]
        for n, delay in enumerate(delays):
            assert 0 <= delay <= backoff.ceiling(n), (round_, n, delay)
    # Full jitter: the draws spread over the whole window (not all near the ceiling).
    draws = [Backoff(cap=8, rng=random.Random(s), attempt=4).next_delay() for s in range(200)]
    assert min(draws) < 2 < 6 < max(draws)
    with pytest.raises(ValueError):
        Backoff(base=0)


def test_reconnect_attempts_use_growing_delays_until_a_connection_resets_them() -> None:
    async def scenario(server: ScriptedServer, url: str) -> None:
        server.down = True
        backoff = Backoff(base=0.01, factor=2, cap=0.08, rng=random.Random(3))
        client = Client(url, GOOD_TOKEN, backoff=backoff)
        delays: list[float] = []
        client.on("client:reconnecting", lambda e: delays.append(e.data["delay"]))
        connecting = asyncio.ensure_future(client.connect(timeout=WAIT))
        await until(lambda: len(delays) >= 6)
        server.down = False
        await connecting
        assert all(0 <= d <= backoff.ceiling(n) for n, d in enumerate(delays))
        assert backoff.attempt == 0  # reset by the healthy connection
        await client.close()

    run(with_server(scenario))


# ---------------------------------------------------------------------- typing
def test_typing_start_is_throttled_and_stop_is_sent_once_and_after_idle() -> None:
    async def scenario(server: ScriptedServer, url: str) -> None:
        now = [100.0]
        async with client_for(url, clock=lambda: now[0], typing_idle=30) as client:
            assert await client.typing("c1") is True
            assert await client.typing("c1") is False
            now[0] += 1.0
            assert await client.typing("c1") is False
            now[0] += 1.6  # past the 2.5 s interval
            assert await client.typing("c1") is True
            assert len(server.requests("typing:start")) == 2
            assert await client.stop_typing("c1") is True
            assert await client.stop_typing("c1") is False
            assert len(server.requests("typing:stop")) == 1

        now[0] += 10
        async with client_for(url, clock=lambda: now[0], typing_idle=0.05) as client:
            assert await client.typing("c2") is True
            await until(
                lambda: any(
                    f["data"]["conversationId"] == "c2" for f in server.requests("typing:stop")
                )
            )

    run(with_server(scenario))


# ---------------------------------------------------------------------- the inbox itself
def test_inbox_holds_unknown_conversations_until_seeded_and_counts_own_sends() -> None:
    inbox = Inbox()
    m = {seq: Message.from_wire(message("c", seq)) for seq in range(1, 8)}
    # Unknown conversation, seq 5 first: it cannot know whether 1-4 are missing.
    assert inbox.accept(m[5]) == []
    assert inbox.seed("c", 3) == []  # the server's ackedSeq: 4 is still missing
    assert inbox.gaps() == {"c": 3}
    assert inbox.accept(m[4]) == [m[4], m[5]]
    assert inbox.record_own("c", 6) == []  # own send: handled, not delivered
    assert inbox.accept(m[6]) == []  # its push to this device is a duplicate
    assert inbox.accept(m[7]) == [m[7]]
    assert inbox.accept(m[2]) == []
    assert inbox.cursors == {"c": 7}
    assert inbox.duplicates == 2
    # After the listing, conversations nobody listed are new: they start at 0.
    other = Inbox()
    assert other.accept(Message.from_wire(message("n", 2))) == []
    other.seed_unseeded_at_zero()
    assert other.gaps() == {"n": 0}
    with pytest.raises(ValueError):
        Message.from_wire({"conversationId": "c", "seq": "1"})
