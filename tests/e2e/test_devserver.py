"""The devserver against the real template.yaml, spoken to like a user's client would."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import jwt
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from devserver import DEV_JWT_SECRET
from devserver.websocket_api import MAX_FRAME_BYTES, MAX_MESSAGE_BYTES

from .clients import befriend
from .conftest import RunningDevserver, StartDevserver

pytestmark = pytest.mark.e2e

TIMEOUT = 10.0
# A connect may start the authorizer's and the connection function's first workers.
CONNECT_TIMEOUT = 30.0


def _connect(uri: str, **kwargs: Any) -> Any:
    kwargs.setdefault("open_timeout", CONNECT_TIMEOUT)
    return websockets.connect(uri, **kwargs)


def _user() -> str:
    return f"user-{uuid.uuid4().hex[:10]}"


def _connection_ids(ds: RunningDevserver, user_id: str) -> list[str]:
    table = ds.resources["ConnectionsTable"]
    items = ds.aws("dynamodb").query(
        TableName=table,
        IndexName="byUser",
        KeyConditionExpression="userId = :u",
        ExpressionAttributeValues={":u": {"S": user_id}},
    )["Items"]
    return [i["connectionId"]["S"] for i in items]


def _has_item(ds: RunningDevserver, connection_id: str) -> bool:
    item = ds.aws("dynamodb").get_item(
        TableName=ds.resources["ConnectionsTable"],
        Key={"connectionId": {"S": connection_id}},
        ConsistentRead=True,
    )
    return "Item" in item


async def _wait_for(predicate: Any, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(predicate):
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def _request(ws: Any, frame: dict[str, Any] | str | list[str]) -> dict[str, Any]:
    # A list is one message in several frames (fragments).
    await ws.send(json.dumps(frame) if isinstance(frame, dict) else frame)
    reply: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    return reply


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _bad_tokens(user: str) -> dict[str, str | None]:
    now = int(time.time())
    good = {"sub": user, "roles": [], "iat": now, "nbf": now, "exp": now + 600}
    valid = jwt.encode(good, DEV_JWT_SECRET, algorithm="HS256")
    header, _, signature = valid.split(".")
    return {
        "missing": None,
        "garbage": "not-a-jwt",
        "expired": jwt.encode(
            {**good, "iat": now - 7200, "nbf": now - 7200, "exp": now - 3600},
            DEV_JWT_SECRET,
            algorithm="HS256",
        ),
        "nbf-future": jwt.encode(
            {**good, "nbf": now + 3600, "exp": now + 7200}, DEV_JWT_SECRET, algorithm="HS256"
        ),
        "other-key": jwt.encode(good, "another-signing-key-of-at-least-32-bytes!!", "HS256"),
        "alg-none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(good)}.",
        "tampered": f"{header}.{_b64({**good, 'roles': ['admin']})}.{signature}",
    }


# ---------------------------------------------------------------------- handshake
async def test_valid_token_connects_and_writes_connection_item(
    devserver: RunningDevserver,
) -> None:
    user = _user()
    async with _connect(devserver.url(devserver.token(user))) as ws:
        reply = await _request(ws, {"action": "ping", "id": "1"})
        assert reply["type"] == "reply"
        assert reply["id"] == "1"
        assert reply["ok"] is True
        assert len(await asyncio.to_thread(_connection_ids, devserver, user)) == 1


@pytest.mark.parametrize(
    "kind", ["missing", "garbage", "expired", "nbf-future", "other-key", "alg-none", "tampered"]
)
async def test_bad_token_is_refused_at_handshake_and_nothing_is_written(
    devserver: RunningDevserver, kind: str
) -> None:
    user = _user()
    token = _bad_tokens(user)[kind]
    with pytest.raises(InvalidStatus) as refused:
        async with _connect(devserver.url(token)):
            pass
    expected = {401} if kind == "missing" else {401, 403}
    assert refused.value.response.status_code in expected
    assert await asyncio.to_thread(_connection_ids, devserver, user) == []


# ---------------------------------------------------------------------- routes
async def test_unknown_action_and_bad_json_get_error_replies_and_connection_survives(
    devserver: RunningDevserver,
) -> None:
    async with _connect(devserver.url(devserver.token(_user()))) as ws:
        unknown = await _request(ws, {"action": "no-such-action", "id": "u1"})
        assert unknown["ok"] is False
        assert unknown["error"]["code"] == "unknown_action"
        assert unknown["id"] == "u1"

        bad = await _request(ws, "this is {not json")
        assert bad["ok"] is False
        assert bad["error"]["code"] == "bad_request"

        pong = await _request(ws, {"action": "ping", "id": "after"})
        assert pong["ok"] is True
        assert pong["id"] == "after"


async def test_deeply_nested_frame_gets_one_bad_request_reply(
    devserver: RunningDevserver,
) -> None:
    async with _connect(devserver.url(devserver.token(_user()))) as ws:
        # Given the reviewer's frame: 50,000 "[" (under 128 KB, so API Gateway passes it on
        # when it comes, as API Gateway requires, in frames of at most 32 KB)
        deep = await _request(ws, _fragments("[" * 50_000, MAX_FRAME_BYTES))
        # Then it gets exactly one reply, bad_request, from the $default route
        assert deep["ok"] is False
        assert deep["error"]["code"] == "bad_request"
        nested = '{"action": "ping", "id": "n1", "data": {"x": ' + "[" * 50_000 + "}}"
        reply = await _request(ws, _fragments(nested, MAX_FRAME_BYTES))
        assert reply["error"]["code"] == "bad_request"
        # And the next frame's reply is its own (a second reply would arrive first)
        pong = await _request(ws, {"action": "ping", "id": "after"})
        assert pong["id"] == "after"
        assert pong["ok"] is True


async def test_message_over_128_kb_closes_with_1009(devserver: RunningDevserver) -> None:
    async with _connect(devserver.url(devserver.token(_user())), max_size=None) as ws:
        await ws.send("x" * (140 * 1024))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009


async def test_disconnect_removes_connection_item(devserver: RunningDevserver) -> None:
    user = _user()
    async with _connect(devserver.url(devserver.token(user))) as ws:
        await _request(ws, {"action": "ping", "id": "1"})
        (conn_id,) = await asyncio.to_thread(_connection_ids, devserver, user)
    await _wait_for(lambda: not _has_item(devserver, conn_id))


# ---------------------------------------------------------------------- management API
async def test_management_post_to_dead_connection_raises_gone(
    devserver: RunningDevserver,
) -> None:
    client = devserver.management_client()
    with pytest.raises(client.exceptions.GoneException):
        await asyncio.to_thread(
            client.post_to_connection, ConnectionId="DeadConnectio=", Data=b"{}"
        )
    with pytest.raises(client.exceptions.GoneException):
        await asyncio.to_thread(client.get_connection, ConnectionId="DeadConnectio=")


async def test_management_post_and_get_reach_a_live_connection(
    devserver: RunningDevserver,
) -> None:
    user = _user()
    client = devserver.management_client()
    async with _connect(devserver.url(devserver.token(user))) as ws:
        await _request(ws, {"action": "ping", "id": "1"})
        (conn_id,) = await asyncio.to_thread(_connection_ids, devserver, user)
        frame = {"type": "notification:new", "data": {"n": 1}}
        await asyncio.to_thread(
            client.post_to_connection, ConnectionId=conn_id, Data=json.dumps(frame).encode()
        )
        assert json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT)) == frame
        info = await asyncio.to_thread(client.get_connection, ConnectionId=conn_id)
        assert info["Identity"]["SourceIp"] == "127.0.0.1"
        assert info["ConnectedAt"] <= info["LastActiveAt"]


async def test_management_post_over_128_kb_is_refused(devserver: RunningDevserver) -> None:
    user = _user()
    client = devserver.management_client()
    async with _connect(devserver.url(devserver.token(user))) as ws:
        await _request(ws, {"action": "ping", "id": "1"})
        (conn_id,) = await asyncio.to_thread(_connection_ids, devserver, user)
        with pytest.raises(client.exceptions.PayloadTooLargeException):
            await asyncio.to_thread(
                client.post_to_connection, ConnectionId=conn_id, Data=b"x" * (129 * 1024)
            )


async def test_management_delete_closes_socket_and_item_goes(
    devserver: RunningDevserver,
) -> None:
    user = _user()
    client = devserver.management_client()
    async with _connect(devserver.url(devserver.token(user))) as ws:
        await _request(ws, {"action": "ping", "id": "1"})
        (conn_id,) = await asyncio.to_thread(_connection_ids, devserver, user)
        await asyncio.to_thread(client.delete_connection, ConnectionId=conn_id)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        with pytest.raises(client.exceptions.GoneException):
            await asyncio.to_thread(client.get_connection, ConnectionId=conn_id)
    await _wait_for(lambda: not _has_item(devserver, conn_id))


# ---------------------------------------------------------------------- scaling
async def test_two_worker_processes_serve_one_users_traffic(devserver: RunningDevserver) -> None:
    token = devserver.token(_user())
    async with (
        _connect(devserver.url(token)) as ws1,
        _connect(devserver.url(token)) as ws2,
    ):

        async def burst(ws: Any, prefix: str) -> list[dict[str, Any]]:
            for i in range(25):
                await ws.send(json.dumps({"action": "ping", "id": f"{prefix}{i}"}))
            return [json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT)) for _ in range(25)]

        # The pool starts a second worker when a ping finds the first busy; bursts go on
        # (at most 20) until that worker has answered some of them.
        pids: set[int] = set()
        for round_ in range(20):
            replies = [
                r
                for rs in await asyncio.gather(burst(ws1, f"a{round_}-"), burst(ws2, f"b{round_}-"))
                for r in rs
            ]
            assert all(r["ok"] for r in replies)
            assert len({r["id"] for r in replies}) == 50
            pids |= {r["data"]["pid"] for r in replies}
            if len(pids) >= 2:
                break
    assert len(pids) >= 2, pids

    import urllib.request

    with urllib.request.urlopen(f"{devserver.http}/__devserver/workers", timeout=TIMEOUT) as resp:
        stats = json.load(resp)
    worker_pids = {w["pid"] for w in stats["ConnectionFunction"]["workers"]}
    assert pids <= worker_pids
    # The pool grew on demand, but never past its size (--workers, 2 by default).
    assert sum(w["alive"] for w in stats["ConnectionFunction"]["workers"]) <= 2


# ---------------------------------------------------------------------- timeouts
async def test_idle_timeout_closes_with_1001_and_disconnect_runs(
    start_devserver: StartDevserver,
) -> None:
    ds = start_devserver("--idle-timeout", "1", "--workers", "1")
    user = _user()
    async with _connect(ds.url(ds.token(user))) as ws:
        (conn_id,) = await asyncio.to_thread(_connection_ids, ds, user)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1001
    await _wait_for(lambda: not _has_item(ds, conn_id))


async def test_max_connection_duration_closes_with_1001_despite_traffic(
    start_devserver: StartDevserver,
) -> None:
    ds = start_devserver("--max-connection-seconds", "2", "--workers", "1")
    sent = 0
    async with _connect(ds.url(ds.token(_user()))) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            # Busy all along (the idle timeout is 600 s, and every frame the client sends
            # counts as activity): only the duration limit can close it, and it must, long
            # before the 100 pings are through (20 s of them).
            for i in range(100):
                sent += 1
                await _request(ws, {"action": "ping", "id": str(i)})
                await asyncio.sleep(0.2)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1001
    assert sent < 100


async def test_shutdown_closes_sockets_with_1001_and_runs_disconnect_first(
    start_devserver: StartDevserver,
) -> None:
    import os
    import signal

    ds = start_devserver("--workers", "1")
    user = _user()
    async with _connect(ds.url(ds.token(user))) as ws:
        (conn_id,) = await asyncio.to_thread(_connection_ids, ds, user)
        os.killpg(ds.process.pid, signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1001
    assert await asyncio.to_thread(ds.process.wait, 20) == 0
    # The ready file goes with the server: nobody reads a dead server's URLs from it.
    assert not (ds.log_path.parent / "ready.json").exists()
    log = ds.log()
    assert f"DISCONNECT {conn_id} 1001 ok" in log
    assert log.index(f"DISCONNECT {conn_id}") < log.index("devserver stopped")


# ---------------------------------------------------------------------- API Gateway's quotas
def _frame_of(size: int) -> str:
    """A request frame of exactly ``size`` bytes (ASCII) that gets a reply (bad_request:
    ping takes no data)."""
    head, tail = '{"action":"ping","id":"big","data":{"pad":"', '"}}'
    return head + "x" * (size - len(head) - len(tail)) + tail


def _fragments(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


async def _closed_code(ws: Any) -> int:
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


@pytest.mark.parametrize(
    ("frames", "size", "accepted"),
    [
        pytest.param(1, MAX_FRAME_BYTES, True, id="one frame of 32 KB"),
        pytest.param(1, MAX_FRAME_BYTES + 1, False, id="one frame of 32 KB + 1"),
        pytest.param(1, 40 * 1024, False, id="one frame of 40 KB"),
        pytest.param(4, MAX_MESSAGE_BYTES, True, id="128 KB in four 32 KB frames"),
        pytest.param(5, MAX_MESSAGE_BYTES + 1, False, id="128 KB + 1 in five frames"),
    ],
)
async def test_frame_and_message_quotas_are_api_gateways(
    devserver: RunningDevserver, frames: int, size: int, accepted: bool
) -> None:
    # Given a client (no compression: API Gateway frames are limited as they travel)
    async with _connect(
        devserver.url(devserver.token(_user())), max_size=None, compression=None
    ) as ws:
        own = (await _request(ws, {"action": "ping", "id": "who"}))["data"]["connectionId"]
        text = _frame_of(size)
        # When it sends a message of `size` bytes in `frames` frames of at most 32 KB + 1
        chunk = -(-size // frames)
        await ws.send(text if frames == 1 else _fragments(text, chunk))
        if accepted:
            # Then a message within both quotas is routed and answered
            reply = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
            assert reply["id"] == "big" and reply["error"]["code"] == "bad_request"
            return
        # Then anything over a quota closes the socket with 1009, as API Gateway does
        assert await _closed_code(ws) == 1009
    # And the devserver's $disconnect (and its log) says 1009, not 1006
    await _wait_for(lambda: f"DISCONNECT {own} 1009" in devserver.log())


# ---------------------------------------------------------------------- what a client sees
async def test_ping_tells_the_connection_its_id_which_the_management_api_knows(
    devserver: RunningDevserver,
) -> None:
    async with _connect(devserver.url(devserver.token(_user()))) as ws:
        pong = await _request(ws, {"action": "ping", "id": "p"})
        own = pong["data"]["connectionId"]
        management = devserver.management_client()
        found = await asyncio.to_thread(management.get_connection, ConnectionId=own)
        assert found["Identity"]["SourceIp"] == "127.0.0.1"
        await asyncio.to_thread(management.post_to_connection, ConnectionId=own, Data=b"hello")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "hello"


def _invocations(devserver: RunningDevserver) -> int:
    import urllib.request

    with urllib.request.urlopen(f"{devserver.http}/__devserver/workers", timeout=TIMEOUT) as resp:
        stats = json.load(resp)
    # the function behind the WebSocket routes (stream consumers run on their own time)
    return sum(w["invocations"] for w in stats["ConnectionFunction"]["workers"])


async def test_keepalive_is_answered_by_the_gateway_with_a_pong_and_no_lambda(
    devserver: RunningDevserver,
) -> None:
    async with _connect(devserver.url(devserver.token(_user()))) as ws:
        own = (await _request(ws, {"action": "ping", "id": "who"}))["data"]["connectionId"]
        before = await asyncio.to_thread(_invocations, devserver)
        for _ in range(3):
            await ws.send(json.dumps({"action": "keepalive"}))
            pong = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
            assert pong["type"] == "pong" and "id" not in pong
            assert pong["data"]["connectionId"] == own
            assert isinstance(pong["data"]["serverTime"], int)
        # the routes' Lambda ran for the sentinel ping only, not for the three keepalives
        # before it (served in order on this connection: they would be counted by now)
        await _request(ws, {"action": "ping", "id": "sentinel"})
        assert await asyncio.to_thread(_invocations, devserver) == before + 1


def _is_compact(raw: str) -> bool:
    return raw == json.dumps(json.loads(raw), separators=(",", ":"), ensure_ascii=False)


async def test_replies_and_pushes_are_the_same_compact_json(devserver: RunningDevserver) -> None:
    alice, bob = _user(), _user()
    async with (
        _connect(devserver.url(devserver.token(alice))) as a,
        _connect(devserver.url(devserver.token(bob))) as b,
    ):
        await a.send(
            json.dumps({"action": "conversation:create", "id": "c", "data": {"members": [bob]}})
        )
        created = await asyncio.wait_for(a.recv(), TIMEOUT)
        conversation = json.loads(created)["data"]["conversationId"]
        send = {"conversationId": conversation, "clientMessageId": "m", "body": "hi, there: ok"}
        await a.send(json.dumps({"action": "message:send", "id": "s", "data": send}))
        replied = await asyncio.wait_for(a.recv(), TIMEOUT)
        # bob never talked to alice: her conversation reaches him as a request first
        requested = await asyncio.wait_for(b.recv(), TIMEOUT)
        pushed = await asyncio.wait_for(b.recv(), TIMEOUT)
        assert json.loads(requested)["type"] == "conversation:request"
        assert json.loads(pushed)["type"] == "message:new"
        for raw in (created, replied, requested, pushed):
            assert _is_compact(raw), raw


async def test_a_refused_token_is_one_log_line_without_a_traceback(
    devserver: RunningDevserver,
) -> None:
    before = devserver.log()
    with pytest.raises(InvalidStatus):
        async with _connect(devserver.url("not.a.token")):
            pass
    # A sentinel after it: once this connect is logged, the refusal's lines are too.
    user = _user()
    async with _connect(devserver.url(devserver.token(user))) as ws:
        await _request(ws, {"action": "ping", "id": "sentinel"})
    await _wait_for(lambda: f"user={user}" in devserver.log())
    new = devserver.log()[len(before) :]
    refused = [line for line in new.splitlines() if "refused 401" in line]
    assert len(refused) == 1 and "by the authorizer" in refused[0], new[-3000:]
    assert "Traceback" not in new, new[-3000:]
    assert "devserver.ws: AUTHORIZER" not in new


# ---------------------------------------------------------------------- TURN in `make dev`
async def test_devserver_starts_coturn_and_hands_out_its_url(
    start_devserver: StartDevserver,
) -> None:
    import os
    import signal

    if shutil.which(os.environ.get("SWITCHBOARD_TURNSERVER", "turnserver")) is None:
        pytest.fail("coturn is not installed: apt-get install -y coturn (.ci/run does)")
    # Given the devserver as `make dev` starts it (coturn installed, no TurnUrls given)
    ds = start_devserver("--workers", "1", "--turn", "auto")
    assert ds.turn is not None
    url = ds.turn["url"]
    port = int(url.split("?")[0].rsplit(":", 1)[1])
    assert url == f"turn:127.0.0.1:{port}?transport=udp"
    # (the banner comes right after the ready file)
    await _wait_for(lambda: f"TURN        {url} (coturn pid" in ds.log())
    # When a client asks for ICE servers, it gets that coturn (STUN and TURN, no public
    # server), with credentials signed by the TurnSecret coturn was started with
    user, callee = _user(), _user()
    # (TURN credentials are issued for a call: here, one about to be placed to a contact,
    # someone who accepted a conversation with the caller)
    await befriend(ds, user, callee)
    async with _connect(ds.url(ds.token(user))) as ws:
        ask = {"action": "call:ice-servers", "id": "i", "data": {"calleeId": callee}}
        reply = await _request(ws, ask)
        while reply["type"] != "reply":  # (a contact's presence may come first)
            reply = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        servers = reply["data"]
    stun, turn = servers["iceServers"]
    assert stun == {"urls": [f"stun:127.0.0.1:{port}"]}
    assert turn["urls"] == [url] and turn["username"].endswith(f":{user}")
    secret = ds.aws("secretsmanager").get_secret_value(SecretId=ds.resources["TurnSecret"])
    assert f"--static-auth-secret={secret['SecretString']}" not in ds.log()  # never logged
    pid = int(ds.log().split(f"{url} (coturn pid ")[1].split(",")[0])
    os.kill(pid, 0)  # coturn is running
    # And shutting the devserver down stops coturn and removes the ready file
    os.killpg(ds.process.pid, signal.SIGTERM)
    assert await asyncio.to_thread(ds.process.wait, 30) == 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not (ds.log_path.parent / "ready.json").exists()


def _dev_request(
    devserver: RunningDevserver,
    path: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        devserver.http + path, data=body, method=method, headers=headers or {}
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_dev_endpoints_answer_no_other_site(devserver: RunningDevserver) -> None:
    """The devserver mints tokens for anyone (the demo admin too), keeps every mail and
    code, and takes fault injection: a page of any other site the developer visits must
    reach none of it, neither by CORS nor by rebinding its own name to 127.0.0.1."""
    port = devserver.http.rsplit(":", 1)[1]
    evil = {"Origin": "https://evil.example"}
    rebound = {"Host": f"evil.example:{port}"}
    faults_before = _dev_request(devserver, "/__devserver/faults")[2]
    for headers in (evil, rebound):
        for path in ("/__devserver/token?user=admin", "/__devserver/emails"):
            status, got, body = _dev_request(devserver, path, headers=headers)
            assert (
                status == 403 and b"token" not in body and "Access-Control-Allow-Origin" not in got
            )
        # A "simple" cross-site POST needs no preflight: it must change nothing either (a
        # harmless configuration, so a regression cannot wreck the session's devserver)
        plain = {**headers, "Content-Type": "text/plain"}
        injected = json.dumps({"streams": {"replayRate": 0.0, "seed": 4242}}).encode()
        status, _, _ = _dev_request(devserver, "/__devserver/faults", "POST", plain, injected)
        assert status == 403
        status, got, _ = _dev_request(
            devserver,
            "/__devserver/faults",
            "OPTIONS",
            {**headers, "Access-Control-Request-Method": "DELETE"},
        )
        assert "Access-Control-Allow-Origin" not in got
    assert _dev_request(devserver, "/__devserver/faults")[2] == faults_before
    # The demo page itself (same origin, by IP or by localhost) still signs in
    for headers in ({}, {"Origin": devserver.http}, {"Host": f"localhost:{port}"}):
        status, _, body = _dev_request(devserver, "/__devserver/token?user=alice", headers=headers)
        assert status == 200 and json.loads(body)["userId"] == "alice"


def test_the_embedded_aws_answers_no_other_site(devserver: RunningDevserver) -> None:
    """moto holds every table, queue and object of the devserver and checks no signature:
    a page of another site (which can find its port by trying them) must not read it."""
    port = devserver.moto.rsplit(":", 1)[1]
    list_tables = {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": "DynamoDB_20120810.ListTables",
        "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20261202/us-east-1/dynamodb/"
        "aws4_request, SignedHeaders=host, Signature=0",
    }

    def ask(headers: dict[str, str]) -> tuple[int, bytes]:
        request = urllib.request.Request(
            devserver.moto + "/", data=b"{}", method="POST", headers={**list_tables, **headers}
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    for refused in (
        {"Origin": "https://evil.example"},
        {"Origin": "http://93.184.216.34"},  # a site served from a public address
        {"Host": f"evil.example:{port}"},
    ):
        status, body = ask(refused)
        assert status == 403 and b"Table" not in body
    # The devserver's own functions and tools (no Origin) and its demo page still reach it
    for allowed in ({}, {"Origin": devserver.http}):
        status, body = ask(allowed)
        assert status == 200 and b"TableNames" in body
