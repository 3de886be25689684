"""Presence: a user's contacts (the members of their most recently active accepted
conversations who accepted them too; see membership.py) see them online on the first
connection and offline (with lastSeen) after the last one."""

from __future__ import annotations

from switchboard.dal.conversations import ConversationRepository
from switchboard.dal.users import Presence as UserPresence
from switchboard.delivery import Delivery
from switchboard.protocol import push
from switchboard.wire.messaging import Presence as PresencePush

PRESENCE_AUDIENCE = 500  # users told of one online/offline change, most recent first


class Presence:
    def __init__(self, conversations: ConversationRepository, delivery: Delivery) -> None:
        self.conversations = conversations
        self.delivery = delivery
        self.users = delivery.users

    def connected(
        self, connection_id: str, user_id: str, connected_at: int, *, state: UserPresence | None
    ) -> None:
        """``state``: the user's presence if the caller has just read it."""
        presence = state or self.users.presence([user_id])[user_id]
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
        # The user's contacts: the members who accepted the user's most recently active
        # accepted conversations, at most PRESENCE_AUDIENCE of them. Requests are another
        # folder of the activity index, so conversations strangers start can neither
        # receive this nor push a contact out of the page: the cost is bounded and the
        # audience is chosen by the user. Blocks are read with the connections.
        contacts = self.conversations.recent_contacts(user_id)[:PRESENCE_AUDIENCE]
        if contacts:
            self.delivery.to_users(
                contacts,
                push(PresencePush(userId=user_id, online=online, lastSeen=last_seen)),
                private_to=user_id,
            )
