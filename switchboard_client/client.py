"""The asyncio client: one WebSocket per device, kept alive and reconnected, with the
protocol's delivery semantics handled for the application.

- Request/reply: every request carries an id; its reply resolves a future, or raises the
  typed :mod:`~switchboard_client.errors` exception of its error code, or
  ``RequestTimeout`` / ``ConnectionLost``.
- Reconnect: exponential backoff with full jitter; a refused handshake (401/403) asks the
  token provider once for a fresh token, then stops with ``AuthenticationFailed``.
- Resume: after each (re)connect the client lists its conversations (the server's
  ``ackedSeq`` seeds conversations it has not seen, exactly where the server's own backlog
  push starts) and ``message:sync``\\ s every conversation whose ``lastSeq`` is past its
  cursor. The server's backlog push arrives at the same time; duplicates are dropped.
- Delivery: ``message:new`` is handed to the application once per ``(conversationId,
  seq)`` and in seq order (see :mod:`~switchboard_client.inbox`); a gap that a late push
  does not fill within ``gap_fill_delay`` is filled by ``message:sync``. Delivered
  messages are acked automatically (coalesced: one ``message:ack`` in flight at a time).
- Keep-alive: a ``keepalive`` frame after ``keepalive_interval`` without traffic (API
  Gateway closes idle sockets after 10 minutes). API Gateway answers it itself with a
  ``pong`` (no Lambda runs); no frame at all in ``keepalive_timeout`` -> the connection
  is treated as dead and replaced.
- Typing: ``typing()`` on every keystroke sends ``typing:start`` at most once per
  ``typing_interval`` and ``typing:stop`` after ``typing_idle`` seconds without input.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import itertools
import json
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import websockets
from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from switchboard_client import wire
from switchboard_client.backoff import Backoff
from switchboard_client.calls import Calls
from switchboard_client.errors import (
    AuthenticationFailed,
    ClientClosed,
    Conflict,
    ConnectionLost,
    Forbidden,
    GatewayError,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    RequestTimeout,
    SwitchboardClientError,
    TokenExpired,
    UnexpectedReply,
    error_from_reply,
)
from switchboard_client.inbox import Inbox
from switchboard_client.membership import Membership
from switchboard_client.message_ops import CHANGE_PUSHES, MessageOps
from switchboard_client.models import Event, Message, Sent, Stats
from switchboard_client.uploads import Uploads
from switchboard_client.wire import MAX_FRAME_BYTES, MAX_MESSAGE_BYTES

__all__ = ["Callback", "Client", "EventStream", "TokenSource"]

log = logging.getLogger("switchboard_client")

T = TypeVar("T", bound=wire.WireModel)
TokenSource = str | Callable[[], str | Awaitable[str]]
Callback = Callable[[Event], Awaitable[None] | None]

# API Gateway: 128 KB per message, 32 KB per frame (the protocol's limits, generated into
# switchboard_client/wire.py). Bigger messages go out fragmented; 8000 characters are at
# most 32 000 bytes of UTF-8.
FRAGMENT_CHARS = MAX_FRAME_BYTES // 4
SYNC_MAX_CURSORS = 200  # message:sync takes at most 200 cursors per request
LIST_PAGE = 100
LIST_MAX_PAGES = 1000
SEND_CONFLICT_ATTEMPTS = 3


class EventStream:
    """Events as an async iterator (``async for event in stream``); ends when the stream
    or the client is closed. Unbounded: consume it, or close it when done."""

    def __init__(self, client: Client, types: frozenset[str] | None) -> None:
        self._client = client
        self.types = types
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._closed = False

    def _put(self, event: Event | None) -> None:
        if not self._closed:
            self._queue.put_nowait(event)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        event = await self._queue.get()
        if event is None:
            self._closed = True
            raise StopAsyncIteration
        return event

    async def get(self, timeout: float | None = None) -> Event:
        """The next event; ``TimeoutError`` if none comes in ``timeout`` seconds,
        ``ClientClosed`` if the stream ended."""
        event = await asyncio.wait_for(self._queue.get(), timeout)
        if event is None:
            self._closed = True
            raise ClientClosed("the event stream is closed")
        return event

    def close(self) -> None:
        self._client._streams.discard(self)
        self._put(None)

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, *_: object) -> None:
        self.close()


@dataclass(slots=True)
class _Subscription:
    types: frozenset[str] | None
    callback: Callback


@dataclass(slots=True)
class _Typing:
    started_at: float | None = None
    active: bool = False  # a typing:stop is owed
    idle_timer: asyncio.Task[None] | None = None


class Client:
    """One device's connection. ``async with Client(url, token) as client: ...``"""

    def __init__(
        self,
        url: str,
        token: TokenSource,
        *,
        user_id: str | None = None,
        user_agent: str | None = None,
        request_timeout: float = 10.0,
        send_timeout: float = 30.0,
        open_timeout: float = 10.0,
        keepalive_interval: float = 240.0,
        keepalive_timeout: float = 10.0,
        refresh_margin: float = 60.0,
        backoff: Backoff | None = None,
        auto_ack: bool = True,
        cursors: Mapping[str, int] | None = None,
        change_cursors: Mapping[str, int] | None = None,
        gap_fill_delay: float = 1.0,
        sync_limit: int = 100,
        typing_interval: float = 2.5,
        typing_idle: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._token_source = token
        self._token_value: str | None = None  # the latest token (after auth:refresh too)
        self._refreshing: asyncio.Task[None] | None = None
        self.user_id = user_id or (_token_subject(token) if isinstance(token, str) else None)
        self.user_agent = user_agent
        self.request_timeout = request_timeout
        self.send_timeout = send_timeout
        self.open_timeout = open_timeout
        self.keepalive_interval = keepalive_interval
        self.keepalive_timeout = keepalive_timeout
        self.refresh_margin = refresh_margin
        self.backoff = backoff or Backoff()
        self.auto_ack = auto_ack
        self.gap_fill_delay = gap_fill_delay
        self.sync_limit = sync_limit
        self.typing_interval = typing_interval
        self.typing_idle = typing_idle
        self._clock = clock

        self.inbox = Inbox(dict(cursors or {}))
        self.calls = Calls(self)  # call:* signaling helpers
        self.uploads = Uploads(self)  # upload:* helpers and the whole upload flow
        # edit, delete, react, threads, mute; the change stream read on resume
        self.messages = MessageOps(self, self._emit, change_cursors)
        self.membership = Membership(self)  # requests, leave, blocks, group members
        self.stats = Stats()
        self._ws: ClientConnection | None = None
        self._open = asyncio.Event()  # a socket is usable
        self._ready = asyncio.Event()  # ... and the resume after its connect is done
        self._stopped = asyncio.Event()  # closed, or failed for good
        self._fatal: SwitchboardClientError | None = None
        self._closing = False
        self._pending: dict[str, tuple[str, asyncio.Future[dict[str, Any]]]] = {}
        self._ids = itertools.count(1)
        self._runner: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._acked: dict[str, int] = {}  # the server's ackedSeq as far as we know
        self._ack_wakeup = asyncio.Event()
        self._sync_wakeup = asyncio.Event()
        self._subscriptions: list[_Subscription] = []
        self._streams: set[EventStream] = set()
        self._typing: dict[str, _Typing] = {}
        # (conversationId, clientMessageId) of sends waiting for their reply: their push
        # (e.g. in the backlog after a reconnect) is our own message, not an incoming one.
        self._sending: set[tuple[str, str]] = set()
        self._last_sent = 0.0
        self._last_received = 0.0  # loop time of the last frame from the server

    # ------------------------------------------------------------------ lifecycle
    async def connect(self, timeout: float | None = None) -> Client:
        """Starts the connection loop and waits until connected and resumed (retrying
        with backoff meanwhile). Raises ``AuthenticationFailed`` on a refused token,
        ``RequestTimeout`` if not connected within ``timeout`` (the loop keeps trying)."""
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name="switchboard-client")
            self._spawn(self._acker())
            self._spawn(self._gap_filler())
        await self._await(self._ready, timeout if timeout is not None else self.open_timeout * 3)
        return self

    async def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._stopped.set()
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 5)
        tasks = [t for t in (self._runner, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._fail_pending(ClientClosed("the client was closed"))
        self._end_streams()

    async def __aenter__(self) -> Client:
        try:
            return await self.connect()
        except BaseException:
            await self.close()  # no background loop outlives a failed `async with`
            raise

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._open.is_set()

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Until the current connection is up and resumed (``RequestTimeout`` otherwise)."""
        await self._await(self._ready, timeout if timeout is not None else self.open_timeout)

    async def wait_closed(self) -> None:
        """Until the client stops; raises the fatal error if it stopped on one."""
        await self._stopped.wait()
        if self._fatal is not None:
            raise self._fatal

    @property
    def cursors(self) -> dict[str, int]:
        """Per conversation, the seq up to which every message was handled. Pass it as
        ``cursors=`` to a later client to resume exactly there."""
        return self.inbox.cursors

    @property
    def duplicates_dropped(self) -> int:
        return self.inbox.duplicates

    # ------------------------------------------------------------------ events
    def on(self, event_type: str | Iterable[str] | None, callback: Callback) -> Callable[[], None]:
        """Calls ``callback(event)`` for events of that type (or types; ``None`` = all).
        An async callback runs as a task. Returns a function that unsubscribes."""
        types = _types(event_type)
        subscription = _Subscription(types, callback)
        self._subscriptions.append(subscription)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subscriptions.remove(subscription)

        return unsubscribe

    def events(self, *event_types: str) -> EventStream:
        """An async iterator of the events of those types (all when none are given),
        from now on: ``async with client.events("message:new") as stream: ...``."""
        stream = EventStream(self, frozenset(event_types) or None)
        if self._stopped.is_set():
            stream.close()
        else:
            self._streams.add(stream)
        return stream

    def _emit(self, event: Event) -> None:
        for stream in list(self._streams):
            if stream.types is None or event.type in stream.types:
                stream._put(event)
        for subscription in list(self._subscriptions):
            if subscription.types is not None and event.type not in subscription.types:
                continue
            try:
                result = subscription.callback(event)
            except Exception:
                log.exception("event callback failed", extra={"eventType": event.type})
                continue
            if inspect.isawaitable(result):
                self._spawn(_logged(result, event.type))

    def _end_streams(self) -> None:
        for stream in list(self._streams):
            stream.close()

    # ------------------------------------------------------------------ requests
    async def request(
        self, action: str, data: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """Sends ``{"action", "id", "data"}`` and returns the reply's ``data``. Waits for a
        connection first (within the same timeout). Raises the ServerError subclass of the
        reply's error code, ``RequestTimeout``, ``ConnectionLost`` or ``ClientClosed``."""
        if self._runner is None:
            raise SwitchboardClientError(f"{action}: call connect() first")
        loop = asyncio.get_running_loop()
        timeout = self.request_timeout if timeout is None else timeout
        deadline = loop.time() + timeout
        await self._await(self._open, timeout, f"{action}: not connected within {timeout:g}s")
        ws = self._ws
        if ws is None:  # closed between the event and here
            raise ConnectionLost(f"{action}: the connection closed")
        request_id = f"r-{next(self._ids)}"
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._pending[request_id] = (action, future)
        self.stats.requests += 1
        try:
            await self._send_frame(
                ws, {"action": action, "id": request_id, "data": dict(data or {})}
            )
            return await asyncio.wait_for(future, max(deadline - loop.time(), 0))
        except TimeoutError:
            raise RequestTimeout(f"{action}: no reply within {timeout:g}s") from None
        except ConnectionClosed:
            raise ConnectionLost(f"{action}: the connection closed") from None
        finally:
            self._pending.pop(request_id, None)

    async def call(
        self,
        model: type[T],
        action: str,
        data: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> T:
        """``request()``, with the reply's data parsed into its wire model (the generated
        ``switchboard_client.wire``). A reply that does not match raises
        ``UnexpectedReply``."""
        reply = await self.request(action, data, timeout=timeout)
        try:
            return model.model_validate(reply)
        except ValidationError as exc:
            message = f"{action}: the reply does not match {model.__name__}: {exc}"
            raise UnexpectedReply(message) from None

    async def _send_frame(self, ws: ClientConnection, frame: dict[str, Any]) -> None:
        text = json.dumps(frame, separators=(",", ":"), ensure_ascii=False)
        size = len(text.encode())
        if size > MAX_MESSAGE_BYTES:
            raise PayloadTooLarge(
                f"the frame is {size} bytes; the limit is {MAX_MESSAGE_BYTES}",
                action=str(frame.get("action")),
            )
        if size <= MAX_FRAME_BYTES:
            await ws.send(text)
        else:
            await ws.send(text[i : i + FRAGMENT_CHARS] for i in range(0, len(text), FRAGMENT_CHARS))
        self._last_sent = asyncio.get_running_loop().time()

    def _fail_pending(self, error: SwitchboardClientError) -> None:
        pending, self._pending = self._pending, {}
        for _, future in pending.values():
            if not future.done():
                future.set_exception(error)

    # ------------------------------------------------------------------ actions
    async def ping(self) -> wire.Pong:
        return await self.call(wire.Pong, "ping")

    async def create_conversation(
        self, members: Iterable[str], *, title: str | None = None, listing_id: str | None = None
    ) -> wire.ConversationCreated:
        """Two people + the same listing -> the same conversation (``created`` False)."""
        data: dict[str, Any] = {"members": list(members)}
        if title is not None:
            data["title"] = title
        if listing_id is not None:
            data["listingId"] = listing_id
        reply = await self.call(wire.ConversationCreated, "conversation:create", data)
        if reply.created:
            self._deliver(self.inbox.seed(reply.conversationId, 0))
        return reply

    async def list_conversations(
        self, *, limit: int = 20, cursor: str | None = None, requests: bool = False
    ) -> wire.ConversationPage:
        """A page of the inbox or (``requests``) of the message requests folder."""
        data: dict[str, Any] = {"limit": limit}
        if requests:
            data["folder"] = "requests"
        if cursor is not None:
            data["cursor"] = cursor
        return await self.call(wire.ConversationPage, "conversation:list", data)

    async def iter_conversations(
        self, *, page_size: int = LIST_PAGE, requests: bool = False
    ) -> AsyncIterator[wire.ConversationSummary]:
        """Every conversation of the inbox (or of the requests folder), newest activity
        first, following the pages."""
        cursor: str | None = None
        for _ in range(LIST_MAX_PAGES):
            page = await self.list_conversations(limit=page_size, cursor=cursor, requests=requests)
            for conversation in page.conversations:
                yield conversation
            cursor = page.cursor
            if not cursor:
                return

    async def send_message(
        self,
        conversation_id: str,
        body: str,
        *,
        attachments: Iterable[Mapping[str, Any]] | None = None,
        client_message_id: str | None = None,
        timeout: float | None = None,
        parent_seq: int | None = None,
        reply_to_seq: int | None = None,
    ) -> Sent:
        """Sends and returns once the message is durably stored. A lost connection, a
        lost reply, an API Gateway error, an expired token (refreshed meanwhile),
        ``rate_limited`` and a busy conversation (``conflict``) are retried with the same
        ``clientMessageId`` until ``timeout`` (the server makes retries idempotent), so one
        call stores the message at most once. If it raises, the message may still have
        been stored: retry with the same ``client_message_id``. ``parent_seq``: a reply in
        that message's thread; ``reply_to_seq``: a quote of that message."""
        loop = asyncio.get_running_loop()
        client_message_id = client_message_id or uuid.uuid4().hex
        data: dict[str, Any] = {
            "conversationId": conversation_id,
            "clientMessageId": client_message_id,
            "body": body,
        }
        if attachments:
            data["attachments"] = [dict(a) for a in attachments]
        if parent_seq is not None:
            data["parentSeq"] = parent_seq
        if reply_to_seq is not None:
            data["replyToSeq"] = reply_to_seq
        deadline = loop.time() + (self.send_timeout if timeout is None else timeout)
        conflicts = 0
        attempt = 0
        key = (conversation_id, client_message_id)
        self._sending.add(key)
        try:
            while True:
                remaining = deadline - loop.time()
                try:
                    reply = await self.call(
                        wire.MessageSent,
                        "message:send",
                        data,
                        timeout=max(min(self.request_timeout, remaining), 0),
                    )
                    break
                except (
                    ConnectionLost,
                    RequestTimeout,
                    GatewayError,
                    TokenExpired,
                    RateLimited,
                    Conflict,
                ) as exc:
                    attempt += 1
                    if isinstance(exc, Conflict):
                        conflicts += 1
                        if conflicts >= SEND_CONFLICT_ATTEMPTS:
                            raise
                    retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
                    delay = retry_after if retry_after is not None else _retry_delay(attempt)
                    if loop.time() + delay >= deadline:
                        raise
                    log.info("retrying message:send", extra={"error": exc.code, "attempt": attempt})
                    await self._sleep_unless_stopped(delay)
        finally:
            self._sending.discard(key)
        seq = reply.seq
        self._deliver(self.inbox.record_own(conversation_id, seq), ack=False)
        if self.inbox.has_gap(conversation_id):
            self._sync_wakeup.set()  # others' messages before ours have not arrived yet
        await self._stop_typing_quietly(conversation_id)
        return Sent(
            conversation_id=conversation_id,
            seq=seq,
            message_id=reply.messageId,
            created_at=reply.createdAt,
            client_message_id=client_message_id,
        )

    async def ack(self, conversation_id: str, seq: int) -> wire.CursorMoved:
        reply = await self.call(
            wire.CursorMoved, "message:ack", {"conversationId": conversation_id, "seq": seq}
        )
        self._note_acked(conversation_id, reply.seq)
        return reply

    async def mark_read(self, conversation_id: str, seq: int) -> wire.CursorMoved:
        """Read up to ``seq`` (the server acks up to it too)."""
        reply = await self.call(
            wire.CursorMoved, "message:read", {"conversationId": conversation_id, "seq": seq}
        )
        self._note_acked(conversation_id, reply.seq)
        return reply

    async def sync(
        self, cursors: Mapping[str, int], *, limit: int | None = None
    ) -> wire.SyncResult:
        """One ``message:sync`` request (its messages also go through de-duplication and
        are delivered as ``message:new`` events when new). Returns the reply."""
        reply = await self.call(
            wire.SyncResult,
            "message:sync",
            {"cursors": dict(cursors), "limit": limit or self.sync_limit},
        )
        for entry in reply.conversations.values():
            self._ingest(m.model_dump(exclude_none=True) for m in entry.messages)
        return reply

    async def history(
        self,
        conversation_id: str,
        *,
        before_seq: int | None = None,
        around_seq: int | None = None,
        limit: int = 50,
    ) -> wire.HistoryPage:
        """Older messages (oldest first), or with ``around_seq`` a page around that seq (a
        search hit); not de-duplicated against the live stream."""
        data: dict[str, Any] = {"conversationId": conversation_id, "limit": limit}
        if before_seq is not None:
            data["beforeSeq"] = before_seq
        if around_seq is not None:
            data["aroundSeq"] = around_seq
        return await self.call(wire.HistoryPage, "message:history", data)

    async def search(
        self,
        query: str,
        *,
        conversation_id: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> wire.SearchResult:
        """``message:search``: the best hits first (every word must match; the last word
        also as a prefix unless followed by a space; ``"quoted words"`` as a phrase)."""
        data: dict[str, Any] = {"query": query, "limit": limit}
        if conversation_id is not None:
            data["conversationId"] = conversation_id
        if cursor is not None:
            data["cursor"] = cursor
        return await self.call(wire.SearchResult, "message:search", data)

    async def typing(self, conversation_id: str) -> bool:
        """Call on every keystroke. Sends ``typing:start`` at most once per
        ``typing_interval`` (the server refuses more than one per 2 s) and schedules
        ``typing:stop`` after ``typing_idle`` seconds without a call. True if a frame
        was sent now."""
        state = self._typing.setdefault(conversation_id, _Typing())
        self._restart_idle_timer(conversation_id, state)
        now = self._clock()
        if state.started_at is not None and now - state.started_at < self.typing_interval:
            state.active = True
            return False
        if not self._open.is_set():
            return False  # typing is ephemeral: never queued for later
        state.started_at = now
        state.active = True
        try:
            await self.call(wire.TypingSent, "typing:start", {"conversationId": conversation_id})
        except RateLimited:
            return False
        return True

    async def stop_typing(self, conversation_id: str) -> bool:
        """Sends ``typing:stop`` if a ``typing:start`` is still standing; True if sent."""
        state = self._typing.get(conversation_id)
        if state is None or not state.active:
            return False
        if state.idle_timer is not None and state.idle_timer is not asyncio.current_task():
            state.idle_timer.cancel()
        state.idle_timer = None
        state.active = False
        if not self._open.is_set():
            return False
        await self.call(wire.TypingSent, "typing:stop", {"conversationId": conversation_id})
        return True

    def _restart_idle_timer(self, conversation_id: str, state: _Typing) -> None:
        if state.idle_timer is not None:
            state.idle_timer.cancel()

        async def stop_when_idle() -> None:
            await asyncio.sleep(self.typing_idle)
            await self._stop_typing_quietly(conversation_id)

        state.idle_timer = self._spawn(stop_when_idle())

    async def _stop_typing_quietly(self, conversation_id: str) -> None:
        try:
            await self.stop_typing(conversation_id)
        except SwitchboardClientError as exc:
            log.debug("typing:stop failed", extra={"error": exc})

    async def query_presence(self, user_ids: Iterable[str]) -> list[wire.Presence]:
        reply = await self.call(wire.PresenceList, "presence:query", {"userIds": list(user_ids)})
        return reply.presence

    async def get_preferences(self) -> wire.PreferencesView:
        return await self.call(wire.PreferencesView, "preferences:get")

    async def set_preferences(
        self,
        *,
        email_on_offline: bool | None = None,
        email: str | None = None,
        digest_minutes: int | None = None,
    ) -> wire.PreferencesView:
        data: dict[str, Any] = {}
        if email_on_offline is not None:
            data["emailOnOffline"] = email_on_offline
        if email is not None:
            data["email"] = email
        if digest_minutes is not None:
            data["digestMinutes"] = digest_minutes
        return await self.call(wire.PreferencesView, "preferences:set", data)

    async def verify_email(self, code: str) -> wire.PreferencesView:
        """Enters the 6-digit code a new address was mailed (double opt-in): until then
        no notification mail goes there (``emailVerified`` in the preferences)."""
        return await self.call(wire.PreferencesView, "preferences:verify-email", {"code": code})

    async def list_notifications(
        self, *, limit: int = 20, before: str | None = None, unread_only: bool = False
    ) -> wire.NotificationPage:
        data: dict[str, Any] = {"limit": limit, "unreadOnly": unread_only}
        if before is not None:
            data["before"] = before
        return await self.call(wire.NotificationPage, "notification:list", data)

    async def read_notifications(self, notification_ids: Iterable[str]) -> wire.NotificationsMarked:
        return await self.call(
            wire.NotificationsMarked,
            "notification:read",
            {"notificationIds": list(notification_ids)},
        )

    async def refresh_token(self, token: str | None = None) -> wire.TokenRefreshed:
        """``auth:refresh``: extends this connection with a fresh token of the same user
        (``token``, or the token provider's next one); later reconnects use it too."""
        if token is None and not callable(self._token_source):
            raise SwitchboardClientError("refresh_token() needs a token: there is no provider")
        fresh = token or await self._token()
        reply = await self.call(wire.TokenRefreshed, "auth:refresh", {"token": fresh})
        self._token_value = fresh
        return reply

    async def _recover_expired(self) -> None:
        """The connection's token expired: refresh it in place if a provider can give a
        new one, else reconnect (a static expired token then fails with
        AuthenticationFailed, which is the truth)."""
        if callable(self._token_source):
            try:
                await self.refresh_token()
            except SwitchboardClientError as exc:
                log.warning("auth:refresh failed (%s): reconnecting", exc)
            else:
                return
        await self._drop("token expired")

    async def _refresh_before_expiry(self) -> None:
        """With a token provider: refresh ``refresh_margin`` seconds before ``exp``, so
        requests never meet ``token_expired`` on a long-lived connection."""
        if not callable(self._token_source):
            return
        while True:
            expires = _token_claim(self._token_value or "", "exp")
            if not isinstance(expires, int | float):
                return
            # Never sooner than a tenth of the margin: a provider handing out tokens that
            # are already nearly expired must not turn this into a busy loop.
            floor = min(5.0, self.refresh_margin / 10)
            await asyncio.sleep(max(expires - time.time() - self.refresh_margin, floor))
            try:
                await self.refresh_token()
            except SwitchboardClientError as exc:
                log.warning("auth:refresh failed (%s): reconnecting", exc)
                await self._drop("token refresh failed")
                return

    # ------------------------------------------------------------------ incoming frames
    def _dispatch(self, raw: str | bytes) -> None:
        self._last_received = asyncio.get_running_loop().time()  # any frame: the link lives
        try:
            frame = json.loads(raw)
        except ValueError:
            log.warning("dropped a frame that is not JSON")
            return
        if not isinstance(frame, dict):
            return
        kind = frame.get("type")
        if kind == "reply":
            self._resolve(frame)
            return
        if kind is None and isinstance(frame.get("message"), str):
            # API Gateway's answer for a failed integration names no request. With one
            # request waiting it is that one; with several, failing them all would make
            # callers retry requests that succeeded (a group create is not idempotent),
            # so they wait for their own replies or time out.
            if len(self._pending) == 1:
                self._fail_pending(GatewayError(frame["message"], details=frame))
            else:
                log.warning("API Gateway error frame with %d requests waiting", len(self._pending))
            return
        if not isinstance(kind, str) or kind == "pong":  # a pong only proves the link
            return
        data = frame.get("data")
        data = data if isinstance(data, dict) else {}
        if kind in ("message:new", "message:batch"):
            # a batch (the reconnect backlog) is its messages, each as if pushed alone
            messages = [data] if kind == "message:new" else data.get("messages")
            self._ingest(messages if isinstance(messages, list) else [])
            return
        if kind in CHANGE_PUSHES:
            self.messages.note_push(data)
        self._emit(Event(kind, data))

    def _resolve(self, frame: dict[str, Any]) -> None:
        entry = self._pending.pop(str(frame.get("id")), None)
        if entry is None:
            log.debug("reply for no waiting request", extra={"requestId": frame.get("id")})
            return
        action, future = entry
        if future.done():
            return
        if frame.get("ok") is True:
            data = frame.get("data")
            future.set_result(data if isinstance(data, dict) else {})
            return
        error = error_from_reply(action, frame.get("error"))
        future.set_exception(error)
        if error.code == "token_expired" and (self._refreshing is None or self._refreshing.done()):
            self._refreshing = self._spawn(self._recover_expired())

    def _ingest(self, items: Iterable[Any]) -> None:
        touched: set[str] = set()
        for item in items:
            try:
                message = Message.from_wire(item)
            except ValueError as exc:
                log.warning("dropped a malformed message", extra={"error": str(exc)})
                continue
            touched.add(message.conversation_id)
            self.messages.track(message.conversation_id)
            if self._is_own_pending_send(message):
                self._deliver(
                    self.inbox.record_own(message.conversation_id, message.seq), ack=False
                )
            else:
                self._deliver(self.inbox.accept(message))
        if any(self.inbox.has_gap(c) for c in touched):
            self._sync_wakeup.set()

    def _is_own_pending_send(self, message: Message) -> bool:
        if message.client_message_id is None:
            return False
        if (message.conversation_id, message.client_message_id) not in self._sending:
            return False
        return self.user_id is None or message.sender_id == self.user_id

    def _deliver(self, messages: list[Message], *, ack: bool = True) -> None:
        for message in messages:
            self.stats.delivered += 1
            self._emit(Event("message:new", message.raw, message))
        if messages and ack and self.auto_ack:
            self._ack_wakeup.set()

    def _note_acked(self, conversation_id: str, seq: int) -> None:
        self._acked[conversation_id] = max(self._acked.get(conversation_id, 0), seq)

    # ------------------------------------------------------------------ background work
    async def _acker(self) -> None:
        """Acks each conversation's cursor; one ack in flight at a time, so a burst of
        messages costs one or two acks, not one each."""
        while True:
            await self._ack_wakeup.wait()
            self._ack_wakeup.clear()
            if not self.auto_ack:
                continue
            for conversation_id, cursor in self.inbox.cursors.items():
                if cursor <= self._acked.get(conversation_id, 0):
                    continue
                if not self._open.is_set():
                    break  # the resume after the reconnect wakes us again
                try:
                    await self.ack(conversation_id, cursor)
                    self.stats.acks += 1
                except (NotFound, Forbidden):
                    self._note_acked(conversation_id, cursor)  # nothing to ack there
                except SwitchboardClientError as exc:
                    log.info("ack failed; retried after reconnect", extra={"error": str(exc)})
                    break

    async def _gap_filler(self) -> None:
        while True:
            await self._sync_wakeup.wait()
            self._sync_wakeup.clear()
            # A late push (two senders' pushes crossing, an SQS retry) usually fills a
            # gap by itself; only then ask.
            await asyncio.sleep(self.gap_fill_delay)
            gaps = self.inbox.gaps()
            if not gaps or not self._ready.is_set():
                continue  # nothing missing, or the resume after the reconnect covers it
            try:
                await self._sync_from(gaps)
            except SwitchboardClientError as exc:
                log.info("gap sync failed", extra={"error": str(exc)})
                if self._open.is_set():
                    self._sync_wakeup.set()

    async def _sync_from(self, cursors: Mapping[str, int]) -> None:
        """``message:sync`` from these cursors until nothing more is behind."""
        todo = dict(cursors)
        while todo:
            chunk = dict(itertools.islice(todo.items(), SYNC_MAX_CURSORS))
            for conversation_id in chunk:
                del todo[conversation_id]
            self.stats.gap_syncs += 1
            try:
                reply = await self.sync(chunk)
            except (NotFound, Forbidden):
                if len(chunk) == 1:
                    log.warning("cannot sync %s", next(iter(chunk)))
                    continue
                # One bad cursor fails the whole request: sync the others one by one.
                for conversation_id, seq in chunk.items():
                    with contextlib.suppress(NotFound, Forbidden):
                        await self._sync_from({conversation_id: seq})
                continue
            for conversation_id, entry in reply.conversations.items():
                if entry.hasMore and entry.messages:
                    todo[conversation_id] = entry.messages[-1].seq

    async def _resume(self) -> None:
        """After a connect: seed unknown conversations from the server's ackedSeq, then
        sync every conversation whose lastSeq is past its cursor: the inbox's and the
        message requests' (their messages are delivered as usual)."""
        behind: dict[str, int] = {}
        async for conversation in self._every_conversation():
            conversation_id = conversation.conversationId
            acked = conversation.ackedSeq
            self._acked[conversation_id] = acked  # the server's own view, after any ack
            self._deliver(self.inbox.seed(conversation_id, acked))
            self.messages.seen(conversation_id, conversation.lastChange or 0)
            cursor = self.inbox.cursor(conversation_id) or 0
            if conversation.lastSeq > cursor:
                behind[conversation_id] = cursor
        for released in self.inbox.seed_unseeded_at_zero().values():
            self._deliver(released)
        behind.update(self.inbox.gaps())
        await self._sync_from(behind)
        await self.messages.sync_changes()  # edits, deletes, reactions while away
        self._ack_wakeup.set()

    async def _every_conversation(self) -> AsyncIterator[wire.ConversationSummary]:
        async for conversation in self.iter_conversations():
            yield conversation
        async for conversation in self.iter_conversations(requests=True):
            yield conversation

    async def _keepalive(self, ws: ClientConnection) -> None:
        loop = asyncio.get_running_loop()
        while True:
            idle_for = loop.time() - self._last_sent
            if idle_for < self.keepalive_interval:
                await asyncio.sleep(self.keepalive_interval - idle_for)
                continue
            # `keepalive` is answered by API Gateway itself (a MOCK integration): a `pong`
            # with no request id, so any frame received after it proves the link.
            sent_at = loop.time()
            try:
                await self._send_frame(ws, {"action": "keepalive"})
            except ConnectionClosed:
                return
            self.stats.pings += 1
            while self._last_received < sent_at:
                if loop.time() - sent_at >= self.keepalive_timeout:
                    log.warning("no pong in %ss: reconnecting", self.keepalive_timeout)
                    await self._drop("keepalive timeout", ws)
                    return
                await asyncio.sleep(min(0.05, self.keepalive_timeout / 10))

    async def _drop(self, reason: str, ws: ClientConnection | None = None) -> None:
        """Closes the current connection so that the loop opens a new one."""
        ws = ws or self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(1000, reason), 5)

    # ------------------------------------------------------------------ connection loop
    async def _run(self) -> None:
        fresh_token_tried = False
        while not self._closing:
            try:
                token = await self._token()
                ws = await websockets.connect(
                    _with_token(self.url, token),  # with backlog=batch (message:batch)
                    user_agent_header=self.user_agent,
                    open_timeout=self.open_timeout,
                    ping_interval=None,  # the app-level ping keeps API Gateway's idle timer
                    close_timeout=5,
                    max_size=2 * MAX_MESSAGE_BYTES,
                )
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status in (401, 403):
                    if callable(self._token_source) and not fresh_token_tried:
                        fresh_token_tried = True
                        continue
                    body = exc.response.body.decode(errors="replace") if exc.response.body else ""
                    self._stop(AuthenticationFailed(status, body[:200]))
                    return
                await self._retry_later(f"HTTP {status}")
                continue
            except InvalidURI as exc:
                self._stop(SwitchboardClientError(str(exc)))
                return
            except (OSError, TimeoutError, InvalidHandshake, SwitchboardClientError) as exc:
                await self._retry_later(str(exc) or type(exc).__name__)
                continue
            fresh_token_tried = False
            await self._serve(ws)
            if not self._closing:
                await self._retry_later("connection closed")

    async def _serve(self, ws: ClientConnection) -> None:
        self._ws = ws
        self.stats.connections += 1
        self._last_sent = asyncio.get_running_loop().time()
        self._open.set()
        reader = asyncio.create_task(self._read(ws))
        helpers = [
            asyncio.create_task(self._keepalive(ws)),
            asyncio.create_task(self._resumed(ws)),
            asyncio.create_task(self._refresh_before_expiry()),
        ]
        try:
            await reader
        finally:
            self._open.clear()
            self._ready.clear()
            self._ws = None
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            self._fail_pending(ConnectionLost("the connection closed"))
            self.stats.disconnects += 1
            if not self._closing:
                self._emit(
                    Event(
                        "client:disconnected",
                        {"code": ws.close_code, "reason": ws.close_reason or ""},
                    )
                )

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                self._dispatch(raw)

    async def _resumed(self, ws: ClientConnection) -> None:
        try:
            await self._resume()
        except SwitchboardClientError as exc:
            # Without a resume the client cannot promise completeness: start over.
            log.warning("resume failed: %s", exc)
            await self._drop("resume failed", ws)
            return
        self.backoff.reset()
        self._ready.set()
        if self.inbox.gaps():
            self._sync_wakeup.set()  # opened while the resume was syncing
        self._emit(Event("client:connected", {"connections": self.stats.connections}))

    async def _retry_later(self, reason: str) -> None:
        self.stats.failed_attempts += 1
        delay = self.backoff.next_delay()
        log.info("reconnecting in %.2fs (%s)", delay, reason)
        self._emit(Event("client:reconnecting", {"delay": delay, "reason": reason}))
        await self._sleep_unless_stopped(delay)

    async def _sleep_unless_stopped(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), delay)
        self._raise_if_stopped()

    async def _token(self) -> str:
        """The token for the next handshake or refresh. A provider is asked every time
        (it caches as it likes); a static token is used until ``refresh_token`` replaces
        it."""
        source = self._token_source
        if isinstance(source, str):
            return self._token_value or source
        value = source()
        token = await value if inspect.isawaitable(value) else value
        if not isinstance(token, str) or not token:
            raise SwitchboardClientError("the token provider returned no token")
        self._token_value = token
        return token

    def _stop(self, error: SwitchboardClientError) -> None:
        log.error("client stopped: %s", error)
        self._fatal = error
        self._stopped.set()
        self._fail_pending(error)
        self._end_streams()

    def _raise_if_stopped(self) -> None:
        if self._fatal is not None:
            raise self._fatal
        if self._closing:
            raise ClientClosed("the client was closed")

    async def _await(self, event: asyncio.Event, timeout: float, message: str = "") -> None:
        if event.is_set():
            return
        self._raise_if_stopped()
        waiters = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(self._stopped.wait())]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        if event.is_set():
            return
        self._raise_if_stopped()
        raise RequestTimeout(message or f"not connected within {timeout:g}s")

    def _spawn(self, coroutine: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


# ---------------------------------------------------------------------- helpers
def _types(event_type: str | Iterable[str] | None) -> frozenset[str] | None:
    if event_type is None:
        return None
    if isinstance(event_type, str):
        return frozenset({event_type})
    return frozenset(event_type)


async def _logged(awaitable: Awaitable[None], event_type: str) -> None:
    try:
        await awaitable
    except Exception:
        log.exception("event callback failed", extra={"eventType": event_type})


def _retry_delay(attempt: int) -> float:
    return random.uniform(0, min(2.0, 0.1 * 2**attempt))  # noqa: S311 - jitter, not crypto


def _with_token(url: str, token: str) -> str:
    parts = urlsplit(url)
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k not in ("token", "backlog")
    ]
    # The reconnect backlog as message:batch frames of up to 32 KB (fewer, cheaper posts).
    query += [("backlog", "batch"), ("token", token)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _token_claim(token: str, claim: str) -> Any:
    """A JWT claim, read without verifying (the server verifies; this is for display and
    for timing refreshes)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    return claims.get(claim) if isinstance(claims, dict) else None


def _token_subject(token: str) -> str | None:
    subject = _token_claim(token, "sub")
    return subject if isinstance(subject, str) else None
