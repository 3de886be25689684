"""Conversations (single table) and messages.

ConversationsTable items, all under PK ``conversationId``:
- ``#meta``: members (string set), title, listingId, lastSeq, lastMessage, lastActivityAt;
- ``member#<userId>``: ackedSeq, readSeq, sentSeq (the member's last send) (indexed
  byMember: a user's conversations);
- ``idem#<senderId>#<clientMessageId>``: the reply of an accepted send (TTL 24 h).
MessagesTable: PK conversationId, SK seq (number).

A send is one GetItem of ``#meta`` and one TransactWriteItems that (1) moves lastSeq from
the value read to the next one, on condition that it is unchanged and the sender is a
member, (2) puts the message, (3) puts the idempotency record if absent and (4) moves the
sender's own ackedSeq/readSeq to the new seq (sending is reading: her own message is
never unread to her, nor pushed back to her as backlog). So seq is gapless (a seq is
consumed only together with its message) and a retried send can never take a second seq.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from switchboard.dal.base import DynamoRepository
from switchboard.dal.items import (
    from_item,
    is_condition_failure,
    to_item,
    write_token,
)
from switchboard.dal.transactions import Transaction

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

META = "#meta"
IDEMPOTENCY_TTL_SECONDS = 24 * 3600
_NO_GUARDS: Mapping[str, dict[str, Any]] = MappingProxyType({})


def member_key(user_id: str) -> str:
    return f"member#{user_id}"


@dataclass(frozen=True, slots=True)
class Conversation:
    conversation_id: str
    members: frozenset[str]
    created_by: str
    created_at: int
    title: str | None = None
    listing_id: str | None = None
    last_seq: int = 0
    last_message: dict[str, Any] | None = None
    last_activity_at: int = 0


@dataclass(frozen=True, slots=True)
class Member:
    conversation_id: str
    user_id: str
    acked_seq: int = 0
    read_seq: int = 0


@dataclass(frozen=True, slots=True)
class StoredMessage:
    conversation_id: str
    seq: int
    message_id: str
    sender_id: str
    body: str
    created_at: int
    client_message_id: str
    attachments: list[dict[str, Any]] = field(default_factory=list)

    def wire(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "conversationId": self.conversation_id,
            "seq": self.seq,
            "messageId": self.message_id,
            "senderId": self.sender_id,
            "body": self.body,
            "createdAt": self.created_at,
            "clientMessageId": self.client_message_id,
        }
        if self.attachments:
            data["attachments"] = self.attachments
        return data


class SeqConflict(Exception):
    """Another send took the next seq first: read again and retry."""


class DuplicateSend(Exception):
    """This sender already sent this clientMessageId: answer with the stored reply."""


class GuardRefused(Exception):
    """A guard of the transaction (a rate limit, an attachment) refused; nothing was
    stored. ``label`` is the guard's own label."""

    def __init__(self, label: str) -> None:
        super().__init__(label)
        self.label = label


class NotAMember(Exception):
    """Membership changed between the read and the write."""


class ConversationRepository(DynamoRepository):
    def __init__(
        self,
        conversations_table: str,
        messages_table: str,
        *,
        client: DynamoDBClient | None = None,
    ) -> None:
        super().__init__(conversations_table, client=client)
        self.messages_table = messages_table

    # ------------------------------------------------------------------ conversations
    def create(
        self, conversation: Conversation, guards: Mapping[str, dict[str, Any]] = _NO_GUARDS
    ) -> bool:
        """Creates meta + member items atomically; False if the id already exists.
        ``guards`` (rate-limit counters) count in the same transaction; ``GuardRefused``
        if one refuses (an existing conversation is reported first, and costs nothing)."""
        meta = to_item(
            {
                "conversationId": conversation.conversation_id,
                "sk": META,
                "members": set(conversation.members),
                "createdBy": conversation.created_by,
                "createdAt": conversation.created_at,
                "title": conversation.title,
                "listingId": conversation.listing_id,
                "lastSeq": 0,
                "lastActivityAt": conversation.created_at,
            }
        )
        tx = Transaction()
        tx.put(
            "meta",
            {
                "TableName": self.table,
                "Item": meta,
                "ConditionExpression": "attribute_not_exists(conversationId)",
            },
        )
        for user_id in sorted(conversation.members):
            tx.put(
                f"member:{user_id}",
                {
                    "TableName": self.table,
                    "Item": to_item(
                        {
                            "conversationId": conversation.conversation_id,
                            "sk": member_key(user_id),
                            "memberId": user_id,
                            "ackedSeq": 0,
                            "readSeq": 0,
                        }
                    ),
                },
            )
        for label, guard in guards.items():
            tx.update(label, guard)
        try:
            tx.write(self.client)
        except ClientError as exc:
            refused = tx.refused(exc)
            if "meta" in refused:
                return False
            refused_guards = [label for label in refused if label in guards]
            if refused_guards:
                raise GuardRefused(refused_guards[0]) from None
            raise
        return True

    def get(self, conversation_id: str) -> Conversation | None:
        response = self.client.get_item(
            TableName=self.table,
            Key={"conversationId": {"S": conversation_id}, "sk": {"S": META}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return _conversation(from_item(item)) if item else None

    def get_many(self, conversation_ids: Iterable[str]) -> dict[str, Conversation]:
        ids = list(dict.fromkeys(conversation_ids))
        found: dict[str, Conversation] = {}
        for start in range(0, len(ids), 100):
            request: dict[str, Any] = {
                self.table: {
                    "Keys": [
                        {"conversationId": {"S": c}, "sk": {"S": META}}
                        for c in ids[start : start + 100]
                    ]
                }
            }
            while request:
                response = self.client.batch_get_item(RequestItems=request)
                for item in response["Responses"].get(self.table, []):
                    conversation = _conversation(from_item(item))
                    found[conversation.conversation_id] = conversation
                request = dict(response.get("UnprocessedKeys") or {})
        return found

    def memberships(self, user_id: str) -> list[Member]:
        """Every conversation the user is in (Query on byMember, all pages)."""
        paginator = self.client.get_paginator("query")
        pages = paginator.paginate(
            TableName=self.table,
            IndexName="byMember",
            KeyConditionExpression="memberId = :u",
            ExpressionAttributeValues={":u": {"S": user_id}},
        )
        return [_member(from_item(item)) for page in pages for item in page["Items"]]

    def member(self, conversation_id: str, user_id: str) -> Member | None:
        response = self.client.get_item(
            TableName=self.table,
            Key={"conversationId": {"S": conversation_id}, "sk": {"S": member_key(user_id)}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return _member(from_item(item)) if item else None

    # ------------------------------------------------------------------ sending
    def append(
        self,
        conversation: Conversation,
        message: StoredMessage,
        guards: Mapping[str, dict[str, Any]] = _NO_GUARDS,
    ) -> None:
        """Stores ``message`` as seq ``conversation.last_seq + 1`` (see module doc).

        ``guards`` are conditional Updates (rate-limit counters) written in the same
        transaction, by label: if one refuses, nothing is stored and ``GuardRefused`` tells
        which."""
        assert message.seq == conversation.last_seq + 1
        preview = {
            "seq": message.seq,
            "senderId": message.sender_id,
            "body": message.body[:200],
            "createdAt": message.created_at,
        }
        reply = {
            "seq": message.seq,
            "messageId": message.message_id,
            "createdAt": message.created_at,
        }
        tx = Transaction()
        tx.update(
            "meta",
            {
                "TableName": self.table,
                "Key": {
                    "conversationId": {"S": conversation.conversation_id},
                    "sk": {"S": META},
                },
                "UpdateExpression": (
                    "SET lastSeq = :next, lastMessage = :preview, lastActivityAt = :now"
                ),
                "ConditionExpression": "lastSeq = :current AND contains(members, :sender)",
                "ExpressionAttributeValues": to_item(
                    {
                        ":next": message.seq,
                        ":current": conversation.last_seq,
                        ":sender": message.sender_id,
                        ":preview": preview,
                        ":now": message.created_at,
                    }
                ),
            },
        )
        tx.put(
            "message",
            {
                "TableName": self.messages_table,
                "Item": to_item(
                    {
                        "conversationId": message.conversation_id,
                        "seq": message.seq,
                        "messageId": message.message_id,
                        "senderId": message.sender_id,
                        "body": message.body,
                        "createdAt": message.created_at,
                        "clientMessageId": message.client_message_id,
                        "attachments": message.attachments or None,
                    }
                ),
                "ConditionExpression": "attribute_not_exists(seq)",
            },
        )
        tx.put(
            "idempotency",
            {
                "TableName": self.table,
                "Item": to_item(
                    {
                        "conversationId": message.conversation_id,
                        "sk": _idem_key(message.sender_id, message.client_message_id),
                        "reply": reply,
                        "expiresAt": message.created_at // 1000 + IDEMPOTENCY_TTL_SECONDS,
                    }
                ),
                "ConditionExpression": "attribute_not_exists(sk)",
            },
        )
        # No condition: the cursors cannot be past lastSeq (acks are clamped to it), and
        # lastSeq's condition above orders the sends, so this only ever moves them forward.
        # lastOp (an ack's lost-answer token) is left alone.
        tx.update(
            "sender cursors",
            {
                "TableName": self.table,
                "Key": {
                    "conversationId": {"S": conversation.conversation_id},
                    "sk": {"S": member_key(message.sender_id)},
                },
                # sentSeq lets analytics see, without a read, that a cursor moved over the
                # member's own message only.
                "UpdateExpression": (
                    "SET ackedSeq = :seq, readSeq = :seq, ackedAt = :now, readAt = :now, "
                    "sentSeq = :seq"
                ),
                "ExpressionAttributeValues": to_item(
                    {":seq": message.seq, ":now": message.created_at}
                ),
            },
        )
        for label, guard in guards.items():
            tx.update(label, guard)
        try:
            tx.write(self.client)
        except ClientError as exc:
            reasons = tx.reasons(exc)
            if not reasons:
                raise
            refused = tx.refused(exc)
            if "idempotency" in refused:
                raise DuplicateSend from None
            refused_guards = [label for label in refused if label in guards]
            if refused_guards:
                raise GuardRefused(refused_guards[0]) from None
            if "meta" in refused or "message" in refused or tx.conflicted(exc):
                raise SeqConflict from None
            raise

    def previous_reply(
        self, conversation_id: str, sender_id: str, client_message_id: str
    ) -> dict[str, Any] | None:
        response = self.client.get_item(
            TableName=self.table,
            Key={
                "conversationId": {"S": conversation_id},
                "sk": {"S": _idem_key(sender_id, client_message_id)},
            },
            ConsistentRead=True,
        )
        item = response.get("Item")
        reply: dict[str, Any] | None = from_item(item)["reply"] if item else None
        return reply

    # ------------------------------------------------------------------ cursors
    def advance_cursor(
        self, conversation_id: str, user_id: str, cursor: str, seq: int, now_ms: int = 0
    ) -> bool:
        """Moves ackedSeq or readSeq forward to ``seq`` (never back); False if it already
        was there or beyond. Reading implies delivery, so readSeq also lifts ackedSeq.
        ``ackedAt``/``readAt`` keep when (epoch ms): analytics' delivery latency."""
        assert cursor in ("ackedSeq", "readSeq")
        at = {"ackedSeq": "ackedAt", "readSeq": "readAt"}[cursor]
        # The token tells a lost answer from a cursor that was already there, so receipts
        # are pushed exactly when the cursor moved.
        token = write_token()
        expression = f"SET #c = :seq, {at} = :now, lastOp = :op"
        if cursor == "readSeq":
            expression += ", ackedSeq = if_not_exists(ackedSeq, :zero)"
        key = {"conversationId": {"S": conversation_id}, "sk": {"S": member_key(user_id)}}
        try:
            self.client.update_item(
                TableName=self.table,
                Key=key,
                UpdateExpression=expression,
                ConditionExpression=(
                    "attribute_exists(sk) AND (attribute_not_exists(#c) OR #c < :seq)"
                ),
                ExpressionAttributeNames={"#c": cursor},
                ExpressionAttributeValues=to_item(
                    {
                        ":seq": seq,
                        ":now": now_ms or int(time.time() * 1000),
                        ":op": token,
                        **({":zero": 0} if cursor == "readSeq" else {}),
                    }
                ),
            )
        except (ClientError, BotoCoreError) as exc:
            if not self.wrote(key, token):
                if isinstance(exc, ClientError) and is_condition_failure(exc):
                    return False
                raise
        if cursor == "readSeq":
            self.advance_cursor(conversation_id, user_id, "ackedSeq", seq, now_ms)
        return True

    # ------------------------------------------------------------------ messages
    def messages_after(
        self, conversation_id: str, after_seq: int, limit: int
    ) -> list[StoredMessage]:
        response = self.client.query(
            TableName=self.messages_table,
            KeyConditionExpression="conversationId = :c AND seq > :s",
            ExpressionAttributeValues={":c": {"S": conversation_id}, ":s": {"N": str(after_seq)}},
            ScanIndexForward=True,
            Limit=limit,
            ConsistentRead=True,
        )
        return [_message(from_item(i)) for i in response["Items"]]

    def messages_before(
        self, conversation_id: str, before_seq: int | None, limit: int
    ) -> list[StoredMessage]:
        """The ``limit`` messages just before ``before_seq`` (the newest if None), oldest first."""
        values: dict[str, Any] = {":c": {"S": conversation_id}}
        condition = "conversationId = :c"
        if before_seq is not None:
            condition += " AND seq < :s"
            values[":s"] = {"N": str(before_seq)}
        response = self.client.query(
            TableName=self.messages_table,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ScanIndexForward=False,
            Limit=limit,
        )
        return [_message(from_item(i)) for i in reversed(response["Items"])]


def _idem_key(sender_id: str, client_message_id: str) -> str:
    return f"idem#{sender_id}#{client_message_id}"


def _conversation(item: dict[str, Any]) -> Conversation:
    return Conversation(
        conversation_id=item["conversationId"],
        members=frozenset(item.get("members", ())),
        created_by=item.get("createdBy", ""),
        created_at=int(item.get("createdAt", 0)),
        title=item.get("title"),
        listing_id=item.get("listingId"),
        last_seq=int(item.get("lastSeq", 0)),
        last_message=item.get("lastMessage"),
        last_activity_at=int(item.get("lastActivityAt", 0)),
    )


def _member(item: dict[str, Any]) -> Member:
    return Member(
        conversation_id=item["conversationId"],
        user_id=item.get("memberId", item["sk"].removeprefix("member#")),
        acked_seq=int(item.get("ackedSeq", 0)),
        read_seq=int(item.get("readSeq", 0)),
    )


def _message(item: dict[str, Any]) -> StoredMessage:
    return StoredMessage(
        conversation_id=item["conversationId"],
        seq=int(item["seq"]),
        message_id=item["messageId"],
        sender_id=item["senderId"],
        body=item.get("body", ""),
        created_at=int(item.get("createdAt", 0)),
        client_message_id=item.get("clientMessageId", ""),
        attachments=list(item.get("attachments", [])),
    )
