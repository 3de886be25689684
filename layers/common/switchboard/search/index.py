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
  one, which matches no prefix that its surface forms would not (a stem is the start of
  its words, or the clause's own term).
  A chat message's document is a few hundred bytes: one write unit per scope.

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
# What a sort key looks like (a cursor carries one back from the client).
SORT_KEY = re.compile(rf"[0-9]{{13}}#[A-Za-z0-9_-]{{1,{MAX_CONVERSATION_ID_CHARS}}}#[0-9]{{12}}")


def user_scope(user_id: str) -> str:
    return f"u#{user_id}"


def conversation_scope(conversation_id: str) -> str:
    return f"c#{conversation_id}"


def sort_key(created_at: int, conversation_id: str, seq: int) -> str:
    return f"{created_at:013d}#{conversation_id}#{seq:012d}"


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
        # Terms and surface forms hold letters, digits and apostrophes only (text.py).
        entries = ";".join(
            "/".join(
                [
                    p.term,
                    str(p.frequency),
                    ",".join(map(str, p.positions)),
                    ",".join(w for w in p.surfaces if w != p.term),
                ]
            )
            for p in self.postings
        )
        return {**self.key(scope), "d": {"S": f"{self.length}|{entries}"}}


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
                surfaces=[term, *(w for w in surfaces.split(",") if w)],
                length=int(length),
            )
        )
    return found


@dataclass(frozen=True, slots=True)
class Window:
    """One Query page of a scope's documents, newest first."""

    documents: list[list[Posting]]  # each document's postings
    older: str | None  # the sort key to read on from; None: nothing older


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
        """The newest ``limit`` documents of ``scope`` older than the sort key ``before``
        (one Query, one page: DynamoDB stops it at 1 MB too)."""
        params: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": scope}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if before is not None:
            params["ExclusiveStartKey"] = {"pk": {"S": scope}, "sk": {"S": before}}
        response = self.client.query(**params)
        older = response.get("LastEvaluatedKey")
        return Window(
            [postings_of(item) for item in response["Items"]],
            older["sk"]["S"] if older else None,
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
