"""Presence: the members of a user's conversations see them online on the first
connection and offline (with lastSeen) after the last one."""

from __future__ import annotations

from switchboard.dal.conversations import ConversationRepository
from switchboard.delivery import Delivery
from switchboard.protocol import push


class Presence:
    def __init__(self, conversations: ConversationRepository, delivery: Delivery) -> None:
        self.conversations = conversations
        self.delivery = delivery
        self.users = delivery.users

    def connected(self, connection_id: str, user_id: str, connected_at: int) -> None:
        presence = self.users.presence([user_id])[user_id]
        # Judged against the connection's own time, not the (later) processing time: if
        # another device closed after this one opened, this was not the first connection.
        if presence.connection_ids == {connection_id} and presence.last_seen < connected_at:
            self.announce(user_id, online=True, last_seen=None)

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
