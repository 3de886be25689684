"""Ranking candidates from the postings a search read: every clause must match (AND),
quoted phrases must hold at their offsets, and the survivors are scored with BM25 from
the stored term frequencies and message lengths; equal scores (to 2 decimals) go to the
newest message first.

BM25's corpus statistics are those of what the search read: N is the number of distinct
messages seen over all clauses, a clause's document frequency the number of messages it
matched. A word that is everywhere therefore weighs less than a rare one, as in BM25,
without a global counter that every indexed message would have to update.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from switchboard.search.index import Posting
from switchboard.search.text import Clause, Query, clause_matches, phrase_holds

K1 = 1.2
B = 0.75

MessageKey = tuple[str, int]  # (conversationId, seq)


@dataclass(frozen=True, slots=True)
class ClauseRead:
    clause: Clause
    postings: list[Posting]


@dataclass(slots=True)
class Candidate:
    conversation_id: str
    seq: int
    created_at: int
    length: int
    score: float = 0.0
    # term -> positions, from the postings that matched (phrase checks)
    positions: dict[str, list[int]] = field(default_factory=dict)

    @property
    def key(self) -> MessageKey:
        return (self.conversation_id, self.seq)


def rank(
    query: Query, reads: list[ClauseRead], max_seq: dict[str, int] | None = None
) -> list[Candidate]:
    """The candidates that satisfy ``query``, best first. ``max_seq`` bounds the seqs of a
    conversation that may be returned (a member who left sees up to their leave)."""
    per_clause: list[dict[MessageKey, list[Posting]]] = []
    candidates: dict[MessageKey, Candidate] = {}
    for read in reads:
        matched: dict[MessageKey, list[Posting]] = {}
        for posting in read.postings:
            if not clause_matches(read.clause, posting.term, posting.surfaces):
                continue
            bound = (max_seq or {}).get(posting.conversation_id)
            if bound is not None and posting.seq > bound:
                continue
            key = (posting.conversation_id, posting.seq)
            matched.setdefault(key, []).append(posting)
            candidate = candidates.get(key)
            if candidate is None:
                candidate = candidates[key] = Candidate(
                    posting.conversation_id, posting.seq, posting.created_at, posting.length
                )
            candidate.positions.setdefault(posting.term, posting.positions)
        per_clause.append(matched)
    if not per_clause:
        return []
    keys = set(per_clause[0])
    for matched in per_clause[1:]:
        keys &= set(matched)
    phrases = list(query.phrases.values())
    survivors = [
        candidates[k]
        for k in keys
        if all(phrase_holds(phrase, candidates[k].positions) for phrase in phrases)
    ]
    if not survivors:
        return []
    total = len(candidates)
    average_length = sum(c.length for c in survivors) / len(survivors)
    for candidate in survivors:
        score = 0.0
        for matched in per_clause:
            frequency = sum(p.frequency for p in matched[candidate.key])
            df = len(matched)
            idf = math.log(1 + (total - df + 0.5) / (df + 0.5))
            norm = K1 * (1 - B + B * candidate.length / max(average_length, 1.0))
            score += idf * frequency * (K1 + 1) / (frequency + norm)
        candidate.score = score
    survivors.sort(key=lambda c: (-round(c.score, 2), -c.created_at, c.conversation_id, c.seq))
    return survivors
