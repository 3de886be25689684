"""SearchIndexTable: one *document* per (scope, message), written by the indexer, read by
search (docs/search.md explains the trade against one item per term).

- ``pk`` = the scope: ``u#<userId>`` (the user's own documents: every conversation the
  user was a member of when the message was indexed) or ``c#<conversationId>`` (the
  conversation's);
- ``sk`` = ``<createdAt, 13 digits>#<conversationId>#<seq, 12 digits>``: a scope's
  documents are in time order, so a Query read backwards gives its newest messages first;
- ``d`` = ``<message length in terms>|<term>/<frequency>/<positions>/<surfaces>;…``: every
  distinct term of the message with what ranking (frequency, length), phrases (positions)
  and prefix matching of the word as written (surface forms) need, packed in one string.
  A surface form equal to its term is not stored (most are): the term is read back as
  one. A term that is *not* one of its words as written (Snowball stems "dying" to
  "die") is marked with a leading ``!`` in its surface list, so it is not read back as
  a surface form and a prefix of it ("di") matches nothing the text does not have.
  A chat message's document is a few hundred bytes: one write unit per scope. A document
  is at most ``MAX_DOCUMENT_BYTES``: past it, the last terms lose their surface forms,
  then their positions, then the terms themselves (a hostile 4,000-character message of
  made-up words would otherwise take ~12 KB, 12 write units per scope).

A search reads a scope's newest documents one Query page at a time (``read``) and matches
its words against their terms in memory; nothing is ever Scanned.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from switchboard.dal.base import DynamoRepository
from switchboard.limits import MAX_CONVERSATION_ID_CHARS

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

BATCH_WRITE_ITEMS = 25  # DynamoDB's BatchWriteItem limit
WRITE_ATTEMPTS = 8
MAX_DOCUMENT_BYTES = 4096  # at most 4 write units per scope, whatever the message
# What a read position looks like (a cursor carries one back from the client): a sort key,
# or a sort key followed by "~" (just above it: the first window of a search, read again).
SORT_KEY = re.compile(rf"[0-9]{{13}}#[A-Za-z0-9_-]{{1,{MAX_CONVERSATION_ID_CHARS}}}#[0-9]{{12}}~?")
NOT_A_WORD = "!"  # leads the surface list of a term that is not itself a word of the text


def user_scope(user_id: str) -> str:
    return f"u#{user_id}"


def conversation_scope(conversation_id: str) -> str:
    return f"c#{conversation_id}"


def sort_key(created_at: int, conversation_id: str, seq: int) -> str:
    return f"{created_at:013d}#{conversation_id}#{seq:012d}"


def just_above(key: str) -> str:
    """A read position that includes ``key`` (reads go below a position): every sort key
    character sorts before ``~``, and no other key has ``key`` as a prefix."""
    return f"{key}~"


def not_after(created_at: int) -> str:
    """A read position below every document created after ``created_at`` (epoch ms)."""
    return f"{created_at + 1:013d}#"


@dataclass(frozen=True, slots=True)
class Posting:
    """One term of one message (what ranking reads)."""

    term: str
    conversation_id: str
    seq: int
    created_at: int
    frequency: int
    positions: list[int]
    surfaces: list[str]
    length: int


@dataclass(frozen=True, slots=True)
class IndexDocument:
    """One message's terms, as stored in every scope it is indexed in."""

    conversation_id: str
    seq: int
    created_at: int
    length: int
    postings: tuple[Posting, ...]

    def key(self, scope: str) -> dict[str, Any]:
        return {
            "pk": {"S": scope},
            "sk": {"S": sort_key(self.created_at, self.conversation_id, self.seq)},
        }

    def item(self, scope: str) -> dict[str, Any]:
        return {**self.key(scope), "d": {"S": self.packed()}}

    def packed(self) -> str:
        """``<length>|<entries>``, at most ``MAX_DOCUMENT_BYTES``. Terms and surface forms
        hold letters, digits and apostrophes only (text.py), so the separators are safe.
        Past the budget an entry drops its surface forms, then its positions (a prefix or
        phrase clause then misses that term in this message), then the entry itself."""
        head = f"{self.length}|"
        budget = MAX_DOCUMENT_BYTES - len(head.encode())
        entries: list[str] = []
        for p in self.postings:
            others = [w for w in p.surfaces if w != p.term]
            if p.term not in p.surfaces:
                others.insert(0, NOT_A_WORD)
            forms = (
                [p.term, str(p.frequency), ",".join(map(str, p.positions)), ",".join(others)],
                [p.term, str(p.frequency), ",".join(map(str, p.positions)), ""],
                [p.term, str(p.frequency), "", ""],
            )
            for form in forms:
                entry = "/".join(form)
                cost = len(entry.encode()) + (1 if entries else 0)
                if cost <= budget:
                    entries.append(entry)
                    budget -= cost
                    break
        return head + ";".join(entries)


def postings_of(item: dict[str, Any]) -> list[Posting]:
    """The postings packed in a document item."""
    created_at, conversation_id, seq = item["sk"]["S"].split("#")
    length, entries = item["d"]["S"].split("|", 1)
    found = []
    for entry in entries.split(";"):
        term, frequency, positions, surfaces = entry.split("/")
        found.append(
            Posting(
                term=term,
                conversation_id=conversation_id,
                seq=int(seq),
                created_at=int(created_at),
                frequency=int(frequency),
                positions=[int(p) for p in positions.split(",") if p],
                surfaces=_surfaces(term, surfaces),
                length=int(length),
            )
        )
    return found


def _surfaces(term: str, packed: str) -> list[str]:
    words = [w for w in packed.split(",") if w]
    if words and words[0] == NOT_A_WORD:
        return words[1:]
    return [term, *words]


@dataclass(frozen=True, slots=True)
class Window:
    """One Query page of a scope's documents, newest first."""

    documents: list[list[Posting]]  # each document's postings
    older: str | None  # the sort key to read on from; None: nothing older
    newest: str | None = None  # the first document's sort key


class SearchIndexRepository(DynamoRepository):
    def __init__(
        self,
        table_name: str,
        *,
        client: DynamoDBClient | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(table_name, client=client)
        self._sleep = sleep

    def read(self, scope: str, limit: int, before: str | None = None) -> Window:
        """The newest ``limit`` documents of ``scope`` below the read position ``before``
        (one Query, one page: DynamoDB stops it at 1 MB too). ``newest`` is the first
        document's sort key (a cursor that reads this window again goes just above it)."""
        params: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": scope}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if before is not None:  # a key condition: the position need not be a stored key
            params["KeyConditionExpression"] = "pk = :pk AND sk < :before"
            params["ExpressionAttributeValues"][":before"] = {"S": before}
        response = self.client.query(**params)
        items = response["Items"]
        older = response.get("LastEvaluatedKey")
        return Window(
            [postings_of(item) for item in items],
            older["sk"]["S"] if older else None,
            items[0]["sk"]["S"] if items else None,
        )

    def write(self, puts: Iterable[dict[str, Any]], deletes: Iterable[dict[str, Any]]) -> None:
        """Puts and deletes documents (BatchWriteItem, 25 a call; unprocessed items retried
        with backoff, then an error so that the stream batch is retried: every write is
        idempotent). A key must not appear twice."""
        requests: list[Any] = [{"PutRequest": {"Item": item}} for item in puts]
        requests += [{"DeleteRequest": {"Key": key}} for key in deletes]
        for start in range(0, len(requests), BATCH_WRITE_ITEMS):
            pending: Sequence[Any] = requests[start : start + BATCH_WRITE_ITEMS]
            for attempt in range(WRITE_ATTEMPTS):
                response = self.client.batch_write_item(RequestItems={self.table: pending})
                pending = (response.get("UnprocessedItems") or {}).get(self.table, [])
                if not pending:
                    break
                # Throttled items come back unprocessed: back off (full jitter) and retry.
                self._sleep(random.uniform(0, min(2.0, 0.05 * 2**attempt)))  # noqa: S311
            else:
                raise RuntimeError(f"{len(pending)} index writes stayed unprocessed")
