"""Conversations (single table) and messages.

ConversationsTable items, all under PK ``conversationId``:
- ``#meta``: members (string set), title, listingId, lastSeq, lastMessage, lastActivityAt;
  ``pending`` (string set: the members for whom the conversation is still a message
  request) and ``roles`` (owner/admin by user id, groups only): see membership.py;
- ``member#<userId>``: ackedSeq, readSeq, sentSeq (the member's last send), and the
  activity index's keys: ``folder`` (``inbox#<userId>``, or ``requests#<userId>`` while
  the conversation is a request for the user) and ``activityAt`` (the conversation's last
  activity, epoch ms); ``leftSeq`` once the user left, declined or was removed (the
  folder is gone then: history stays readable up to that seq).
- ``idem#<senderId>#<clientMessageId>``: the reply of an accepted send and a digest of
  what was sent (TTL 24 h): a retry is answered with the reply, a different message
  under the same id with ``conflict`` (as Powertools' idempotency validates payloads).
MessagesTable: PK conversationId, SK seq (number).

A send is one GetItem of ``#meta`` and one TransactWriteItems that (1) moves lastSeq from
the value read to the next one, on condition that it is unchanged and the sender is a
member, (2) puts the message and (3) puts the idempotency record if absent. So seq is
gapless (a seq is consumed only together with its message) and a retried send can never
take a second seq. The same transaction moves every member's ``activityAt`` (still one
call), and the sender's own ackedSeq/readSeq to the new seq (sending is reading: her own
message is never unread to her, nor pushed back to her as backlog), so that:

The activity index (GSI ``byActivity``: ``folder`` -> ``activityAt``) lists a user's
conversations most recently active first, a bounded page at a time: what one request
costs never grows with how many conversations others have put the user in
(``conversation:list``, presence, the reconnect backlog all read a bounded page). The
partition is a *folder* of the user's, not the user: ``inbox#<userId>`` for accepted
conversations, ``requests#<userId>`` for message requests (so conversations strangers
start can never push a user's contacts out of the page presence reads), and taking an
item out of every folder (leaving) is removing the attribute (the index is sparse).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
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

    from switchboard.wire.messaging import Message, Quote

META = "#meta"
ACTIVITY_INDEX = "byActivity"
# How many of a user's most recently active conversations make their contacts (presence)
# and their reconnect backlog: one index page and one BatchGetItem.
RECENT_CONVERSATIONS = 100
IDEMPOTENCY_TTL_SECONDS = 24 * 3600
CURSOR_ATTEMPTS = 3
_NO_GUARDS: Mapping[str, dict[str, Any]] = MappingProxyType({})


def member_key(user_id: str) -> str:
    return f"member#{user_id}"


def inbox(user_id: str) -> str:
    return f"inbox#{user_id}"


def requests_folder(user_id: str) -> str:
    return f"requests#{user_id}"


def direct_id(members: Iterable[str], listing_id: str | None = None) -> str:
    """The id of the one 1:1 conversation per pair and listing: derived from both, so a
    user's 1:1 conversation with someone is found by key, however many others exist."""
    key = "|".join([*sorted(members), listing_id or ""])
    return "dm_" + hashlib.sha256(key.encode()).hexdigest()[:32]


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
    last_change: int = 0  # the change stream's cursor (dal/message_changes.py)
    # Members for whom this is still a message request (they have not accepted).
    pending: frozenset[str] = frozenset()
    # "owner" / "admin" by user id (groups); everyone else is a plain member.
    roles: Mapping[str, str] = field(default_factory=dict)
    # 1:1: the member who declined it (its sends are refused from then on).
    declined_by: str | None = None

    @property
    def direct(self) -> bool:
        return self.conversation_id.startswith("dm_")

    def accepted(self) -> frozenset[str]:
        """The members who accepted: the only ones who see each other's presence,
        typing and receipts here."""
        return self.members - self.pending


@dataclass(frozen=True, slots=True)
class Member:
    conversation_id: str
    user_id: str
    acked_seq: int = 0
    read_seq: int = 0
    activity_at: int = 0
    muted_until: int = 0  # epoch ms; notifications are off until then (message_ops.py)
    folder: str | None = None
    left_seq: int | None = None  # set once the user left, declined or was removed
    # When (epoch ms): what changed after it is not theirs to see (message_ops.as_left).
    left_at: int | None = None


@dataclass(frozen=True, slots=True)
class InboxPage:
    members: list[Member]  # most recently active first
    more: bool  # whether older conversations follow


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
    # The connection it was sent from: analytics counts messages per session. Stored,
    # never sent on the wire.
    sender_connection_id: str = ""
    # A system entry (an event the server records in the conversation: a membership
    # change, a call's recording): wire.SystemEntry's fields; None for what a member wrote.
    system: dict[str, Any] | None = None
    # Threads and quotes, edits, deletion, reactions (message_ops.py): ``version`` counts
    # the changes, ``change`` is the conversation's change number of the latest one.
    parent_seq: int | None = None
    reply_to_seq: int | None = None
    reply_count: int = 0
    last_reply_at: int | None = None
    edited_at: int | None = None
    deleted_at: int | None = None
    reactions: dict[str, list[str]] = field(default_factory=dict)
    version: int = 0
    change: int = 0

    def wire(self, quote: Quote | None = None) -> Message:
        """``quote``: the preview of the message at reply_to_seq, as it is now."""
        from switchboard.wire.messaging import Message, MessageAttachment, Reaction
        from switchboard.wire.system import SystemEntry

        return Message(
            conversationId=self.conversation_id,
            seq=self.seq,
            messageId=self.message_id,
            senderId=self.sender_id,
            body=self.body,
            createdAt=self.created_at,
            clientMessageId=self.client_message_id,
            attachments=[MessageAttachment.model_validate(a) for a in self.attachments] or None,
            system=SystemEntry.model_validate(self.system) if self.system else None,
            version=self.version or None,
            editedAt=self.edited_at,
            deletedAt=self.deleted_at,
            reactions=[
                Reaction(emoji=emoji, count=len(users), userIds=list(users))
                for emoji, users in self.reactions.items()
            ]
            or None,
            parentSeq=self.parent_seq,
            replyCount=self.reply_count or None,
            lastReplyAt=self.last_reply_at,
            replyTo=quote,
        )


def send_digest(body: str, attachments: Sequence[dict[str, Any]]) -> str:
    """What identifies the content of a send, to tell a retry from a reused id."""
    canonical = json.dumps([body, list(attachments)], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class PreviousSend:
    reply: dict[str, Any]
    digest: str | None  # None: stored before digests were kept


class SeqConflict(Exception):
    """Another send took the next seq first: read again and retry."""


class DuplicateSend(Exception):
    """This sender already sent this clientMessageId: answer with the stored reply.
    ``refused``: every label of the transaction whose condition failed with it (a block's
    ``consent``, a declined 1:1's ``meta``), so a repeat is not pushed where a new send
    would be refused."""

    def __init__(self, refused: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self.refused = refused


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
                "pending": set(conversation.pending) or None,
                "roles": dict(conversation.roles) or None,
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
                            "folder": (
                                requests_folder(user_id)
                                if user_id in conversation.pending
                                else inbox(user_id)
                            ),
                            "activityAt": conversation.created_at,
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
        for item in self._batch_get([{"conversationId": {"S": c}, "sk": {"S": META}} for c in ids]):
            conversation = _conversation(item)
            found[conversation.conversation_id] = conversation
        return found

    def _batch_get(
        self, keys: list[dict[str, Any]], table: str | None = None, *, consistent: bool = False
    ) -> Iterator[dict[str, Any]]:
        """The items at ``keys`` of ``table`` (default: the conversations table;
        BatchGetItem, 100 a call, unprocessed keys asked again); absent ones are left out."""
        table = table or self.table
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {
                table: {"Keys": keys[start : start + 100], "ConsistentRead": consistent}
            }
            while request:
                response = self.client.batch_get_item(RequestItems=request)
                for item in response["Responses"].get(table, []):
                    yield from_item(item)
                request = dict(response.get("UnprocessedKeys") or {})

    def inbox(
        self,
        user_id: str,
        limit: int,
        after: tuple[int, str] | None = None,
        *,
        requests: bool = False,
    ) -> InboxPage:
        """The user's conversations (``requests``: message requests), most recently active
        first: ``limit`` of them after ``after`` ((activityAt, conversationId) of the last
        one seen). One Query."""
        folder = requests_folder(user_id) if requests else inbox(user_id)
        params: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": ACTIVITY_INDEX,
            "KeyConditionExpression": "folder = :f",
            "ExpressionAttributeValues": {":f": {"S": folder}},
            "ScanIndexForward": False,
            "Limit": limit + 1,  # one more: whether another page follows
        }
        if after is not None:
            params["ExclusiveStartKey"] = {
                "folder": {"S": folder},
                "activityAt": {"N": str(after[0])},
                "conversationId": {"S": after[1]},
                "sk": {"S": member_key(user_id)},
            }
        items = self.client.query(**params)["Items"]
        members = [_member(from_item(item)) for item in items]
        return InboxPage(members[:limit], more=len(members) > limit)

    def recent_contacts(self, user_id: str) -> list[str]:
        """The other members of the user's RECENT_CONVERSATIONS most recently active
        accepted conversations who accepted them too, the most recent first (one Query,
        one BatchGetItem). Requests live in another folder: no number of conversations
        strangers start can push a contact out of this page."""
        page = self.inbox(user_id, RECENT_CONVERSATIONS)
        found = self.get_many(m.conversation_id for m in page.members)
        contacts: dict[str, None] = {}
        for member in page.members:
            conversation = found.get(member.conversation_id)
            for other in sorted(conversation.accepted() if conversation else ()):
                if other != user_id:
                    contacts.setdefault(other)
        return list(contacts)

    def direct_contacts(self, user_id: str, others: Iterable[str]) -> set[str]:
        """Those of ``others`` the user has an accepted 1:1 conversation (without a
        listing) with: both member items of each such conversation, read by key (one
        BatchGetItem per 50 others), so no number of other conversations can hide them
        (unlike recent_contacts). Accepted on both sides: each item is in its user's
        inbox folder (not a request, not declined)."""
        by_id = {direct_id([user_id, other]): other for other in others if other != user_id}
        keys = [(c, u) for c, other in by_id.items() for u in (user_id, other)]
        accepted: dict[str, int] = {}
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {
                self.table: {
                    "Keys": [
                        {"conversationId": {"S": c}, "sk": {"S": member_key(u)}}
                        for c, u in keys[start : start + 100]
                    ],
                    "ProjectionExpression": "conversationId, sk, folder",
                }
            }
            while request:
                response = self.client.batch_get_item(RequestItems=request)
                for item in response["Responses"].get(self.table, []):
                    owner = item["sk"]["S"].removeprefix("member#")
                    if item.get("folder", {}).get("S") == inbox(owner):
                        cid = item["conversationId"]["S"]
                        accepted[cid] = accepted.get(cid, 0) + 1
                request = dict(response.get("UnprocessedKeys") or {})
        return {by_id[c] for c, sides in accepted.items() if sides == 2}

    def member(self, conversation_id: str, user_id: str) -> Member | None:
        response = self.client.get_item(
            TableName=self.table,
            Key={"conversationId": {"S": conversation_id}, "sk": {"S": member_key(user_id)}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return _member(from_item(item)) if item else None

    def memberships(
        self, user_id: str, conversation_ids: Iterable[str], *, consistent: bool = False
    ) -> dict[str, Member]:
        """The user's member items in these conversations (one BatchGetItem per 100; a
        conversation the user was never in is left out). Former members have ``left_at``.
        ``consistent``: read as ``member`` does (a leave just made is seen)."""
        ids = list(dict.fromkeys(conversation_ids))
        keys = [{"conversationId": {"S": c}, "sk": {"S": member_key(user_id)}} for c in ids]
        items = self._batch_get(keys, consistent=consistent)
        return {m.conversation_id: m for m in map(_member, items)}

    def former_members(self, conversation_id: str, limit: int = 1000) -> list[Member]:
        """Who left, declined or was removed (member items with ``leftSeq``): one Query of
        the conversation's member items, at most ``limit`` read."""
        response = self.client.query(
            TableName=self.table,
            KeyConditionExpression="conversationId = :c AND begins_with(sk, :m)",
            FilterExpression="attribute_exists(leftSeq)",
            ExpressionAttributeValues={
                ":c": {"S": conversation_id},
                ":m": {"S": member_key("")},
            },
            Limit=limit,
        )
        return [_member(from_item(item)) for item in response["Items"]]

    # ------------------------------------------------------------------ sending
    def append(
        self,
        conversation: Conversation,
        message: StoredMessage,
        guards: Mapping[str, dict[str, Any]] = _NO_GUARDS,
        checks: Mapping[str, dict[str, Any]] = _NO_GUARDS,
        *,
        change: int | None = None,
    ) -> None:
        """Stores ``message`` as seq ``conversation.last_seq + 1`` (see module doc).

        ``guards`` are conditional Updates (rate-limit counters) and ``checks``
        ConditionChecks (a 1:1 recipient's block list) written in the same transaction, by
        label: if one refuses, nothing is stored and ``GuardRefused`` tells which. A
        sender for whom the conversation was a request accepts it by sending (same items,
        same call). ``change``: the send also changes another message (a thread reply's
        parent, among the guards), as change number ``change`` of the conversation:
        lastChange moves to it from ``conversation.last_change`` (dal/message_changes.py)."""
        accepting = message.sender_id in conversation.pending
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
                    + (", lastChange = :change" if change is not None else "")
                    + (" DELETE pending :senders" if accepting else "")
                ),
                # A declined 1:1 conversation refuses in the transaction, as a block
                # does: the requester cannot tell them apart by the path or its timing.
                "ConditionExpression": "lastSeq = :current AND contains(members, :sender)"
                + (" AND attribute_not_exists(declinedBy)" if conversation.direct else "")
                + (f" AND {change_condition(conversation)}" if change is not None else ""),
                "ExpressionAttributeValues": to_item(
                    {
                        ":next": message.seq,
                        ":current": conversation.last_seq,
                        ":sender": message.sender_id,
                        ":preview": preview,
                        ":now": message.created_at,
                        ":change": change,
                        ":lastChange": conversation.last_change if change is not None else None,
                        **({":senders": {message.sender_id}} if accepting else {}),
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
                        "senderConnectionId": message.sender_connection_id or None,
                        "system": message.system,
                        "parentSeq": message.parent_seq,
                        "replyToSeq": message.reply_to_seq,
                        # the byThread index's key: a thread's replies, by seq
                        "thread": (
                            thread_key(message.conversation_id, message.parent_seq)
                            if message.parent_seq
                            else None
                        ),
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
                        "digest": send_digest(message.body, message.attachments),
                        "expiresAt": message.created_at // 1000 + IDEMPOTENCY_TTL_SECONDS,
                    }
                ),
                "ConditionExpression": "attribute_not_exists(sk)",
            },
        )
        for user_id in sorted(conversation.members):
            # Each member's place in the activity index, in the same call.
            expression = "SET activityAt = :now"
            values: dict[str, Any] = {":now": message.created_at}
            if user_id == message.sender_id:
                # Sending is reading, in the same item's update (a transaction may touch an
                # item once). No condition on the cursors: they cannot be past lastSeq
                # (acks are clamped to it) and lastSeq's condition above orders the sends,
                # so this only moves them forward. sentSeq lets analytics see, without a
                # read, that they moved over her own message only; lastOp (an ack's
                # lost-answer token) is left alone.
                expression += (
                    ", ackedSeq = :seq, readSeq = :seq, ackedAt = :now, readAt = :now,"
                    " sentSeq = :seq"
                )
                values[":seq"] = message.seq
                if accepting:  # replying to a request accepts it
                    expression += ", folder = :inbox"
                    values[":inbox"] = inbox(user_id)
            tx.update(
                f"activity:{user_id}",
                {
                    "TableName": self.table,
                    "Key": {
                        "conversationId": {"S": conversation.conversation_id},
                        "sk": {"S": member_key(user_id)},
                    },
                    "UpdateExpression": expression,
                    "ConditionExpression": "attribute_exists(sk)",
                    "ExpressionAttributeValues": to_item(values),
                },
            )
        for label, guard in guards.items():
            tx.update(label, guard)
        for label, check in checks.items():
            tx.condition_check(label, check)
        try:
            tx.write(self.client)
        except ClientError as exc:
            reasons = tx.reasons(exc)
            if not reasons:
                raise
            refused = tx.refused(exc)
            if "idempotency" in refused:
                raise DuplicateSend(frozenset(refused)) from None
            refused_guards = [label for label in refused if label in guards or label in checks]
            if refused_guards:
                raise GuardRefused(refused_guards[0]) from None
            if "meta" in refused or "message" in refused or tx.conflicted(exc):
                raise SeqConflict from None
            raise

    def previous_send(
        self, conversation_id: str, sender_id: str, client_message_id: str
    ) -> PreviousSend | None:
        response = self.client.get_item(
            TableName=self.table,
            Key={
                "conversationId": {"S": conversation_id},
                "sk": {"S": _idem_key(sender_id, client_message_id)},
            },
            ConsistentRead=True,
        )
        item = response.get("Item")
        if not item:
            return None
        stored = from_item(item)
        return PreviousSend(reply=stored["reply"], digest=stored.get("digest"))

    # ------------------------------------------------------------------ cursors
    def advance_cursor(
        self, conversation_id: str, user_id: str, cursor: str, seq: int, now_ms: int = 0
    ) -> Member | None:
        """Moves ackedSeq or readSeq forward to ``seq`` (never back): the member item as
        the move left it (its ``folder`` tells whether the conversation was still a
        request for them at that moment), or None if it already was there or beyond.
        Reading implies delivery, so readSeq also lifts ackedSeq.
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
        moved: Member | None = None
        request: dict[str, Any] = {
            "TableName": self.table,
            "Key": key,
            "UpdateExpression": expression,
            # Free with the write: the caller reads the folder off the item it moved.
            "ReturnValues": "ALL_NEW",
            "ConditionExpression": (
                "attribute_exists(sk) AND (attribute_not_exists(#c) OR #c < :seq)"
            ),
            "ExpressionAttributeNames": {"#c": cursor},
            "ExpressionAttributeValues": to_item(
                {
                    ":seq": seq,
                    ":now": now_ms or int(time.time() * 1000),
                    ":op": token,
                    **({":zero": 0} if cursor == "readSeq" else {}),
                }
            ),
        }
        for attempt in range(CURSOR_ATTEMPTS):
            try:
                moved = _member(from_item(self.client.update_item(**request)["Attributes"]))
            except (ClientError, BotoCoreError) as exc:
                if self.wrote(key, token):
                    # It moved, its answer was lost: the item as it is now.
                    moved = self.member(conversation_id, user_id)
                    break
                if _is_transaction_conflict(exc) and attempt < CURSOR_ATTEMPTS - 1:
                    # A send's transaction was moving this member's activityAt at the
                    # same moment (botocore does not retry this): try again shortly.
                    time.sleep(0.01 * 2**attempt)
                    continue
                if not (isinstance(exc, ClientError) and is_condition_failure(exc)):
                    raise
            break
        if cursor == "readSeq":
            # Also when readSeq was already there: a retry of a read whose ackedSeq write
            # failed must still lift ackedSeq, or the backlog would redeliver read messages.
            self.advance_cursor(conversation_id, user_id, "ackedSeq", seq, now_ms)
        return moved

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

    def messages_at(self, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], StoredMessage]:
        """The stored messages at (conversationId, seq) keys (BatchGetItem; absent ones are
        left out). Search shows its hits from here: the current text, not the index's."""
        unique = list(dict.fromkeys(keys))
        items = self._batch_get(
            [{"conversationId": {"S": c}, "seq": {"N": str(s)}} for c, s in unique],
            self.messages_table,
        )
        found: dict[tuple[str, int], StoredMessage] = {}
        for message in map(_message, items):
            found[(message.conversation_id, message.seq)] = message
        return found


def thread_key(conversation_id: str, parent_seq: int) -> str:
    return f"{conversation_id}#{parent_seq}"


def change_condition(conversation: Conversation) -> str:
    """The condition (on ``:lastChange``) that lastChange is still what was read."""
    if conversation.last_change:
        return "lastChange = :lastChange"
    return "(attribute_not_exists(lastChange) OR lastChange = :lastChange)"


def _is_transaction_conflict(exc: Exception) -> bool:
    return (
        isinstance(exc, ClientError)
        and exc.response.get("Error", {}).get("Code") == "TransactionConflictException"
    )


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
        last_change=int(item.get("lastChange", 0)),
        pending=frozenset(item.get("pending", ())),
        roles=dict(item.get("roles") or {}),
        declined_by=item.get("declinedBy"),
    )


def _member(item: dict[str, Any]) -> Member:
    return Member(
        conversation_id=item["conversationId"],
        user_id=item.get("memberId", item["sk"].removeprefix("member#")),
        acked_seq=int(item.get("ackedSeq", 0)),
        read_seq=int(item.get("readSeq", 0)),
        activity_at=int(item.get("activityAt", 0)),
        muted_until=int(item.get("mutedUntil", 0)),
        folder=item.get("folder"),
        left_seq=int(item["leftSeq"]) if "leftSeq" in item else None,
        left_at=int(item["leftAt"]) if "leftAt" in item else None,
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
        system=item.get("system"),
        parent_seq=_optional_int(item.get("parentSeq")),
        reply_to_seq=_optional_int(item.get("replyToSeq")),
        reply_count=int(item.get("replyCount", 0)),
        last_reply_at=_optional_int(item.get("lastReplyAt")),
        edited_at=_optional_int(item.get("editedAt")),
        deleted_at=_optional_int(item.get("deletedAt")),
        # a list, not a map: DynamoDB keeps a list's order (first reacted, first shown)
        reactions={
            str(r["emoji"]): [str(u) for u in r["userIds"]] for r in item.get("reactions") or []
        },
        version=int(item.get("version", 0)),
        change=int(item.get("changeSeq", 0)),
    )


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)
