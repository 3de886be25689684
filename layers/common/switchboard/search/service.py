"""``message:search``: reads a bounded number of pages of the scope's newest documents,
ranks them, and checks the page of hits against the messages as stored now (a deleted
message or an edit that dropped the words is never shown, whatever the index still holds).

Privacy: without ``conversationId`` the search reads only the caller's own scope
(``u#<userId>``), which holds documents for the conversations the caller was a member of
when each message was indexed; with it, membership is checked first (as for history: a
former member - left, removed, declined - finds only what came up to the seq they left
at), then the conversation's scope is read. Nobody's query ever reads another user's scope.

Cost of one search (docs/search.md): one GetItem when a conversation is named (a refusal
costs that alone), one rate-limit UpdateItem, one Query per window of documents read
(at most ``reads_per_search``: a window that fills the page ends the reading), one
BatchGetItem of the page's messages (one more per round of hits found stale). Everything
is bounded by the limits, never by how many conversations or messages the caller has;
the cursor goes on into older windows.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Annotated, Literal

from botocore.exceptions import ClientError
from pydantic import Field, StringConstraints

from switchboard.dal.conversations import ConversationRepository, StoredMessage
from switchboard.dal.items import is_condition_failure
from switchboard.dal.ratelimits import RateLimit, RateLimiter
from switchboard.errors import BadRequest, Forbidden, NotFound, RateLimited
from switchboard.router import Caller
from switchboard.search.index import (
    SORT_KEY,
    Posting,
    SearchIndexRepository,
    conversation_scope,
    user_scope,
)
from switchboard.search.ranking import Candidate, ClauseRead, rank
from switchboard.search.text import (
    Query,
    QueryTooComplex,
    Token,
    match_text,
    parse_query,
    prepare,
    snippet,
)
from switchboard.wire import search as wire

if TYPE_CHECKING:
    from pydantic import TypeAdapter


@dataclass(frozen=True, slots=True)
class SearchLimits:
    max_clauses: int = 8  # words (and phrase words) per query
    documents_per_read: int = 500  # newest documents read per window (one Query page)
    reads_per_search: int = 4  # windows read at most before a page is returned
    searches_per_user: int = 60
    window_seconds: int = 10


class SearchService:
    def __init__(
        self,
        index: SearchIndexRepository,
        conversations: ConversationRepository,
        counters: RateLimiter,
        *,
        limits: SearchLimits = SearchLimits(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.index = index
        self.conversations = conversations
        self.counters = counters
        self.limits = limits
        self._clock = clock

    def search(self, caller: Caller, data: wire.MessageSearch) -> wire.SearchResult:
        try:
            query = parse_query(data.query, self.limits.max_clauses)
        except QueryTooComplex as exc:
            raise BadRequest(str(exc)) from None
        before, offset = _decode_cursor(data.cursor, _digest(data)) if data.cursor else (None, 0)
        # a former member searches up to the seq they left at (the same bound on every
        # window, so a cursor's position in a ranking holds)
        max_seq: dict[str, int] | None = None
        if data.conversationId is not None:
            conversation = self.conversations.get(data.conversationId)
            if conversation is None:
                raise NotFound("conversation not found")
            if caller.user_id not in conversation.members:
                former = self.conversations.member(data.conversationId, caller.user_id)
                if former is None or former.left_seq is None:
                    raise Forbidden("you are not a member of this conversation")
                max_seq = {data.conversationId: former.left_seq}
            scope = conversation_scope(data.conversationId)
        else:
            scope = user_scope(caller.user_id)
        # Counted once authorised: a refused request changes nothing (the RateLimits table
        # included), as for every action; the counter still comes before any index read.
        self._count(caller)
        if not query.clauses:  # only stop words: nothing to look for
            return wire.SearchResult(hits=[], cursor=None)
        hits: list[wire.SearchHit] = []
        for _ in range(self.limits.reads_per_search):
            window = self.index.read(scope, self.limits.documents_per_read, before)
            ranked = rank(query, _clause_reads(query, window.documents), max_seq)
            position = self._fill(query, ranked, offset, data.limit, hits)
            if position < len(ranked):  # the page is full within this window
                return wire.SearchResult(hits=hits, cursor=_encode_cursor(before, position, data))
            if window.older is None:  # nothing older: the search is complete
                return wire.SearchResult(hits=hits, cursor=None)
            before, offset = window.older, 0
            if len(hits) >= data.limit:
                break
        # The page is full, or the read budget is spent: the cursor reads on from there.
        return wire.SearchResult(hits=hits, cursor=_encode_cursor(before, 0, data))

    def _fill(
        self,
        query: Query,
        ranked: list[Candidate],
        offset: int,
        limit: int,
        hits: list[wire.SearchHit],
    ) -> int:
        """Adds the hits of ``ranked`` from ``offset`` to ``hits`` up to ``limit``; returns
        the position reached. A candidate whose message is gone or no longer matches is
        skipped (the index will catch up from the stream)."""
        position = offset
        while len(hits) < limit and position < len(ranked):
            page = ranked[position : position + limit - len(hits)]
            position += len(page)
            stored = self.conversations.messages_at([c.key for c in page])
            for candidate in page:
                hit = _hit(query, candidate, stored.get(candidate.key))
                if hit is not None:
                    hits.append(hit)
        return position

    def _count(self, caller: Caller) -> None:
        rule = RateLimit(
            f"search#user#{caller.user_id}",
            self.limits.searches_per_user,
            self.limits.window_seconds,
        )
        now_ms = int(self._clock() * 1000)
        try:
            self.counters.client.update_item(**self.counters.update(rule, now_ms))
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
            raise RateLimited(
                f"rate limit reached: at most {rule.limit} searches per {rule.window_seconds} s",
                details={"retryAfterMs": rule.retry_after_ms(now_ms)},
            ) from None


def _clause_reads(query: Query, documents: list[list[Posting]]) -> list[ClauseRead]:
    """Each clause's candidate postings in a window: its term's, by lookup, and for the
    last word typed also those whose surface forms start with it (one pass), so a window
    of hostile 64-word documents costs one pass per query, not one per word."""
    by_term: dict[str, list[Posting]] = {}
    for document in documents:
        for posting in document:
            by_term.setdefault(posting.term, []).append(posting)
    reads = []
    for clause in query.clauses:
        found = list(by_term.get(clause.term, ()))
        if clause.prefix is not None:
            prefix = clause.prefix
            found += [
                posting
                for term, postings in by_term.items()
                if term != clause.term
                for posting in postings
                if any(surface.startswith(prefix) for surface in posting.surfaces)
            ]
        reads.append(ClauseRead(clause, found))
    return reads


def _hit(
    query: Query, candidate: Candidate, message: StoredMessage | None
) -> wire.SearchHit | None:
    if message is None:
        return None
    names = [str(a.get("fileName")) for a in message.attachments if a.get("fileName")]
    body = prepare(message.body)
    combined = "\n".join([body, *names])
    matched = match_text(query, combined)
    if matched is None:
        return None
    in_body = [t for t in matched if t.end <= len(body)]
    field: Literal["body", "attachment"] = "body" if in_body or not names else "attachment"
    if field == "body":
        shown, tokens = body, in_body
    else:
        shift = len(body) + 1
        shown = "\n".join(names)
        tokens = [
            Token(t.term, t.surface, t.position, t.start - shift, t.end - shift)
            for t in matched
            if t.start >= shift
        ]
    cut = snippet(shown, tokens)
    return wire.SearchHit(
        conversationId=message.conversation_id,
        seq=message.seq,
        messageId=message.message_id,
        senderId=message.sender_id,
        createdAt=message.created_at,
        snippet=cut.text,
        highlights=[[start, end] for start, end in cut.highlights],
        field=field,
    )


def _digest(data: wire.MessageSearch) -> str:
    key = json.dumps([data.query, data.conversationId])
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _encode_cursor(before: str | None, offset: int, data: wire.MessageSearch) -> str:
    state = [before or "", offset, _digest(data)]
    return base64.urlsafe_b64encode(json.dumps(state).encode()).decode()


# The cursor is ours but comes back from the client: validated like any input, and only
# for the query it was made for. It can only move the reading within the caller's scope.
# Built on the first search that pages on, off the cold start.
@cache
def _cursor() -> TypeAdapter[tuple[str, int, str]]:
    from pydantic import TypeAdapter

    return TypeAdapter(
        tuple[
            Annotated[str, StringConstraints(max_length=200)],
            Annotated[int, Field(ge=0, le=100_000)],
            Annotated[str, StringConstraints(min_length=12, max_length=12)],
        ]
    )


def _decode_cursor(cursor: str, digest: str) -> tuple[str | None, int]:
    try:
        before, offset, made_for = _cursor().validate_json(
            base64.urlsafe_b64decode(cursor.encode()), strict=True
        )
    except (ValueError, TypeError):
        raise BadRequest("invalid cursor") from None
    if before and not SORT_KEY.fullmatch(before):
        raise BadRequest("invalid cursor")
    if made_for != digest:
        raise BadRequest("the cursor belongs to another search")
    return before or None, offset
