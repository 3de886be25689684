"""What follows a connection opening or closing (driven by the Connections stream, because
API Gateway cannot post to a connection before its $connect has returned):
- a reconnecting user gets every message after their acked seq, in seq order, unasked;
- the members of their conversations see them online on the first connection and
  offline (with lastSeen) after the last one.
"""

from __future__ import annotations

from dataclasses import dataclass

from switchboard.dal.conversations import ConversationRepository
from switchboard.delivery import Delivery
from switchboard.gateway import ConnectionGone, PostRefused
from switchboard.observability import logger
from switchboard.protocol import push

BACKLOG_PAGE = 100
# A post can race the $connect that created the connection (the stream record is written
# before API Gateway has finished the handshake): a 410 this soon after connecting means
# "not yet", so the record is retried instead of the connection being forgotten.
CONNECT_GRACE_MS = 10_000


class ConnectionNotReady(Exception):
    """The connection is too new to be posted to yet; retry the stream record."""


@dataclass(frozen=True, slots=True)
class BacklogResult:
    pushed: int
    connection_gone: bool


class ConnectionEvents:
    def __init__(self, conversations: ConversationRepository, delivery: Delivery) -> None:
        self.conversations = conversations
        self.delivery = delivery
        self.users = delivery.users

    def connected(self, connection_id: str, user_id: str, connected_at: int, now_ms: int) -> None:
        backlog = self.deliver_backlog(connection_id, user_id, connected_at, now_ms)
        presence = self.users.presence([user_id])[user_id]
        # Judged against the connection's own time, not the (later) processing time: if
        # another device closed after this one opened, this was not the first connection.
        if presence.connection_ids == {connection_id} and presence.last_seen < connected_at:
            self.announce(user_id, online=True, last_seen=None)
        logger.info(
            "connection opened",
            extra={"connectionId": connection_id, "userId": user_id, "backlog": backlog.pushed},
        )

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
                    try:
                        self.delivery.gateway.post(
                            connection_id, push("message:new", message.wire())
                        )
                    except ConnectionGone:
                        self.delivery.forget(connection_id, user_id)
                        return BacklogResult(pushed, connection_gone=True)
                    except PostRefused as refused:  # never retryable: skip this one
                        logger.error(
                            "backlog push refused by API Gateway, dropped",
                            extra={"connectionId": connection_id, "reason": refused.reason},
                        )
                        continue
                    pushed += 1
                after = page[-1].seq
        return BacklogResult(pushed, connection_gone=False)
