"""Consent and membership writes (see switchboard/membership.py for the rules).

Blocks: the blocker's Users item holds ``blocked``, a string set of the users they
blocked (at most MAX_BLOCKS). A 1:1 send checks it inside its own transaction (a
ConditionCheck on the recipient's item: no extra call), and pushes that reveal a user's
activity (presence, typing, receipts) read it in the BatchGetItem that finds the
recipients' connections anyway (``Delivery.to_users(..., private_to=...)``).

Membership changes (leave, add, remove, roles, title) are each one transaction that also
appends a *system entry* to the conversation's seq stream: ``lastSeq`` moves on condition
that it is unchanged, exactly as a send's does, so a send racing a removal either lands
before it (its seq is within what the removed member keeps) or reads the new member list
and retries; nobody is ever delivered a message from after they left.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from botocore.exceptions import ClientError

from switchboard.dal.base import DynamoRepository
from switchboard.dal.conversations import (
    META,
    Conversation,
    GuardRefused,
    SeqConflict,
    StoredMessage,
    inbox,
    member_key,
    requests_folder,
)
from switchboard.dal.items import from_item, is_condition_failure, to_item
from switchboard.dal.transactions import Transaction

MAX_BLOCKS = 1000


class BlockListFull(Exception):
    """The user already blocked MAX_BLOCKS users."""


class BlockRepository(DynamoRepository):
    """The ``blocked`` set of Users items."""

    def block(self, user_id: str, other: str) -> bool:
        """Adds ``other``; False if already blocked. BlockListFull at MAX_BLOCKS."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"userId": {"S": user_id}},
                UpdateExpression="ADD blocked :o",
                ConditionExpression=(
                    "attribute_not_exists(blocked) OR "
                    "(NOT contains(blocked, :id) AND size(blocked) < :max)"
                ),
                ExpressionAttributeValues={
                    ":o": {"SS": [other]},
                    ":id": {"S": other},
                    ":max": {"N": str(MAX_BLOCKS)},
                },
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
            if other in self.blocked(user_id):
                return False
            raise BlockListFull from None
        return True

    def unblock(self, user_id: str, other: str) -> bool:
        """Removes ``other``; False if they were not blocked."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"userId": {"S": user_id}},
                UpdateExpression="DELETE blocked :o",
                ConditionExpression="contains(blocked, :id)",
                ExpressionAttributeValues={":o": {"SS": [other]}, ":id": {"S": other}},
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def blocked(self, user_id: str) -> set[str]:
        response = self.client.get_item(
            TableName=self.table,
            Key={"userId": {"S": user_id}},
            ProjectionExpression="blocked",
            ConsistentRead=True,
        )
        return set(from_item(response.get("Item", {})).get("blocked", ()))

    def not_blocked_check(self, blocker: str, sender: str) -> dict[str, Any]:
        """A ConditionCheck for a transaction: ``blocker`` has not blocked ``sender``."""
        return {
            "TableName": self.table,
            "Key": {"userId": {"S": blocker}},
            "ConditionExpression": "NOT contains(blocked, :s)",
            "ExpressionAttributeValues": {":s": {"S": sender}},
        }


class MembershipRepository(DynamoRepository):
    """Writes of the Conversations and Messages tables that change who is in a
    conversation and how (the reads are ConversationRepository's)."""

    def __init__(self, conversations_table: str, messages_table: str, **kwargs: Any) -> None:
        super().__init__(conversations_table, **kwargs)
        self.messages_table = messages_table

    def accept(self, conversation_id: str, user_id: str) -> bool:
        """Moves a request into the user's inbox; False if it was no request of theirs."""
        tx = Transaction()
        tx.update(
            "meta",
            {
                "TableName": self.table,
                "Key": _key(conversation_id, META),
                "UpdateExpression": "DELETE pending :u",
                "ConditionExpression": "contains(pending, :id) AND contains(members, :id)",
                "ExpressionAttributeValues": {":u": {"SS": [user_id]}, ":id": {"S": user_id}},
            },
        )
        tx.update(
            "member",
            {
                "TableName": self.table,
                "Key": _key(conversation_id, member_key(user_id)),
                "UpdateExpression": "SET folder = :inbox",
                "ConditionExpression": "folder = :requests",
                "ExpressionAttributeValues": {
                    ":inbox": {"S": inbox(user_id)},
                    ":requests": {"S": requests_folder(user_id)},
                },
            },
        )
        try:
            tx.write(self.client)
        except ClientError as exc:
            if tx.refused(exc):
                return False
            raise
        return True

    def decline(self, conversation: Conversation, user_id: str, now_ms: int) -> bool:
        """Takes the user out of a conversation that is a request for them, silently (no
        system entry): they keep what was delivered (leftSeq = lastSeq). A 1:1
        conversation remembers who declined (``declinedBy``): the requester's next send
        is refused by its own transaction, as a block's is. False: no request of theirs,
        or a message landed meanwhile (read again)."""
        meta_set = "SET declinedBy = :id " if conversation.direct else ""
        tx = Transaction()
        tx.update(
            "meta",
            {
                "TableName": self.table,
                "Key": _key(conversation.conversation_id, META),
                "UpdateExpression": meta_set + "DELETE pending :u, members :u",
                "ConditionExpression": "contains(pending, :id) AND lastSeq = :seq",
                "ExpressionAttributeValues": {
                    ":u": {"SS": [user_id]},
                    ":id": {"S": user_id},
                    ":seq": {"N": str(conversation.last_seq)},
                },
            },
        )
        tx.update(
            "member",
            {
                "TableName": self.table,
                "Key": _key(conversation.conversation_id, member_key(user_id)),
                "UpdateExpression": "REMOVE folder SET leftSeq = :seq, leftAt = :at",
                "ConditionExpression": "attribute_exists(sk)",
                "ExpressionAttributeValues": {
                    ":seq": {"N": str(conversation.last_seq)},
                    ":at": {"N": str(now_ms)},
                },
            },
        )
        try:
            tx.write(self.client)
        except ClientError as exc:
            if tx.reasons(exc):
                return False
            raise
        return True

    def change(
        self,
        conversation: Conversation,
        entry: StoredMessage,
        *,
        add: Mapping[str, bool] | None = None,
        remove: Collection[str] = (),
        roles: Mapping[str, str] | None = None,
        title: str | None = None,
        guards: Mapping[str, dict[str, Any]] | None = None,
    ) -> None:
        """One membership change as one transaction: the system entry ``entry`` (seq
        lastSeq + 1, on condition lastSeq is unchanged and its author still a member),
        ``add`` (user -> whether it is a request for them) or ``remove`` (they keep
        history up to the entry), the whole new ``roles`` map, a new ``title``. Every
        remaining member's place in the activity index moves, as for a send.

        SeqConflict: another write moved lastSeq first (read again); GuardRefused: a
        guard (rate limit) refused. Nothing is written then."""
        add = add or {}
        assert entry.seq == conversation.last_seq + 1
        assert not (add and remove)
        now = entry.created_at
        meta = self._meta_update(conversation, entry, add, remove, roles, title)
        tx = Transaction()
        tx.update("meta", meta)
        tx.put(
            "message",
            {
                "TableName": self.messages_table,
                "Item": to_item(
                    {
                        "conversationId": entry.conversation_id,
                        "seq": entry.seq,
                        "messageId": entry.message_id,
                        "senderId": entry.sender_id,
                        "body": "",
                        "createdAt": now,
                        "clientMessageId": entry.client_message_id,
                        "system": entry.system,
                    }
                ),
                "ConditionExpression": "attribute_not_exists(seq)",
            },
        )
        for user_id in sorted(conversation.members - set(remove)):
            tx.update(
                f"activity:{user_id}",
                {
                    "TableName": self.table,
                    "Key": _key(conversation.conversation_id, member_key(user_id)),
                    "UpdateExpression": "SET activityAt = :now",
                    "ConditionExpression": "attribute_exists(sk)",
                    "ExpressionAttributeValues": {":now": {"N": str(now)}},
                },
            )
        for user_id in sorted(remove):
            tx.update(
                f"leave:{user_id}",
                {
                    "TableName": self.table,
                    "Key": _key(conversation.conversation_id, member_key(user_id)),
                    "UpdateExpression": "REMOVE folder SET leftSeq = :seq, leftAt = :at",
                    "ConditionExpression": "attribute_exists(sk)",
                    "ExpressionAttributeValues": {
                        ":seq": {"N": str(entry.seq)},
                        ":at": {"N": str(now)},
                    },
                },
            )
        for user_id, is_request in sorted(add.items()):
            # A new member starts at the entry that added them (the backlog and unread
            # count begin there); older history stays readable with message:history.
            tx.put(
                f"member:{user_id}",
                {
                    "TableName": self.table,
                    "Item": to_item(
                        {
                            "conversationId": conversation.conversation_id,
                            "sk": member_key(user_id),
                            "memberId": user_id,
                            "ackedSeq": entry.seq - 1,
                            "readSeq": entry.seq - 1,
                            "folder": requests_folder(user_id) if is_request else inbox(user_id),
                            "activityAt": now,
                        }
                    ),
                },
            )
        for label, guard in (guards or {}).items():
            tx.update(label, guard)
        try:
            tx.write(self.client)
        except ClientError as exc:
            refused = tx.refused(exc)
            refused_guards = [label for label in refused if label in (guards or {})]
            if refused_guards:
                raise GuardRefused(refused_guards[0]) from None
            if tx.reasons(exc):
                raise SeqConflict from None
            raise

    def _meta_update(
        self,
        conversation: Conversation,
        entry: StoredMessage,
        add: Mapping[str, bool],
        remove: Collection[str],
        roles: Mapping[str, str] | None,
        title: str | None,
    ) -> dict[str, Any]:
        """The meta item's part of a change: lastSeq moves on condition it is unchanged
        and the author still a member; members/pending by ADD/DELETE."""
        now = entry.created_at
        values: dict[str, Any] = {
            ":next": entry.seq,
            ":current": conversation.last_seq,
            ":actor": entry.sender_id,
            ":now": now,
            ":preview": {
                "seq": entry.seq,
                "senderId": entry.sender_id,
                "body": "",
                "createdAt": now,
            },
        }
        sets = ["lastSeq = :next", "lastActivityAt = :now", "lastMessage = :preview"]
        if roles is not None:
            sets.append("#roles = :roles")
            values[":roles"] = dict(roles)
        if title is not None:
            sets.append("title = :title")
            values[":title"] = title
        expression = "SET " + ", ".join(sets)
        if add:
            expression += " ADD members :add"
            values[":add"] = set(add)
            requested = {u for u, is_request in add.items() if is_request}
            if requested:
                expression += ", pending :requested"
                values[":requested"] = requested
        if remove:
            expression += " DELETE members :remove, pending :remove"
            values[":remove"] = set(remove)
        meta: dict[str, Any] = {
            "TableName": self.table,
            "Key": _key(conversation.conversation_id, META),
            "UpdateExpression": expression,
            "ConditionExpression": "lastSeq = :current AND contains(members, :actor)",
            "ExpressionAttributeValues": to_item(values),
        }
        if roles is not None:
            # "roles" is no reserved word today; named anyway so it never breaks.
            meta["ExpressionAttributeNames"] = {"#roles": "roles"}
        return meta


def _key(conversation_id: str, sk: str) -> dict[str, Any]:
    return {"conversationId": {"S": conversation_id}, "sk": {"S": sk}}
