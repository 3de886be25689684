"""``message:search``: reads a bounded number of posting ranges, ranks, and checks the page
of hits against the messages as stored now (a deleted message or an edit that dropped the
words is never shown, whatever the index still holds).

Privacy: without ``conversationId`` the search reads only the caller's own scope
(``u#<userId>``), which holds postings for the conversations the caller was a member of
when each message was indexed; with it, membership is checked first (as for history: a
former member - left, removed, declined - finds only what came up to the seq they left
at), then the conversation's scope is read. Nobody's query ever reads another user's scope.

Cost of one search (docs/search.md): one GetItem when a conversation is named (a refusal
costs that alone), one rate-limit UpdateItem, one Query per word (a prefix word: up to 5),
one BatchGetItem of the page's messages (one more per round of hits found stale). Everything
is bounded by the query's size, never by how many conversations or messages the caller has.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal

from botocore.exceptions import ClientError
from pydantic import Field, StringConstraints, TypeAdapter

from switchboard.dal.conversations import ConversationRepository, StoredMessage
from switchboard.dal.items import is_condition_failure
from switchboard.dal.ratelimits import RateLimit, RateLimiter
from switchboard.errors import BadRequest, Forbidden, NotFound, RateLimited
from switchboard.router import Caller
from switchboard.search.index import (
    Posting,
    SearchIndexRepository,
    TermRange,
    conversation_scope,
    user_scope,
)
from switchboard.search.ranking import Candidate, ClauseRead, rank
from switchboard.search.text import (
    MIN_PREFIX_CHARS,
    Clause,
    Query,
    QueryTooComplex,
    Token,
    match_text,
    parse_query,
    prepare,
    snippet,
)
from switchboard.wire import search as wire

PREFIX_SHORTER_STEMS = 3  # "runni" also reads the stems "runn", "run" (and "ru")


@dataclass(frozen=True, slots=True)
class SearchLimits:
    max_clauses: int = 8  # words (and phrase words) per query
    postings_per_range: int = 200  # newest messages read per range (one Query page)
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
        offset = _decode_cursor(data.cursor, _digest(data)) if data.cursor else 0
        bound: int | None = None  # a former member searches up to the seq they left at
        if data.conversationId is not None:
            conversation = self.conversations.get(data.conversationId)
            if conversation is None:
                raise NotFound("conversation not found")
            if caller.user_id not in conversation.members:
                former = self.conversations.member(data.conversationId, caller.user_id)
                if former is None or former.left_seq is None:
                    raise Forbidden("you are not a member of this conversation")
                bound = former.left_seq
            scope = conversation_scope(data.conversationId)
        else:
            scope = user_scope(caller.user_id)
        # Counted once authorised: a refused request changes nothing (the RateLimits table
        # included), as for every action; the counter still comes before any index read.
        self._count(caller)
        if not query.clauses:  # only stop words: nothing to look for
            return wire.SearchResult(hits=[], cursor=None)
        ranked = rank(query, [self._read(scope, clause) for clause in query.clauses])
        if bound is not None:
            ranked = [c for c in ranked if c.key[1] <= bound]
        hits: list[wire.SearchHit] = []
        position = offset
        # A page is filled from the ranked list; a candidate whose message is gone or no
        # longer matches is skipped (the index will catch up from the stream).
        while len(hits) < data.limit and position < len(ranked):
            page = ranked[position : position + data.limit - len(hits)]
            position += len(page)
            stored = self.conversations.messages_at([c.key for c in page])
            for candidate in page:
                hit = _hit(query, candidate, stored.get(candidate.key))
                if hit is not None:
                    hits.append(hit)
        cursor = _encode_cursor(position, _digest(data)) if position < len(ranked) else None
        return wire.SearchResult(hits=hits, cursor=cursor)

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

    def _read(self, scope: str, clause: Clause) -> ClauseRead:
        postings: dict[tuple[str, str, int], Posting] = {}
        for term_range in ranges(scope, clause):
            read = self.index.read(term_range, self.limits.postings_per_range)
            for posting in read.postings:
                postings.setdefault((posting.term, posting.conversation_id, posting.seq), posting)
        return ClauseRead(clause, list(postings.values()))


def ranges(scope: str, clause: Clause) -> list[TermRange]:
    """The posting ranges one clause reads: its term; for the last word typed, also every
    term starting with it, the stem of the word as typed and the stems up to three
    letters shorter (Snowball stems are the word minus a suffix, so "runni" is "run…")."""
    if clause.prefix is None:
        return [TermRange(scope, clause.term, exact=True)]
    prefix = clause.prefix
    found = [TermRange(scope, prefix, exact=False)]
    shortest = max(MIN_PREFIX_CHARS, len(prefix) - PREFIX_SHORTER_STEMS)
    exact = [clause.term] + [prefix[:k] for k in range(len(prefix) - 1, shortest - 1, -1)]
    # A term that starts with the prefix is already in the prefix range.
    found.extend(
        TermRange(scope, term, exact=True)
        for term in dict.fromkeys(exact)
        if not term.startswith(prefix)
    )
    return found


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


def _encode_cursor(offset: int, digest: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([offset, digest]).encode()).decode()


# The cursor is ours but comes back from the client: validated like any input, and only
# for the query it was made for.
_CURSOR = TypeAdapter(
    tuple[
        Annotated[int, Field(ge=0, le=100_000)],
        Annotated[str, StringConstraints(min_length=12, max_length=12)],
    ]
)


def _decode_cursor(cursor: str, digest: str) -> int:
    try:
        offset, made_for = _CURSOR.validate_json(
            base64.urlsafe_b64decode(cursor.encode()), strict=True
        )
    except (ValueError, TypeError):
        raise BadRequest("invalid cursor") from None
    if made_for != digest:
        raise BadRequest("the cursor belongs to another search")
    return offset
