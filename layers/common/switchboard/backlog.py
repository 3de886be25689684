"""The reconnect backlog: a (re)connecting device gets every message after its user's
acked seq, in seq order, without asking (driven by the Connections stream, because API
Gateway cannot post to a connection before its $connect has returned)."""

from __future__ import annotations

from dataclasses import dataclass

from switchboard.dal.conversations import ConversationRepository
from switchboard.delivery import Delivery
from switchboard.gateway import ConnectionGone
from switchboard.protocol import push

BACKLOG_PAGE = 100


@dataclass(frozen=True, slots=True)
class BacklogResult:
    pushed: int
    connection_gone: bool


class Backlog:
    def __init__(self, conversations: ConversationRepository, delivery: Delivery) -> None:
        self.conversations = conversations
        self.delivery = delivery

    def deliver(self, connection_id: str, user_id: str) -> BacklogResult:
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
                    pushed += 1
                after = page[-1].seq
        return BacklogResult(pushed, connection_gone=False)
