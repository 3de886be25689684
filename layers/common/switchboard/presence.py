"""What follows a connection opening or closing (driven by the Connections stream, because
API Gateway cannot post to a connection before its $connect has returned):
- a connection whose token was revoked while it was connecting is closed (admin:revoke
  may have found it still handshaking, when API Gateway answers its DELETE with 410);
- a reconnecting user gets every message after their acked seq, in seq order, unasked;
- the members of their conversations see them online on the first connection and
  offline (with lastSeen) after the last one.
The stream record can arrive before the handshake has ended: a 410 then is waited out a
little and, failing that, the record is retried (ConnectionNotReady), never taken as the
connection being gone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from switchboard.dal.conversations import ConversationRepository
from switchboard.delivery import CONNECT_GRACE_MS, Delivery
from switchboard.gateway import ConnectionGone, PostRefused
from switchboard.observability import logger
from switchboard.protocol import push

BACKLOG_PAGE = 100
# Waits (s) before trying a young connection again, within one stream record; then the
# record itself is retried. Lambda retries a stream record at once, so the waits are here.
NOT_READY_WAITS = (0.2, 0.4, 0.8)


class ConnectionNotReady(Exception):
    """The connection is too new to be posted to yet; retry the stream record."""


@dataclass(frozen=True, slots=True)
class BacklogResult:
    pushed: int
    connection_gone: bool


class ConnectionEvents:
    def __init__(
        self,
        conversations: ConversationRepository,
        delivery: Delivery,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.conversations = conversations
        self.delivery = delivery
        self.users = delivery.users
        self._clock = clock
        self._sleep = sleep

    def connected(
        self,
        connection_id: str,
        user_id: str,
        connected_at: int,
        now_ms: int,
        *,
        token_iat: int = 0,
    ) -> None:
        presence = self.users.presence([user_id])[user_id]
        if token_iat < presence.tokens_valid_after:
            # Revoked after the $connect write (which is conditioned on the stamp): the
            # revocation's DELETE may have met the handshake and got 410. Close it now.
            self._close_revoked(connection_id, user_id, connected_at)
            return
        backlog = self.deliver_backlog(connection_id, user_id, connected_at, now_ms)
        # Judged against the connection's own time, not the (later) processing time: if
        # another device closed after this one opened, this was not the first connection.
        if presence.connection_ids == {connection_id} and presence.last_seen < connected_at:
            self.announce(user_id, online=True, last_seen=None)
        logger.info(
            "connection opened",
            extra={"connectionId": connection_id, "userId": user_id, "backlog": backlog.pushed},
        )

    def _close_revoked(self, connection_id: str, user_id: str, connected_at: int) -> None:
        closed = self._when_ready(
            connection_id, connected_at, lambda: self.delivery.gateway.delete(connection_id)
        )
        if not closed:
            self.delivery.forget(connection_id, user_id)
        logger.info(
            "revoked connection closed on its first stream record",
            extra={"connectionId": connection_id, "userId": user_id},
        )

    def _when_ready(self, connection_id: str, connected_at: int, call: Callable[[], bool]) -> bool:
        """Runs ``call`` (False: API Gateway answered 410). A 410 within CONNECT_GRACE_MS
        of connecting is tried again after NOT_READY_WAITS, then ConnectionNotReady has the
        stream record retried. False: the connection is gone for good."""
        for wait in (*NOT_READY_WAITS, None):
            if call():
                return True
            if int(self._clock() * 1000) - connected_at >= CONNECT_GRACE_MS:
                return False
            if wait is None:
                raise ConnectionNotReady(connection_id)
            self._sleep(wait)
        return False  # unreachable: the last wait is None

    def disconnected(self, connection_id: str, user_id: str, now_ms: int) -> None:
        # Idempotent: $disconnect already did this; a TTL expiry (a missed $disconnect) did not.
        self.users.remove_connection(user_id, connection_id, now_ms)
        presence = self.users.presence([user_id])[user_id]
        if not presence.online:
            self.announce(user_id, online=False, last_seen=presence.last_seen or now_ms)

    def announce(self, user_id: str, *, online: bool, last_seen: int | None) -> None:
        memberships = self.conversations.memberships(user_id)
        conversations = self.conversations.get_many(m.conversation_id for m in memberships)
        contacts = {u for c in conversations.values() for u in c.members} - {user_id}
        if contacts:
            self.delivery.to_users(
                contacts,
                push("presence", {"userId": user_id, "online": online, "lastSeen": last_seen}),
            )

    def deliver_backlog(
        self, connection_id: str, user_id: str, connected_at: int, now_ms: int
    ) -> BacklogResult:
        """Pushes, to this one connection, every message after the user's acked seq.
        Posts are sequential per connection so the frames arrive in seq order. A post that
        fails for a retryable reason goes to the delivery queue (clients order by seq)
        rather than failing the stream record, which would replay the whole backlog."""
        memberships = self.conversations.memberships(user_id)
        conversations = self.conversations.get_many(m.conversation_id for m in memberships)
        pushed = 0
        for member in sorted(memberships, key=lambda m: m.conversation_id):
            conversation = conversations.get(member.conversation_id)
            if conversation is None or conversation.last_seq <= member.acked_seq:
                continue
            after = member.acked_seq
            while after < conversation.last_seq:
                page = self.conversations.messages_after(
                    member.conversation_id, after, BACKLOG_PAGE
                )
                if not page:
                    break
                for message in page:
                    frame = push("message:new", message.wire())
                    if not self._when_ready(
                        connection_id, connected_at, partial(self._post, connection_id, frame)
                    ):
                        self.delivery.forget(connection_id, user_id)
                        return BacklogResult(pushed, connection_gone=True)
                    pushed += 1
                after = page[-1].seq
        return BacklogResult(pushed, connection_gone=False)

    def _post(self, connection_id: str, frame: dict[str, Any]) -> bool:
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
