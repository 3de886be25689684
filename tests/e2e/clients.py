"""A test client for the Switchboard wire protocol, over a real WebSocket.

`Client` keeps one connection: `request()` sends `{"action", "id", "data"}` and waits for
the reply with that id while every push frame is buffered; `wait_for()` waits (bounded)
for a push; `message:new` frames are de-duplicated by (conversationId, seq), as the
protocol asks clients to do. Devserver admin endpoints (`/__devserver/faults`, `/emails`)
have small helpers here too. Every wait is bounded; traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import urllib.request
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import websockets
from websockets.exceptions import ConnectionClosed

if TYPE_CHECKING:
    from .conftest import RunningDevserver

TIMEOUT = 10.0
# A handshake runs the authorizer and $connect: on a loaded 2-core machine, with a fresh
# devserver's workers still importing, it can take longer than a reply.
CONNECT_TIMEOUT = 30.0

Frame = dict[str, Any]


class RequestFailed(AssertionError):
    def __init__(self, action: str, reply: Frame) -> None:
        super().__init__(f"{action} failed: {reply.get('error')}")
        self.reply = reply
        self.code = (reply.get("error") or {}).get("code")


# What a pending request gets when API Gateway reports a failed integration.
_GATEWAY_ERROR: Frame = {
    "type": "reply",
    "ok": False,
    "error": {"code": "gateway_error", "message": "Internal server error (API Gateway)"},
}


class Client:
    """One device of one user."""

    _ids = itertools.count(1)

    def __init__(
        self,
        ds: RunningDevserver,
        user_id: str,
        *,
        device: str | None = None,
        token: str | None = None,
        backlog_batch: bool = False,
    ) -> None:
        self.ds = ds
        self.backlog_batch = backlog_batch  # connect with backlog=batch (message:batch)
        self.user_id = user_id
        self.token = token  # None: a fresh dev token at each connect
        # A unique User-Agent: the Connections item's `device`, so tests find the id.
        self.device = device or f"switchboard-e2e/{user_id}/{uuid.uuid4().hex[:8]}"
        self.ws: Any = None
        self.pushes: list[Frame] = []
        self.messages: dict[str, dict[int, Frame]] = {}  # conversationId -> seq -> message
        self.duplicates = 0
        self.differing_duplicates: list[tuple[Frame, Frame]] = []
        self.gateway_errors = 0
        self.connection_id: str | None = None
        self._replies: dict[str, asyncio.Future[Frame]] = {}
        self._arrived = asyncio.Condition()
        self._reader: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle
    async def connect(self, timeout: float = CONNECT_TIMEOUT) -> Client:
        self.ws = await websockets.connect(
            self.ds.url(self.token or self.ds.token(self.user_id))
            + ("&backlog=batch" if self.backlog_batch else ""),
            user_agent_header=self.device,
            open_timeout=timeout,
            max_size=None,
            ping_interval=None,
        )
        self.closed.clear()
        self._reader = asyncio.create_task(self._read())
        return self

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), TIMEOUT)
        if self._reader is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._reader, TIMEOUT)
        self._reader = None

    async def __aenter__(self) -> Client:
        return await self.connect()

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                frame = json.loads(raw)
                if frame.get("type") == "reply":
                    future = self._replies.pop(str(frame.get("id")), None)
                    if future is not None and not future.done():
                        future.set_result(frame)
                    continue
                if "type" not in frame and frame.get("message") == "Internal server error":
                    # API Gateway's answer when the integration failed (a Lambda crashed):
                    # it names no request; with exactly one waiting, it is that one.
                    self.gateway_errors += 1
                    if len(self._replies) == 1:
                        (future,) = self._replies.values()
                        if not future.done():
                            future.set_result(_GATEWAY_ERROR)
                    continue
                if frame.get("type") == "message:new":
                    self._record(frame["data"])
                if frame.get("type") == "message:batch":
                    for message in frame["data"]["messages"]:
                        self._record(message)
                async with self._arrived:
                    self.pushes.append(frame)
                    self._arrived.notify_all()
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()
            for future in self._replies.values():
                if not future.done():
                    future.set_exception(ConnectionError(f"{self.user_id}: connection closed"))
            self._replies.clear()
            async with self._arrived:
                self._arrived.notify_all()

    def _record(self, message: Frame) -> bool:
        """Keeps a message once per (conversationId, seq); False if it was a duplicate."""
        per_conversation = self.messages.setdefault(message["conversationId"], {})
        first = per_conversation.get(int(message["seq"]))
        if first is not None:
            self.duplicates += 1
            if first != message:  # a duplicate must be the same message, field for field
                self.differing_duplicates.append((first, message))
            return False
        per_conversation[int(message["seq"])] = message
        return True

    # ------------------------------------------------------------------ requests
    async def request(
        self, action: str, data: dict[str, Any] | None = None, timeout: float = TIMEOUT
    ) -> Frame:
        """The whole reply frame (ok or not)."""
        if self.closed.is_set() or self.ws is None:
            raise ConnectionError(f"{self.user_id}: not connected")
        request_id = f"r{next(self._ids)}"
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._replies[request_id] = future
        await self.ws.send(json.dumps({"action": action, "id": request_id, "data": data or {}}))
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._replies.pop(request_id, None)

    async def call(
        self, action: str, data: dict[str, Any] | None = None, timeout: float = TIMEOUT
    ) -> dict[str, Any]:
        """The reply's data; raises RequestFailed on an error reply."""
        reply = await self.request(action, data, timeout)
        if not reply.get("ok"):
            raise RequestFailed(action, reply)
        result: dict[str, Any] = reply.get("data") or {}
        return result

    async def error_code(self, action: str, data: dict[str, Any] | None = None) -> str | None:
        reply = await self.request(action, data)
        assert reply["ok"] is False, f"{action} unexpectedly succeeded: {reply}"
        code: str | None = reply["error"]["code"]
        return code

    async def send(
        self, conversation_id: str, body: str, client_message_id: str | None = None
    ) -> dict[str, Any]:
        return await self.call(
            "message:send",
            {
                "conversationId": conversation_id,
                "clientMessageId": client_message_id or uuid.uuid4().hex,
                "body": body,
            },
        )

    async def create_conversation(self, members: list[str], title: str | None = None) -> str:
        data: dict[str, Any] = {"members": members}
        if title:
            data["title"] = title
        conversation_id: str = (await self.call("conversation:create", data))["conversationId"]
        return conversation_id

    async def sync_all(self, cursors: dict[str, int], limit: int = 100) -> dict[str, int]:
        """`message:sync` from ``cursors``, paging on hasMore; records the messages.
        Returns each conversation's lastSeq."""
        cursors = dict(cursors)
        last: dict[str, int] = {}
        while cursors:
            reply = await self.call("message:sync", {"cursors": cursors, "limit": limit})
            following: dict[str, int] = {}
            for conversation_id, entry in reply["conversations"].items():
                last[conversation_id] = int(entry["lastSeq"])
                for message in entry["messages"]:
                    self._record(message)
                if entry["hasMore"]:
                    assert entry["messages"], f"hasMore without messages: {entry}"
                    following[conversation_id] = int(entry["messages"][-1]["seq"])
            cursors = following
        return last

    def contiguous_seq(self, conversation_id: str) -> int:
        """The highest seq up to which this client has every message (its sync cursor)."""
        have = self.messages.get(conversation_id, {})
        seq = 0
        while seq + 1 in have:
            seq += 1
        return seq

    # ------------------------------------------------------------------ pushes
    async def sentinel(self) -> None:
        """A `ping` round trip. This connection's frames reach the socket in order, so
        every push posted to it before the ping was answered is in ``pushes`` now: "nothing
        arrived" is proven by this, never by waiting a while."""
        pong = await self.call("ping")
        assert pong["pong"] is True, pong

    def find(
        self, event_type: str, predicate: Callable[[Frame], bool] | None = None
    ) -> list[Frame]:
        return [
            f
            for f in self.pushes
            if f.get("type") == event_type and (predicate is None or predicate(f.get("data") or {}))
        ]

    async def wait_for(
        self,
        event_type: str,
        predicate: Callable[[Frame], bool] | None = None,
        timeout: float = TIMEOUT,
    ) -> Frame:
        """The first buffered or arriving push of that type whose data matches."""
        deadline = time.monotonic() + timeout
        async with self._arrived:
            while True:
                found = self.find(event_type, predicate)
                if found:
                    data: Frame = found[0].get("data") or {}
                    return data
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.closed.is_set():
                    raise AssertionError(
                        f"{self.user_id}: no {event_type} push in {timeout}s "
                        f"(got {[f.get('type') for f in self.pushes][-20:]})"
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), remaining)

    async def wait_for_messages(
        self, conversation_id: str, seqs: set[int] | range, timeout: float = TIMEOUT
    ) -> None:
        wanted = set(seqs)
        deadline = time.monotonic() + timeout
        async with self._arrived:
            while not wanted <= set(self.messages.get(conversation_id, {})):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.closed.is_set():
                    missing = sorted(wanted - set(self.messages.get(conversation_id, {})))
                    raise AssertionError(
                        f"{self.user_id}: messages {missing[:20]} of {conversation_id} "
                        f"not received in {timeout}s"
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), remaining)

    def message_pushes(self, conversation_id: str) -> list[int]:
        """Seqs of the `message:new` pushes of a conversation, in arrival order (with dups)."""
        return [
            int(f["data"]["seq"])
            for f in self.pushes
            if f.get("type") == "message:new" and f["data"]["conversationId"] == conversation_id
        ]

    # ------------------------------------------------------------------ identity
    async def find_connection_id(self, timeout: float = TIMEOUT) -> str:
        """This socket's connectionId, from the Connections table (matched by device)."""
        deadline = time.monotonic() + timeout
        while True:
            for item in await asyncio.to_thread(connection_items, self.ds, self.user_id):
                if item.get("device", {}).get("S") == self.device:
                    self.connection_id = str(item["connectionId"]["S"])
                    return self.connection_id
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.user_id}: connection item not found")
            await asyncio.sleep(0.1)


async def connect(ds: RunningDevserver, user_id: str, *, with_id: bool = False) -> Client:
    client = await Client(ds, user_id).connect()
    if with_id:
        await client.find_connection_id()
    return client


# ---------------------------------------------------------------------- AWS state
def connection_items(ds: RunningDevserver, user_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = ds.aws("dynamodb").query(
        TableName=ds.resources["ConnectionsTable"],
        IndexName="byUser",
        KeyConditionExpression="userId = :u",
        ExpressionAttributeValues={":u": {"S": user_id}},
    )["Items"]
    return items


def presence_set(ds: RunningDevserver, user_id: str) -> set[str]:
    item = ds.aws("dynamodb").get_item(
        TableName=ds.resources["UsersTable"],
        Key={"userId": {"S": user_id}},
        ConsistentRead=True,
    )
    return set(item.get("Item", {}).get("connectionIds", {}).get("SS", []))


def has_connection_item(ds: RunningDevserver, connection_id: str) -> bool:
    item = ds.aws("dynamodb").get_item(
        TableName=ds.resources["ConnectionsTable"],
        Key={"connectionId": {"S": connection_id}},
        ConsistentRead=True,
    )
    return "Item" in item


def queue_url(ds: RunningDevserver, logical_id: str) -> str:
    url: str = ds.aws("sqs").get_queue_url(QueueName=queue_name(ds, logical_id))["QueueUrl"]
    return url


def queue_name(ds: RunningDevserver, logical_id: str) -> str:
    value = ds.resources.get(logical_id, f"switchboard-local-{logical_id}")
    return value.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]


def peek_queue(
    ds: RunningDevserver,
    logical_id: str,
    delete_if: Callable[[str], bool] | None = None,
    max_batches: int = 50,
) -> list[str]:
    """Bodies of the messages visible on a queue. Those ``delete_if`` accepts are deleted,
    the others made visible again at once (a peek). Bounded: at most ``max_batches``
    receives."""
    sqs = ds.aws("sqs")
    url = queue_url(ds, logical_id)
    bodies: dict[str, str] = {}
    keep: list[str] = []
    for _ in range(max_batches):
        got = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=30
        ).get("Messages", [])
        if not got:
            break
        for message in got:
            bodies[message["MessageId"]] = message["Body"]
            if delete_if is not None and delete_if(message["Body"]):
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            else:
                keep.append(message["ReceiptHandle"])
    for handle in keep:
        with contextlib.suppress(Exception):
            sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=0)
    return list(bodies.values())


class Session:
    """Clients opened in a test, all closed at the end (`async with Session(ds) as s`)."""

    def __init__(self, ds: RunningDevserver) -> None:
        self.ds = ds
        self.clients: list[Client] = []

    async def connect(self, user_id: str, *, with_id: bool = False) -> Client:
        client = await connect(self.ds, user_id, with_id=with_id)
        self.clients.append(client)
        return client

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *_: object) -> None:
        await asyncio.gather(*(c.close() for c in self.clients), return_exceptions=True)


async def befriend(ds: RunningDevserver, *user_ids: str) -> None:
    """Makes every pair of ``user_ids`` contacts (a 1:1 conversation the second accepts),
    through short-lived connections of their own: calls ring only contacts, and presence
    and typing flow only between them."""
    async with Session(ds) as s:
        clients = {u: await s.connect(u) for u in user_ids}
        for i, first in enumerate(user_ids):
            for second in user_ids[i + 1 :]:
                created = await clients[first].create_conversation([second])
                await clients[second].call("conversation:accept", {"conversationId": created})


# ---------------------------------------------------------------------- devserver admin
def admin(ds: RunningDevserver, method: str, path: str, body: Any = None) -> Any:
    assert ds.http.startswith("http://127.0.0.1"), ds.http
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        ds.http + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        return json.loads(response.read() or b"null")


def set_faults(ds: RunningDevserver, **management_api: Any) -> Any:
    return admin(ds, "POST", "/__devserver/faults", {"managementApi": management_api})


def clear_faults(ds: RunningDevserver) -> Any:
    return admin(ds, "DELETE", "/__devserver/faults")


def emails_to(ds: RunningDevserver, address: str) -> list[dict[str, Any]]:
    return [e for e in admin(ds, "GET", "/__devserver/emails") if address in e["to"]]


def invocations(ds: RunningDevserver, function: str) -> int:
    stats = admin(ds, "GET", "/__devserver/workers")[function]
    return sum(int(w["invocations"]) for w in stats["workers"])


async def eventually(
    predicate: Callable[[], Any], timeout: float = TIMEOUT, interval: float = 0.2
) -> Any:
    """Polls a blocking predicate (in a thread) until it is truthy; bounded."""
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(predicate)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout}s")
        await asyncio.sleep(interval)
