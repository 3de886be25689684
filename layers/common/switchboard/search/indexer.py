"""Keeps the search index in step with the Messages table, from its stream.

Each change of a message becomes documents to put and documents to delete (one document
per scope: the conversation's and each member's, docs/search.md):
- INSERT: the message's document in every scope (none for a message without terms);
- MODIFY (an edit, a tombstone): the new document is put where it differs from the old
  one (a change that leaves the text alone, such as a reaction, writes nothing); a
  tombstone (``deleted`` true or a ``deletedAt``, or no body and no attachments left) has
  no terms, so its documents are deleted;
- REMOVE: the old documents are deleted.

A batch is applied as a whole: the changes are folded per document key (the last change
wins, as the stream orders changes of one item), the conversations' members are read in
one BatchGetItem, and the writes go out 25 at a time. Every write is idempotent, so a
replayed or retried batch leaves the same index; and search checks each hit against the
message as stored now, so a stale document (a membership that changed between the send
and the indexing, a replay of an old image) is never shown for text that is gone.

Write amplification is one item per scope: 1 + M for a message in a conversation of M
members (a document over 1 KB, which only a long message makes, costs a unit per KB).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from switchboard.dal.conversations import ConversationRepository
from switchboard.dal.items import from_item
from switchboard.observability import logger
from switchboard.search.index import (
    IndexDocument,
    Posting,
    SearchIndexRepository,
    conversation_scope,
    sort_key,
    user_scope,
)
from switchboard.search.text import Document, analyse


@dataclass(frozen=True, slots=True)
class IndexLimits:
    max_terms: int = 64


@dataclass(frozen=True, slots=True)
class MessageImage:
    """The searchable part of a stored message (a stream image)."""

    conversation_id: str
    seq: int
    created_at: int
    body: str
    file_names: list[str]

    @classmethod
    def of(cls, image: dict[str, Any]) -> MessageImage:
        values = from_item(image)
        tombstone = bool(values.get("deleted")) or "deletedAt" in values
        attachments = [] if tombstone else list(values.get("attachments") or [])
        return cls(
            conversation_id=str(values["conversationId"]),
            seq=int(values["seq"]),
            created_at=int(values.get("createdAt", 0)),
            body="" if tombstone else str(values.get("body") or ""),
            file_names=[
                str(a["fileName"]) for a in attachments if isinstance(a, dict) and a.get("fileName")
            ],
        )


@dataclass(frozen=True, slots=True)
class Change:
    old: MessageImage | None
    new: MessageImage | None

    @property
    def conversation_id(self) -> str:
        image = self.new or self.old
        assert image is not None
        return image.conversation_id

    @classmethod
    def of(cls, record: dict[str, Any]) -> Change | None:
        change = record.get("dynamodb") or {}
        old, new = change.get("OldImage"), change.get("NewImage")
        event = record.get("eventName")
        if event == "REMOVE":
            new = None
        if not old and not new:
            return None
        return cls(MessageImage.of(old) if old else None, MessageImage.of(new) if new else None)


@dataclass(frozen=True, slots=True)
class IndexReport:
    changes: int
    puts: int
    deletes: int


class SearchIndexer:
    def __init__(
        self,
        index: SearchIndexRepository,
        conversations: ConversationRepository,
        limits: IndexLimits = IndexLimits(),
    ) -> None:
        self.index = index
        self.conversations = conversations
        self.limits = limits

    def handle_records(self, records: Iterable[dict[str, Any]]) -> IndexReport:
        # A MODIFY that leaves the searchable part as it was (a reaction, a thread's reply
        # count) changes no document: skipped before the batch's members are even read.
        changes = [c for c in (Change.of(r) for r in records) if c is not None and c.old != c.new]
        return self.apply(changes)

    def apply(self, changes: list[Change]) -> IndexReport:
        # Only members who accepted get the document in their own scope: a stranger's
        # message request reaches nobody's search but the sender's (the conversation's
        # scope has it, for a search that names it), so no volume of requests can push a
        # contact's messages out of the newest windows a search reads.
        accepted = {
            cid: c.accepted()
            for cid, c in self.conversations.get_many({c.conversation_id for c in changes}).items()
        }
        # An edit or a delete also takes the message's document from the scopes of former
        # members who had it (seq up to the one they left at): their history withholds a
        # late edit and shows a delete, and their index keeps no words they can no longer
        # see. One Query per conversation that had such a change (edits are rare).
        former: dict[str, list[tuple[str, int]]] = {}
        for cid in {c.conversation_id for c in changes if c.old is not None}:
            former[cid] = [
                (m.user_id, m.left_seq)
                for m in self.conversations.former_members(cid)
                if m.left_seq is not None
            ]
        # document key (pk, sk) -> the item to put, or None to delete; the last change wins.
        final: dict[tuple[str, str], dict[str, Any] | None] = {}
        for change in changes:
            people = sorted(accepted.get(change.conversation_id, ()))
            old = self._items(change.old, people)
            new = self._items(change.new, people)
            if change.old is not None:
                seq = change.old.seq
                gone = [
                    u for u, left_seq in former.get(change.conversation_id, ()) if seq <= left_seq
                ]
                for pk in map(user_scope, gone):
                    final[(pk, sort_key(change.old.created_at, change.conversation_id, seq))] = None
            for key in old.keys() - new.keys():
                final[key] = None
            for key, item in new.items():
                if old.get(key) != item or key in final:
                    final[key] = item
        puts = [item for item in final.values() if item is not None]
        deletes = [
            {"pk": {"S": pk}, "sk": {"S": sk}} for (pk, sk), item in final.items() if item is None
        ]
        self.index.write(puts, deletes)
        report = IndexReport(len(changes), len(puts), len(deletes))
        logger.debug("indexed", extra={"changes": report.changes, "puts": report.puts})
        return report

    def _items(
        self, image: MessageImage | None, members: list[str]
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """The image's document item in every scope, by key (none without terms)."""
        if image is None:
            return {}
        document = analyse(image.body, image.file_names, self.limits.max_terms)
        if not document.terms:
            return {}
        indexed = IndexDocument(
            image.conversation_id,
            image.seq,
            image.created_at,
            document.length,
            tuple(_postings_of(image, document)),
        )
        scopes = [conversation_scope(image.conversation_id), *map(user_scope, members)]
        items = (indexed.item(scope) for scope in scopes)
        return {(item["pk"]["S"], item["sk"]["S"]): item for item in items}


def _postings_of(image: MessageImage, document: Document) -> list[Posting]:
    return [
        Posting(
            term=term,
            conversation_id=image.conversation_id,
            seq=image.seq,
            created_at=image.created_at,
            frequency=stats.frequency,
            positions=stats.positions,
            surfaces=stats.surfaces,
            length=document.length,
        )
        for term, stats in document.terms.items()
    ]
