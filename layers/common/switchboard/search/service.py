"""``message:search``: reads a bounded number of pages of the scope's newest documents,
ranks them, and checks the page of hits against the messages as stored now (a deleted
message or an edit that dropped the words is never shown, whatever the index still holds).

Privacy: without ``conversationId`` the search reads only the caller's own scope
(``u#<userId>``), which holds documents for the conversations the caller had accepted
when each message was indexed; with it, membership is checked first (as for history: a
former member - left, removed, declined - finds only what came up to the seq they left
at, and reads nothing of the conversation's scope newer than their leave), then the
conversation's scope is read. Nobody's query ever reads another user's scope. A former
member never sees an edit made after they left (history withholds it too): such a hit
is dropped, whichever scope found it.

Cost of one search (docs/search.md): one GetItem when a conversation is named (a refusal
costs that alone), one rate-limit UpdateItem, one Query per window of documents read
(at most ``reads_per_search``: a window that fills the page ends the reading), and at
most ``fetch_rounds`` BatchGetItems of candidate messages in the whole request (the
first fetches the page; a candidate found stale costs a place in a later round, and
when the rounds are spent the cursor goes on from there); one more BatchGetItem of the
caller's member items when a hit was edited (to withhold edits made after a leave).
Everything is bounded by the limits, never by how many conversations or messages the
caller has; the cursor goes on into older windows.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Annotated, Literal

from botocore.exceptions import ClientError
from pydantic import Field, StringConstraints

from switchboard.dal.conversations import ConversationRepository, Member, StoredMessage
from switchboard.dal.items import is_condition_failure
from switchboard.dal.ratelimits import RateLimit, RateLimiter
from switchboard.errors import BadRequest, RateLimited, conversation_not_found
from switchboard.router import Caller
from switchboard.search.index import (
    SORT_KEY,
    Posting,
    SearchIndexRepository,
    conversation_scope,
    just_above,
    not_after,
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
    fetch_rounds: int = 3  # BatchGetItems of candidate messages per request, at most
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
        # window, so a cursor's position in a ranking holds), and reads nothing newer
        max_seq: dict[str, int] | None = None
        left_at: int | None = None
        if data.conversationId is not None:
            conversation = self.conversations.get(data.conversationId)
            if conversation is None or caller.user_id not in conversation.members:
                # A former member's item says where they left. For anyone else the
                # conversation does not exist, with the same reads either way (a stranger
                # learns nothing, not even from the reply's timing).
                former = self.conversations.member(data.conversationId, caller.user_id)
                if conversation is None or former is None or former.left_seq is None:
                    raise conversation_not_found()
                max_seq = {data.conversationId: former.left_seq}
                left_at = former.left_at or 0
                # not even a cursor (its sort keys are the conversation's) reads past it
                ceiling = not_after(left_at)
                before = ceiling if before is None or before > ceiling else before
            scope = conversation_scope(data.conversationId)
        else:
            scope = user_scope(caller.user_id)
        # Counted once authorised: a refused request changes nothing (the RateLimits table
        # included), as for every action; the counter still comes before any index read.
        self._count(caller)
        if not query.clauses:  # only stop words: nothing to look for
            return wire.SearchResult(hits=[], cursor=None)
        page = _Page(caller.user_id, data.limit, left_at, self.limits.fetch_rounds)
        for _ in range(self.limits.reads_per_search):
            window = self.index.read(scope, self.limits.documents_per_read, before)
            if before is None and window.newest is not None:
                before = just_above(window.newest)  # a cursor reads this window again
            ranked = rank(query, _clause_reads(query, window.documents), max_seq)
            position = self._fill(query, ranked, offset, page)
            if position < len(ranked):  # the page is full, or the fetches are spent
                return page.result(_encode_cursor(before, position, data))
            if window.older is None:  # nothing older: the search is complete
                return page.result(None)
            before, offset = window.older, 0
            if page.full:
                break
        # The page is full, or the read budget is spent: the cursor reads on from there.
        return page.result(_encode_cursor(before, 0, data))

    def _fill(self, query: Query, ranked: list[Candidate], offset: int, page: _Page) -> int:
        """Adds the hits of ``ranked`` from ``offset`` to the page until it is full or its
        fetch rounds are spent; returns the position reached. A candidate whose message is
        gone or no longer matches is skipped (the index will catch up from the stream).
        A round fetches at least twice the page (at most 100), so stale candidates cost
        places in a bounded number of BatchGetItems, not one call each."""
        position = offset
        while not page.full and page.rounds and position < len(ranked):
            page.rounds -= 1
            want = min(max(page.limit - len(page.hits), 2 * page.limit), 100)
            batch = ranked[position : position + want]
            stored = self.conversations.messages_at([c.key for c in batch])
            self._withhold_late_edits(page, stored)
            for candidate in batch:
                if page.full:
                    break
                position += 1
                hit = _hit(query, candidate, stored.get(candidate.key))
                if hit is not None:
                    page.hits.append(hit)
        return position

    def _withhold_late_edits(
        self, page: _Page, stored: dict[tuple[str, int], StoredMessage]
    ) -> None:
        """Drops from ``stored`` what the caller may not see as a former member: an edit
        made after they left (history withholds it the same way). Only edited messages
        need the caller's membership, read in one BatchGetItem and kept for the request."""
        edited = {m.conversation_id for m in stored.values() if m.edited_at is not None}
        unknown = edited - page.memberships.keys()
        if unknown and page.left_at is None:
            page.memberships.update(self.conversations.memberships(page.user_id, unknown))
        for key, message in list(stored.items()):
            if message.edited_at is None:
                continue
            left_at = page.left_at
            if left_at is None:
                member = page.memberships.get(message.conversation_id)
                left_at = member.left_at if member is not None else None
            if left_at is not None and message.edited_at > left_at:
                del stored[key]

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


@dataclass(slots=True)
class _Page:
    """One request's page of hits and what it may still spend."""

    user_id: str
    limit: int
    left_at: int | None  # the named conversation's, for a former member
    rounds: int  # BatchGetItems of candidates left
    hits: list[wire.SearchHit] = field(default_factory=list)
    memberships: dict[str, Member] = field(default_factory=dict)

    @property
    def full(self) -> bool:
        return len(self.hits) >= self.limit

    def result(self, cursor: str | None) -> wire.SearchResult:
        return wire.SearchResult(hits=self.hits, cursor=cursor)


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
