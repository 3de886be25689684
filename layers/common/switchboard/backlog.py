"""The reconnect backlog: a (re)connecting device gets every message after its user's
acked seq, in seq order, without asking (driven by the Connections stream, because API
Gateway cannot post to a connection before its $connect has returned). The stream record
can still arrive before the handshake has ended: a 410 then is waited out, never taken as
the connection being gone (Delivery.when_ready).

A connection opened with ``backlog=batch`` gets it as ``message:batch`` frames of up to
BATCH_FRAME_BYTES (API Gateway bills a WebSocket message per 32 KB): a 1,000-message
catch-up is ~10 posts instead of 1,000. Others get one ``message:new`` per message."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from switchboard.dal.conversations import RECENT_CONVERSATIONS, ConversationRepository
from switchboard.delivery import Delivery
from switchboard.gateway import ConnectionGone, PostRefused
from switchboard.message_ops import wire_messages
from switchboard.observability import logger
from switchboard.protocol import push, to_json
from switchboard.wire.messaging import Message, MessageBatch

BACKLOG_PAGE = 1000  # one Query (up to its 1 MB page) per conversation, usually
BACKLOG_MAX_MESSAGES = 1000  # pushed on one connect
BATCH_FRAME_BYTES = 32 * 1024  # one billed WebSocket message (frames may be 128 KB)

# A frame as pushed: a message:new as its dict, a message:batch as its JSON text already
Frame = dict[str, Any] | str


@dataclass(frozen=True, slots=True)
class BacklogResult:
    pushed: int
    connection_gone: bool


class Backlog:
    def __init__(self, conversations: ConversationRepository, delivery: Delivery) -> None:
        self.conversations = conversations
        self.delivery = delivery

    def deliver(
        self, connection_id: str, user_id: str, connected_at: int, *, batch: bool = False
    ) -> BacklogResult:
        """Pushes, to this one connection, the messages after the user's acked seq (as
        ``message:batch`` frames if ``batch``). Posts are sequential per connection so the
        frames arrive in seq order. A post that fails for a retryable reason goes to the
        delivery queue (clients order by seq) rather than failing the stream record,
        which would replay the whole backlog."""
        packer = _Packer(BATCH_FRAME_BYTES if batch else 0)
        pushed = 0
        for message in self._backlog(user_id):
            for frame in packer.add(message):
                if not self._send(connection_id, user_id, connected_at, frame):
                    return BacklogResult(pushed, connection_gone=True)
            pushed += 1
        for frame in packer.flush():
            if not self._send(connection_id, user_id, connected_at, frame):
                return BacklogResult(pushed, connection_gone=True)
        return BacklogResult(pushed, connection_gone=False)

    def _backlog(self, user_id: str) -> Iterator[Message]:
        # Bounded per connect, whatever others sent: the RECENT_CONVERSATIONS most recently
        # active conversations of each folder, BACKLOG_MAX_MESSAGES messages in all.
        # Clients fetch the rest with message:sync (conversation:list gives every cursor).
        # A request's messages are delivered as usual, so its folder is read too; after
        # the inbox, so no number of strangers' requests can crowd out a contact's backlog.
        # It is read first, though: accepting moves a conversation from the requests to
        # the inbox (the only move between folders), and an accept landing between the
        # two reads would otherwise hide it from both. Read this way round it is in both,
        # and kept once, where the inbox has it.
        requests = self.conversations.inbox(user_id, RECENT_CONVERSATIONS, requests=True)
        accepted = self.conversations.inbox(user_id, RECENT_CONVERSATIONS).members
        inboxed = {m.conversation_id for m in accepted}
        recent = [*accepted, *(m for m in requests.members if m.conversation_id not in inboxed)]
        conversations = self.conversations.get_many(m.conversation_id for m in recent)
        left = BACKLOG_MAX_MESSAGES
        for member in recent:
            conversation = conversations.get(member.conversation_id)
            if conversation is None or conversation.last_seq <= member.acked_seq:
                continue
            after = member.acked_seq
            while after < conversation.last_seq and left > 0:
                page = self.conversations.messages_after(
                    member.conversation_id, after, min(BACKLOG_PAGE, left)
                )
                if not page:
                    break
                yield from wire_messages(self.conversations, page)  # quotes as now
                left -= len(page)
                after = page[-1].seq

    def _send(self, connection_id: str, user_id: str, connected_at: int, frame: Frame) -> bool:
        """Posts one frame once the connection is ready; False (forgotten) if it is gone."""
        if self.delivery.when_ready(
            connection_id, connected_at, partial(self._post, connection_id, frame)
        ):
            return True
        self.delivery.forget(connection_id, user_id)
        return False

    def _post(self, connection_id: str, frame: Frame) -> bool:
        """False on 410. A post refused for what it is is dropped (never retryable)."""
        try:
            self.delivery.gateway.post(connection_id, frame)
        except ConnectionGone:
            return False
        except PostRefused as refused:
            logger.error(
                "backlog push refused by API Gateway, dropped",
                extra={"connectionId": connection_id, "reason": refused.reason},
            )
        return True


class _Packer:
    """Messages -> frames: one ``message:new`` each (``limit`` 0), or ``message:batch``
    frames of at most ``limit`` bytes of JSON (a message bigger than that alone goes in a
    batch of one: frames may be 128 KB). Each message is checked and serialised once
    (``Message.wire()``, then its JSON text, whose length is what the limit counts); a
    batch frame is those texts joined inside MessageBatch's own envelope."""

    # '{"type":"message:batch","data":{"messages":' + [the messages] + '}}'
    _OPEN, _CLOSE = to_json(push(MessageBatch(messages=[]))).split("[]")
    _ENVELOPE = len(_OPEN) + len("[]") + len(_CLOSE)

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pending: list[str] = []
        self.size = self._ENVELOPE

    def add(self, message: Message) -> list[Frame]:
        if not self.limit:
            return [push(message)]
        text = to_json(message.wire())
        size = len(text.encode()) + 1  # and the comma before it (but for the first)
        frames = self.flush() if self.pending and self.size + size > self.limit else []
        self.size += size if self.pending else size - 1
        self.pending.append(text)
        return frames

    def flush(self) -> list[Frame]:
        if not self.pending:
            return []
        frame = f"{self._OPEN}[{','.join(self.pending)}]{self._CLOSE}"
        self.pending, self.size = [], self._ENVELOPE
        return [frame]
