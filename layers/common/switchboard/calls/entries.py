"""System entries a call writes in its conversation (recording started/stopped): stored
like a message of the participant it is about (seq, sync, history, search, unread all
apply), marked ``system``, pushed to the members as ``message:new``."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from switchboard.dal.conversations import DuplicateSend, SeqConflict, StoredMessage
from switchboard.errors import Conflict
from switchboard.observability import logger
from switchboard.protocol import push

if TYPE_CHECKING:
    from switchboard.dal.conversations import ConversationRepository
    from switchboard.delivery import Delivery

APPEND_ATTEMPTS = 6


def post(
    conversations: ConversationRepository,
    delivery: Delivery,
    conversation_id: str,
    *,
    user_id: str,
    body: str,
    system: dict[str, Any],
    dedup_key: str,
    now: int,
) -> StoredMessage | None:
    """Appends the entry once per ``dedup_key`` (a retried transition writes it once);
    None if it was there already or the user is no longer a member."""
    for _ in range(APPEND_ATTEMPTS):
        conversation = conversations.get(conversation_id)
        if conversation is None or user_id not in conversation.members:
            logger.warning(
                "system entry skipped: not a member",
                extra={"conversationId": conversation_id, "userId": user_id},
            )
            return None
        entry = StoredMessage(
            conversation_id=conversation_id,
            seq=conversation.last_seq + 1,
            message_id=uuid.uuid4().hex,
            sender_id=user_id,
            body=body,
            created_at=now,
            client_message_id=dedup_key,
            system=system,
        )
        try:
            conversations.append(conversation, entry)
        except DuplicateSend:
            return None
        except SeqConflict:
            continue
        delivery.to_users(conversation.members, push(entry.wire()))
        return entry
    raise Conflict("the conversation is too busy right now, retry")
