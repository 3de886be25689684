"""The reconnect backlog: a (re)connecting device gets every message after its user's
acked seq, in seq order, without asking (driven by the Connections stream, because API
Gateway cannot post to a connection before its $connect has returned). The stream record
can still arrive before the handshake has ended: a 410 then is waited out, never taken as
the connection being gone (Delivery.when_ready)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from switchboard.dal.conversations import RECENT_CONVERSATIONS, ConversationRepository
from switchboard.delivery import Delivery
from switchboard.gateway import ConnectionGone, PostRefused
from switchboard.message_ops import wire_messages
from switchboard.observability import logger
from switchboard.protocol import push

BACKLOG_PAGE = 100
BACKLOG_MAX_MESSAGES = 1000  # pushed on one connect (each is a post)


@dataclass(frozen=True, slots=True)
class BacklogResult:
    pushed: int
    connection_gone: bool


class Backlog:
    def __init__(self, conversations: ConversationRepository, delivery: Delivery) -> None:
        self.conversations = conversations
        self.delivery = delivery

    def deliver(self, connection_id: str, user_id: str, connected_at: int) -> BacklogResult:
        """Pushes, to this one connection, the messages after the user's acked seq.
        Posts are sequential per connection so the frames arrive in seq order. A post that
        fails for a retryable reason goes to the delivery queue (clients order by seq)
        rather than failing the stream record, which would replay the whole backlog."""
        # Bounded per connect, whatever others sent: the RECENT_CONVERSATIONS most recently
        # active conversations, BACKLOG_MAX_MESSAGES messages in all. Clients fetch the
        # rest with message:sync (conversation:list gives every cursor).
        recent = self.conversations.inbox(user_id, RECENT_CONVERSATIONS).members
        conversations = self.conversations.get_many(m.conversation_id for m in recent)
        pushed = 0
        for member in recent:
            conversation = conversations.get(member.conversation_id)
            if conversation is None or conversation.last_seq <= member.acked_seq:
                continue
            after = member.acked_seq
            while after < conversation.last_seq:
                if pushed >= BACKLOG_MAX_MESSAGES:
                    return BacklogResult(pushed, connection_gone=False)
                page = self.conversations.messages_after(
                    member.conversation_id, after, min(BACKLOG_PAGE, BACKLOG_MAX_MESSAGES - pushed)
                )
                if not page:
                    break
                for wired in wire_messages(self.conversations, page):  # quotes as now
                    frame = push(wired)
                    if not self.delivery.when_ready(
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
