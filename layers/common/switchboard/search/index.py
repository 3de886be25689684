"""SearchIndexTable: the inverted index (postings), written by the indexer, read by search.

Term postings, one per (scope, term, message):
- ``pk`` = ``<scope>#<first two characters of the term>``, where the scope is
  ``u#<userId>`` (the user's own postings: every conversation the user was a member of
  when the message was indexed) or ``c#<conversationId>`` (the conversation's);
- ``sk`` = ``<term>#<createdAt, 13 digits>#<conversationId>#<seq, 12 digits>``: a term's
  postings are contiguous and oldest first, so one Query with ``begins_with(sk, "bike#")``
  read backwards gives the newest first (the two-character bucket spreads one user's
  index over many partitions).
- ``d``: ``<term frequency>|<message length in terms>|<positions>|<surface forms>``
  (ranking, phrases, prefix matching of the unstemmed word), packed in one string: a
  Query returns up to 200 postings, and one short attribute per posting keeps the page
  (and the read units it costs) small. The message's time, conversation and seq are read
  back from the sort key.

Prefix postings (search as you type), one per (scope, prefix, message) for every prefix of
PREFIX_MIN..PREFIX_MAX characters of the message's terms:
- ``pk`` = ``<scope>#*<first two characters>``, ``sk`` = ``<prefix>#<createdAt>#<conv>#<seq>``:
  a prefix's postings are ordered by time, so one Query read backwards gives the newest
  *messages* with a word starting with it. (Reading ``begins_with(sk, "bik")`` over term
  postings instead would give the alphabetically last ``bik…`` terms: anyone who can
  write to the user could push a real match out with made-up words.) One posting per
  message, whatever number of its words share the prefix, so a message counts once
  against the read's limit.
- ``d``: ``<message length>|<term>/<frequency>/<positions>/<surfaces>;…``: the message's
  terms that start with the prefix, as in their term postings.
A typed prefix longer than PREFIX_MAX reads the postings of its first PREFIX_MAX
characters and keeps the terms that start with the whole prefix.

Nothing is ever Scanned: a search reads the few (scope, term) ranges it needs.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from switchboard.dal.base import DynamoRepository
from switchboard.search.text import MIN_PREFIX_CHARS

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PREFIX_MIN = MIN_PREFIX_CHARS  # a shorter typed word is not searched as a prefix
PREFIX_MAX = 4  # longest prefix with postings of its own (bounds the writes per term)
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


def prefix_partition(scope: str, prefix: str) -> str:
    return f"{scope}#*{prefix[:2]}"


@dataclass(frozen=True, slots=True)
class PrefixPosting:
    """The postings of one message's terms that start with ``prefix`` (module doc)."""

    prefix: str
    postings: tuple[Posting, ...]

    def key(self, scope: str) -> dict[str, Any]:
        first = self.postings[0]
        return {
            "pk": {"S": prefix_partition(scope, self.prefix)},
            "sk": {"S": sort_key(self.prefix, first.created_at, first.conversation_id, first.seq)},
        }

    def item(self, scope: str) -> dict[str, Any]:
        entries = ";".join(
            "/".join(
                [p.term, str(p.frequency), ",".join(map(str, p.positions)), ",".join(p.surfaces)]
            )
            for p in self.postings
        )
        return {**self.key(scope), "d": {"S": f"{self.postings[0].length}|{entries}"}}


def prefixes(term: str) -> list[str]:
    """The prefixes of ``term`` that have postings of their own."""
    return [term[:size] for size in range(PREFIX_MIN, min(PREFIX_MAX, len(term)) + 1)]


def prefix_postings(postings: Sequence[Posting]) -> list[PrefixPosting]:
    """The prefix postings of one message's term postings."""
    by_prefix: dict[str, list[Posting]] = {}
    for posting in postings:
        for prefix in prefixes(posting.term):
            by_prefix.setdefault(prefix, []).append(posting)
    return [PrefixPosting(prefix, tuple(found)) for prefix, found in by_prefix.items()]


def _prefix_postings(item: dict[str, Any]) -> list[Posting]:
    _, created_at, conversation_id, seq = item["sk"]["S"].split("#")
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
                surfaces=[w for w in surfaces.split(",") if w],
                length=int(length),
            )
        )
    return found


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
        """The postings of the newest ``limit`` messages in the range (one Query, one
        page): a term's postings, or for a prefix, those of every term starting with it."""
        term = term_range.term
        if term_range.exact:
            pk = partition(term_range.scope, term)
            begins = f"{term}#"
        else:
            pk = prefix_partition(term_range.scope, term)
            begins = f"{term[:PREFIX_MAX]}#"
        response = self.client.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": {"S": pk}, ":prefix": {"S": begins}},
            ScanIndexForward=False,
            Limit=limit,
        )
        if term_range.exact:
            postings = [_posting(item) for item in response["Items"]]
        else:
            postings = [
                posting
                for item in response["Items"]
                for posting in _prefix_postings(item)
                if posting.term.startswith(term)
            ]
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
