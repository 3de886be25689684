"""Keeps the search index in step with the Messages table, from its stream.

Each change of a message becomes postings to put and postings to delete:
- INSERT: the message's terms, in the conversation's scope and in each member's scope;
- MODIFY (an edit, a tombstone): the new terms are put, the old terms that are gone are
  deleted; a tombstone (``deleted`` true or a ``deletedAt``, or no body and no
  attachments left) is a message with no terms;
- REMOVE: every old term is deleted;
- a MODIFY that leaves body and file names as they were (a reaction, a reply count) is
  skipped.

A batch is applied as a whole: the changes are folded per posting key (the last change
wins, as the stream orders changes of one item), the conversations' members are read in
one BatchGetItem, and the writes go out 25 at a time. Every write is idempotent, so a
replayed or retried batch leaves the same index; and search checks each hit against the
message as stored now, so a stale posting (a membership that changed between the send
and the indexing, a replay of an old image) is never shown for text that is gone.

Write amplification is bounded: at most ``max_terms`` distinct terms per message; in a
member's scope, at most ``user_postings_budget`` postings per message over all members
(a big group's members get the first terms of each message in their own scope, while
the conversation's scope always has all of them: see docs/search.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from switchboard.dal.conversations import ConversationRepository
from switchboard.dal.items import from_item
from switchboard.observability import logger
from switchboard.search.index import (
    Posting,
    PrefixPosting,
    SearchIndexRepository,
    conversation_scope,
    prefix_postings,
    prefixes,
    user_scope,
)
from switchboard.search.text import Document, analyse


@dataclass(frozen=True, slots=True)
class IndexLimits:
    max_terms: int = 64
    user_postings_budget: int = 640
    min_user_terms: int = 8


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
        # count) changes no posting: skipped, or every reaction would rewrite a message's
        # hundreds of postings.
        changes = [c for c in (Change.of(r) for r in records) if c is not None and c.old != c.new]
        return self.apply(changes)

    def apply(self, changes: list[Change]) -> IndexReport:
        members = {
            cid: c.members
            for cid, c in self.conversations.get_many({c.conversation_id for c in changes}).items()
        }
        # posting key (pk, sk) -> the item to put, or None to delete; the last change wins.
        final: dict[tuple[str, str], dict[str, Any] | None] = {}
        for change in changes:
            people = sorted(members.get(change.conversation_id, ()))
            old = self._postings(change.old, people)
            new = self._postings(change.new, people)
            for scope, posting in old:
                final[_key_of(posting.key(scope))] = None
            for scope, posting in new:
                final[_key_of(posting.key(scope))] = posting.item(scope)
        puts = [item for item in final.values() if item is not None]
        deletes = [
            {"pk": {"S": pk}, "sk": {"S": sk}} for (pk, sk), item in final.items() if item is None
        ]
        if final:
            self.index.write(puts, deletes)
        report = IndexReport(len(changes), len(puts), len(deletes))
        logger.debug("indexed", extra={"changes": report.changes, "puts": report.puts})
        return report

    def _postings(
        self, image: MessageImage | None, members: list[str]
    ) -> list[tuple[str, Posting | PrefixPosting]]:
        if image is None:
            return []
        document = analyse(image.body, image.file_names, self.limits.max_terms)
        postings = _postings_of(image, document)
        scoped: list[tuple[str, Posting | PrefixPosting]] = []
        conversation = conversation_scope(image.conversation_id)
        every: list[Posting | PrefixPosting] = [*postings, *prefix_postings(postings)]
        scoped.extend((conversation, p) for p in every)
        if members:
            per_member = max(
                self.limits.min_user_terms, self.limits.user_postings_budget // len(members)
            )
            kept = _within_budget(postings, per_member)
            own: list[Posting | PrefixPosting] = [*kept, *prefix_postings(kept)]
            for user_id in members:
                scope = user_scope(user_id)
                scoped.extend((scope, p) for p in own)
        return scoped


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


def _within_budget(postings: list[Posting], budget: int) -> list[Posting]:
    """The first term postings whose items, with their prefix postings, number at most
    ``budget`` (at least one term)."""
    kept: list[Posting] = []
    seen: set[str] = set()
    for posting in postings:
        new = set(prefixes(posting.term)) - seen
        if kept and len(kept) + 1 + len(seen) + len(new) > budget:
            break
        kept.append(posting)
        seen |= new
    return kept


def _key_of(key: dict[str, Any]) -> tuple[str, str]:
    return (key["pk"]["S"], key["sk"]["S"])
