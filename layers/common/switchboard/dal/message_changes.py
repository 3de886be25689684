"""Changes to stored messages (edit, delete, reactions, a thread's reply count) and the
per-conversation change stream that lets a client that was away learn of them.

A change is one TransactWriteItems that
- moves the conversation's ``#meta`` ``lastChange`` from the value read to the next one
  (and, when the changed message is the conversation's last, its ``lastMessage``
  preview, on condition that ``lastSeq`` is unchanged), on condition that the caller is
  still a member;
- writes the message's new state on condition that its ``version`` is the one read
  (optimistic concurrency: two changes of one message never lose each other);
- puts the change-log item ``chg#<n>`` (``seq``, TTL) in the ConversationsTable, under
  the conversation, if absent;
- carries the caller's guards (the rate limit, the revocation of a deleted message's
  attachments).

Because every change takes the next number while holding lastChange, the log is gapless
and ordered: ``message:changes`` reads ``chg#`` items after a client's cursor (one
consistent Query, never a GSI, so never stale) and the changed messages (one
BatchGetItem), each as it is *now*. Old log items expire (CHANGE_RETENTION_SECONDS): a
cursor older than that is answered with ``reset`` (re-read the history).

Reading a message with its conversation is one BatchGetItem over both tables
(consistent), so an edit, a delete or a reaction costs: that read, the transaction, and
the presence read of the push (3 DynamoDB calls).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from switchboard.dal.conversations import (
    META,
    Conversation,
    ConversationRepository,
    GuardRefused,
    Member,
    StoredMessage,
    _conversation,
    _member,
    _message,
    change_condition,
    member_key,
)
from switchboard.dal.items import from_item, is_condition_failure, to_item
from switchboard.dal.transactions import Transaction
from switchboard.dal.uploads import shared_seq_attribute

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

CHANGE_PREFIX = "chg#"
CHANGE_RETENTION_SECONDS = 30 * 86_400
THREAD_INDEX = "byThread"


def change_key(change: int) -> str:
    return f"{CHANGE_PREFIX}{change:016d}"


class ChangeConflict(Exception):
    """The conversation or the message changed since it was read: read again and retry."""


@dataclass(frozen=True, slots=True)
class ChangeEntry:
    change: int
    seq: int


class MessageChangeRepository:
    def __init__(self, conversations: ConversationRepository) -> None:
        self.conversations = conversations

    @property
    def client(self) -> DynamoDBClient:
        return self.conversations.client

    @property
    def table(self) -> str:
        return self.conversations.table

    @property
    def messages_table(self) -> str:
        return self.conversations.messages_table

    # ------------------------------------------------------------------ reads
    def read(
        self, conversation_id: str, seqs: list[int]
    ) -> tuple[Conversation | None, dict[int, StoredMessage]]:
        """The conversation's ``#meta`` and the messages at ``seqs``: one BatchGetItem
        over both tables, consistent (at most 99 seqs)."""
        assert len(seqs) < 100
        request: dict[str, Any] = {
            self.table: {
                "Keys": [{"conversationId": {"S": conversation_id}, "sk": {"S": META}}],
                "ConsistentRead": True,
            }
        }
        if seqs:
            request[self.messages_table] = {
                "Keys": [
                    {"conversationId": {"S": conversation_id}, "seq": {"N": str(s)}}
                    for s in dict.fromkeys(seqs)
                ],
                "ConsistentRead": True,
            }
        conversation: Conversation | None = None
        messages: dict[int, StoredMessage] = {}
        while request:
            response = self.client.batch_get_item(RequestItems=request)
            for item in response["Responses"].get(self.table, []):
                conversation = _conversation(from_item(item))
            for item in response["Responses"].get(self.messages_table, []):
                message = _message(from_item(item))
                messages[message.seq] = message
            request = dict(response.get("UnprocessedKeys") or {})
        return conversation, messages

    def changes(self, conversation_id: str, after: int, limit: int) -> list[ChangeEntry]:
        """The change-log entries after ``after``, oldest first (one consistent Query)."""
        response = self.client.query(
            TableName=self.table,
            KeyConditionExpression="conversationId = :c AND sk BETWEEN :from AND :to",
            ExpressionAttributeValues={
                ":c": {"S": conversation_id},
                ":from": {"S": change_key(after + 1)},
                ":to": {"S": change_key(10**16 - 1)},
            },
            ConsistentRead=True,
            Limit=limit,
        )
        return [
            ChangeEntry(int(item["sk"]["S"].removeprefix(CHANGE_PREFIX)), int(item["seq"]["N"]))
            for item in response["Items"]
        ]

    def thread(
        self, conversation_id: str, parent_seq: int, after_seq: int, limit: int
    ) -> list[StoredMessage]:
        """Replies in the thread of ``parent_seq`` after ``after_seq``, oldest first (the
        sparse byThread index: only replies carry its key)."""
        from switchboard.dal.conversations import thread_key

        response = self.client.query(
            TableName=self.messages_table,
            IndexName=THREAD_INDEX,
            KeyConditionExpression="#thread = :t AND seq > :s",
            ExpressionAttributeNames={"#thread": "thread"},
            ExpressionAttributeValues={
                ":t": {"S": thread_key(conversation_id, parent_seq)},
                ":s": {"N": str(after_seq)},
            },
            ScanIndexForward=True,
            Limit=limit,
        )
        return [_message(from_item(i)) for i in response["Items"]]

    # ------------------------------------------------------------------ writes
    def commit(
        self,
        conversation: Conversation,
        user_id: str,
        before: StoredMessage,
        after: StoredMessage,
        now_ms: int,
        guards: dict[str, dict[str, Any]],
        checks: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        """Writes ``after`` (a new state of ``before``: body, attachments, editedAt,
        deletedAt, reactions) as change ``after.change`` (see module doc), with ``checks``
        (ConditionChecks: a 1:1 recipient's block list). ``ChangeConflict``: read again
        and retry; ``GuardRefused``: a guard or a check refused (its label)."""
        assert after.change == conversation.last_change + 1
        assert after.version == before.version + 1
        cid = conversation.conversation_id
        tx = Transaction()
        meta_set = ["lastChange = :change"]
        meta_condition = ["contains(members, :user)", change_condition(conversation)]
        meta_values: dict[str, Any] = {
            ":change": after.change,
            ":lastChange": conversation.last_change,
            ":user": user_id,
        }
        last = conversation.last_message
        if last is not None and int(last.get("seq", 0)) == after.seq:
            # The preview conversation:list shows must not outlive an edit or a delete.
            meta_set.append("lastMessage = :preview")
            meta_condition.append("lastSeq = :lastSeq")
            meta_values[":lastSeq"] = conversation.last_seq
            meta_values[":preview"] = {
                **last,
                "body": after.body[:200],
                **({"deleted": True} if after.deleted_at else {}),
            }
        tx.update(
            "meta",
            {
                "TableName": self.table,
                "Key": {"conversationId": {"S": cid}, "sk": {"S": META}},
                "UpdateExpression": "SET " + ", ".join(meta_set),
                "ConditionExpression": " AND ".join(meta_condition),
                "ExpressionAttributeValues": to_item(meta_values),
            },
        )
        state: dict[str, Any] = {
            "body": after.body,
            "attachments": after.attachments or None,
            "editedAt": after.edited_at,
            "deletedAt": after.deleted_at,
            "reactions": [{"emoji": e, "userIds": u} for e, u in after.reactions.items()] or None,
            "version": after.version,
            "changeSeq": after.change,
        }
        names = {f"#{k}": k for k in state}
        sets = [f"#{k} = :{k}" for k, v in state.items() if v is not None]
        removes = [f"#{k}" for k, v in state.items() if v is None]
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        version_condition = (
            "#version = :readVersion"
            if before.version
            else "(attribute_not_exists(#version) OR #version = :readVersion)"
        )
        tx.update(
            "message",
            {
                "TableName": self.messages_table,
                "Key": {"conversationId": {"S": cid}, "seq": {"N": str(after.seq)}},
                "UpdateExpression": expression,
                "ConditionExpression": f"attribute_exists(seq) AND {version_condition}",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": to_item(
                    {
                        **{f":{k}": v for k, v in state.items() if v is not None},
                        ":readVersion": before.version,
                    }
                ),
            },
        )
        tx.update("change", self.change_entry(cid, after.change, after.seq, now_ms))
        for label, guard in guards.items():
            tx.update(label, guard)
        for label, check in (checks or {}).items():
            tx.condition_check(label, check)
        self._write(tx, {**guards, **(checks or {})})

    def change_entry(
        self, conversation_id: str, change: int, seq: int, now_ms: int
    ) -> dict[str, Any]:
        """The Update that creates change-log item ``change`` (refused if it exists)."""
        return {
            "TableName": self.table,
            "Key": {"conversationId": {"S": conversation_id}, "sk": {"S": change_key(change)}},
            "UpdateExpression": "SET seq = :seq, changedAt = :now, expiresAt = :exp",
            "ConditionExpression": "attribute_not_exists(sk)",
            "ExpressionAttributeValues": to_item(
                {
                    ":seq": seq,
                    ":now": now_ms,
                    ":exp": now_ms // 1000 + CHANGE_RETENTION_SECONDS,
                }
            ),
        }

    def parent_update(
        self, conversation_id: str, parent_seq: int, now_ms: int, change: int
    ) -> dict[str, Any]:
        """The Update, in a thread reply's send, that counts the reply on its parent:
        refused unless the parent exists, is not deleted and is not itself a reply (threads
        are one level deep). ADD, not a value read before: concurrent replies all count."""
        return {
            "TableName": self.messages_table,
            "Key": {"conversationId": {"S": conversation_id}, "seq": {"N": str(parent_seq)}},
            "UpdateExpression": (
                "ADD replyCount :one, version :one SET lastReplyAt = :now, changeSeq = :change"
            ),
            # A deleted message takes no replies (a delete may land after the send's read)
            "ConditionExpression": (
                "attribute_exists(seq) AND attribute_not_exists(parentSeq)"
                " AND attribute_not_exists(deletedAt)"
            ),
            "ExpressionAttributeValues": to_item({":one": 1, ":now": now_ms, ":change": change}),
        }

    def member_and_message(
        self, conversation_id: str, user_id: str, seq: int
    ) -> tuple[Member | None, StoredMessage | None]:
        """A member's item and one message, in one BatchGetItem (the notifier's check)."""
        request: dict[str, Any] = {
            self.table: {
                "Keys": [
                    {"conversationId": {"S": conversation_id}, "sk": {"S": member_key(user_id)}}
                ],
                "ConsistentRead": True,
            },
            self.messages_table: {
                "Keys": [{"conversationId": {"S": conversation_id}, "seq": {"N": str(seq)}}],
                "ConsistentRead": True,
            },
        }
        member: Member | None = None
        message: StoredMessage | None = None
        while request:
            response = self.client.batch_get_item(RequestItems=request)
            for item in response["Responses"].get(self.table, []):
                member = _member(from_item(item))
            for item in response["Responses"].get(self.messages_table, []):
                message = _message(from_item(item))
            request = dict(response.get("UnprocessedKeys") or {})
        return member, message

    def set_mute(self, conversation_id: str, user_id: str, until: int | None) -> bool:
        """Sets (None: removes) the member's mutedUntil; False if not a member (a former
        member's item stays, with leftSeq: that is no member)."""
        request: dict[str, Any] = {
            "TableName": self.table,
            "Key": {"conversationId": {"S": conversation_id}, "sk": {"S": member_key(user_id)}},
            "ConditionExpression": "attribute_exists(sk) AND attribute_not_exists(leftSeq)",
        }
        if until is None:
            request["UpdateExpression"] = "REMOVE mutedUntil"
        else:
            request["UpdateExpression"] = "SET mutedUntil = :until"
            request["ExpressionAttributeValues"] = {":until": {"N": str(until)}}
        try:
            self.client.update_item(**request)
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    @staticmethod
    def unshare_update(uploads_table: str, upload_id: str, conversation_id: str) -> dict[str, Any]:
        """The Update, in a delete's transaction, that takes a deleted message's attachment
        back from the conversation (its members can no longer download it: uploads.py
        shares by ``sharedIn``), with the seq of its first share there: shared again
        later, the file is a former member's only if that new share is below their
        leave. Refused if the upload item is gone (nothing to revoke)."""
        return {
            "TableName": uploads_table,
            "Key": {"uploadId": {"S": upload_id}},
            "UpdateExpression": "DELETE sharedIn :conversation REMOVE #first",
            "ConditionExpression": "attribute_exists(uploadId)",
            "ExpressionAttributeNames": {"#first": shared_seq_attribute(conversation_id)},
            "ExpressionAttributeValues": {":conversation": {"SS": [conversation_id]}},
        }

    def _write(self, tx: Transaction, guards: dict[str, dict[str, Any]]) -> None:
        try:
            tx.write(self.client)
        except ClientError as exc:
            if not tx.reasons(exc):
                raise
            refused = tx.refused(exc)
            refused_guards = [label for label in refused if label in guards]
            if refused_guards:
                raise GuardRefused(refused_guards[0]) from None
            if refused or tx.conflicted(exc):
                raise ChangeConflict from None
            raise
