"""SearchIndexTable: the inverted index (postings), written by the indexer, read by search.

One posting per (scope, term, message):
- ``pk`` = ``<scope>#<first two characters of the term>``, where the scope is
  ``u#<userId>`` (the user's own postings: every conversation the user was a member of
  when the message was indexed) or ``c#<conversationId>`` (the conversation's);
- ``sk`` = ``<term>#<createdAt, 13 digits>#<conversationId>#<seq, 12 digits>``: a term's
  postings are contiguous and oldest first, so one Query with ``begins_with(sk, "bike#")``
  read backwards gives the newest first, and ``begins_with(sk, "bik")`` gives every term
  that starts with a prefix (the two-character bucket keeps a prefix in one partition
  while spreading one user's index over many).
- ``d``: ``<term frequency>|<message length in terms>|<positions>|<surface forms>``
  (ranking, phrases, prefix matching of the unstemmed word), packed in one string: a
  Query returns up to 200 postings, and one short attribute per posting keeps the page
  (and the read units it costs) small. The message's time, conversation and seq are read
  back from the sort key.

Nothing is ever Scanned: a search reads the few (scope, term) ranges it needs.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from switchboard.dal.base import DynamoRepository

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

BATCH_WRITE_ITEMS = 25  # DynamoDB's BatchWriteItem limit
WRITE_ATTEMPTS = 8


def user_scope(user_id: str) -> str:
    return f"u#{user_id}"


def conversation_scope(conversation_id: str) -> str:
    return f"c#{conversation_id}"


def partition(scope: str, term: str) -> str:
    return f"{scope}#{term[:2]}"


def sort_key(term: str, created_at: int, conversation_id: str, seq: int) -> str:
    return f"{term}#{created_at:013d}#{conversation_id}#{seq:012d}"


@dataclass(frozen=True, slots=True)
class Posting:
    term: str
    conversation_id: str
    seq: int
    created_at: int
    frequency: int
    positions: list[int]
    surfaces: list[str]
    length: int

    def key(self, scope: str) -> dict[str, Any]:
        return {
            "pk": {"S": partition(scope, self.term)},
            "sk": {"S": sort_key(self.term, self.created_at, self.conversation_id, self.seq)},
        }

    def item(self, scope: str) -> dict[str, Any]:
        # Terms and surface forms hold letters, digits and apostrophes only (text.py).
        packed = "|".join(
            [
                str(self.frequency),
                str(self.length),
                ",".join(map(str, self.positions)),
                ",".join(self.surfaces),
            ]
        )
        return {**self.key(scope), "d": {"S": packed}}


def _posting(item: dict[str, Any]) -> Posting:
    term, created_at, conversation_id, seq = item["sk"]["S"].split("#")
    frequency, length, positions, surfaces = item["d"]["S"].split("|")
    return Posting(
        term=term,
        conversation_id=conversation_id,
        seq=int(seq),
        created_at=int(created_at),
        frequency=int(frequency),
        positions=[int(p) for p in positions.split(",") if p],
        surfaces=[w for w in surfaces.split(",") if w],
        length=int(length),
    )


@dataclass(frozen=True, slots=True)
class TermRange:
    """What one Query reads: a term (``exact``) or every term starting with it."""

    scope: str
    term: str
    exact: bool


@dataclass(frozen=True, slots=True)
class RangeRead:
    postings: list[Posting]
    complete: bool  # False: the range holds older postings than the ones read


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

    def read(self, term_range: TermRange, limit: int) -> RangeRead:
        """The newest ``limit`` postings of the range (one Query, one page)."""
        prefix = term_range.term + ("#" if term_range.exact else "")
        response = self.client.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={
                ":pk": {"S": partition(term_range.scope, term_range.term)},
                ":prefix": {"S": prefix},
            },
            ScanIndexForward=False,
            Limit=limit,
        )
        postings = [_posting(item) for item in response["Items"]]
        return RangeRead(postings, complete="LastEvaluatedKey" not in response)

    def write(self, puts: Iterable[dict[str, Any]], deletes: Iterable[dict[str, Any]]) -> None:
        """Puts and deletes postings (BatchWriteItem, 25 a call; unprocessed items retried
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
