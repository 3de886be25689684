"""The text pipeline shared by the indexer and the search: words -> terms.

A word is a run of letters and digits (apostrophes inside a word keep it whole: "don't").
Each word is normalised as people expect search to ignore: Unicode NFKC (full-width and
compatibility forms), case folding ("Straße" = "strasse"), diacritics removed ("café" =
"cafe"), then English stop words are dropped (their positions still count) and the rest
is stemmed with the Snowball English stemmer ("running" = "run"). Nothing here touches
AWS: the same functions analyse a message at index time and verify and highlight a hit at
query time, so a hit is always checked against the message's current text.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

from snowballstemmer import stemmer

from switchboard.search.stopwords import ENGLISH

# A word: letters/digits (underscore separates, as in file names), combining marks kept
# with their letter; an inner apostrophe (ASCII or U+2019) keeps "don't" one word.
_LETTER = r"[^\W_][\u0300-\u036f]*"
WORD = re.compile(rf"(?:{_LETTER})+(?:['\u2019](?:{_LETTER})+)*")
MAX_TERM_CHARS = 40  # longer words (hashes, pasted tokens) are not indexed
MIN_PREFIX_CHARS = 2  # a shorter last word is not expanded as a prefix
FIELD_GAP = 8  # positions between fields (body, file names): no phrase spans two fields

_stemmer = stemmer("english")


@dataclass(frozen=True, slots=True)
class Token:
    term: str  # the stem (what the index is keyed on)
    surface: str  # the normalised word before stemming (prefix matching)
    position: int  # word position in the text, stop words counted
    start: int  # character span in the analysed text
    end: int


def normalise(word: str) -> str:
    """NFKC, case folding, diacritics removed, typographic apostrophe made plain; only
    letters, digits and apostrophes remain (NFKC can expand one character into several
    words, and a term must never hold the index key's ``#`` separator)."""
    folded = unicodedata.normalize("NFKC", word).casefold().replace("\u2019", "'")
    stripped = "".join(
        c
        for c in unicodedata.normalize("NFD", folded)
        if (c.isalnum() or c == "'") and unicodedata.category(c) != "Mn"
    )
    return unicodedata.normalize("NFC", stripped)


@lru_cache(maxsize=8192)
def stem(surface: str) -> str:
    return str(_stemmer.stemWord(surface))


def prepare(text: str) -> str:
    """The text as analysed and shown in snippets: NFC (canonically the same text), so a
    letter and its combining accent are one character and highlight offsets stay true."""
    return unicodedata.normalize("NFC", text)


def tokens(text: str, first_position: int = 0) -> list[Token]:
    """The indexable words of ``text`` (already ``prepare``d), stop words left out."""
    found = []
    for position, match in enumerate(WORD.finditer(text), start=first_position):
        surface = normalise(match.group())
        if surface in ENGLISH or len(surface) > MAX_TERM_CHARS:
            continue
        found.append(Token(stem(surface), surface, position, match.start(), match.end()))
    return found


def word_count(text: str) -> int:
    return sum(1 for _ in WORD.finditer(text))


# ---------------------------------------------------------------------------- documents
@dataclass(slots=True)
class TermStats:
    frequency: int = 0
    positions: list[int] = field(default_factory=list)
    surfaces: list[str] = field(default_factory=list)


MAX_POSITIONS = 16  # per term and message: enough for phrases, bounded item size
MAX_SURFACES = 4


@dataclass(frozen=True, slots=True)
class Document:
    """A message as the index sees it: each distinct term (first occurrence first) with
    its frequency, positions and surface forms, and the message's length in terms."""

    terms: dict[str, TermStats]
    length: int


def analyse(body: str, file_names: list[str], max_terms: int) -> Document:
    """``body`` and the attachments' file names as one document (fields FIELD_GAP apart);
    at most ``max_terms`` distinct terms, in order of first appearance."""
    stats: dict[str, TermStats] = {}
    length = 0
    position = 0
    for field_text in [body, *file_names]:
        text = prepare(field_text)
        for token in tokens(text, position):
            length += 1
            entry = stats.get(token.term)
            if entry is None:
                if len(stats) >= max_terms:
                    continue
                entry = stats[token.term] = TermStats()
            entry.frequency += 1
            if len(entry.positions) < MAX_POSITIONS:
                entry.positions.append(token.position)
            if token.surface not in entry.surfaces and len(entry.surfaces) < MAX_SURFACES:
                entry.surfaces.append(token.surface)
        position += word_count(text) + FIELD_GAP
    return Document(stats, length)


# ---------------------------------------------------------------------------- queries
@dataclass(frozen=True, slots=True)
class Clause:
    """A required term. ``prefix`` (the last word as typed, normalised) also matches
    words that start with it; ``phrase``/``offset`` place it in a quoted phrase."""

    term: str
    prefix: str | None = None
    phrase: int | None = None
    offset: int = 0


@dataclass(frozen=True, slots=True)
class Query:
    clauses: tuple[Clause, ...]

    @property
    def phrases(self) -> dict[int, list[Clause]]:
        grouped: dict[int, list[Clause]] = {}
        for clause in self.clauses:
            if clause.phrase is not None:
                grouped.setdefault(clause.phrase, []).append(clause)
        return {k: v for k, v in grouped.items() if len(v) > 1}


class QueryTooComplex(ValueError):
    pass


def parse_query(text: str, max_clauses: int) -> Query:
    """Words are all required; ``"quoted words"`` must appear together, in order; the last
    word, unless quoted or followed by a space, also matches as a prefix (search as you
    type). A quote left open closes at the end."""
    text = prepare(text)
    clauses: list[Clause] = []
    seen: set[tuple[str, str | None, int | None, int]] = set()
    parts = text.split('"')
    trailing_prefix = not text[-1:].isspace() and not text.endswith('"')
    last_part = len(parts) - 1
    for index, part in enumerate(parts):
        quoted = index % 2 == 1
        found = tokens(part)
        if not found:
            continue
        first = found[0].position
        for k, token in enumerate(found):
            is_last = index == last_part and k == len(found) - 1
            prefix = None
            if is_last and trailing_prefix and not quoted:
                words = list(WORD.finditer(part))
                # The typed last word must be the last word of the text (not a stop word).
                if (
                    words
                    and words[-1].start() == token.start
                    and len(token.surface) >= MIN_PREFIX_CHARS
                ):
                    prefix = token.surface
            clause = Clause(
                term=token.term,
                prefix=prefix,
                phrase=index if quoted and len(found) > 1 else None,
                offset=token.position - first if quoted else 0,
            )
            key = (clause.term, clause.prefix, clause.phrase, clause.offset)
            if key not in seen:
                seen.add(key)
                clauses.append(clause)
    if len(clauses) > max_clauses:
        raise QueryTooComplex(f"at most {max_clauses} search words")
    return Query(tuple(clauses))


def clause_matches(clause: Clause, term: str, surfaces: list[str]) -> bool:
    """Whether an indexed ``term`` (with its surface forms) satisfies ``clause``."""
    if term == clause.term:
        return True
    if clause.prefix is None:
        return False
    return any(surface.startswith(clause.prefix) for surface in surfaces)


def phrase_holds(phrase: list[Clause], positions: dict[str, list[int]]) -> bool:
    """Whether the phrase's terms occur at their relative offsets somewhere
    (``positions``: the positions of each exact term in the document)."""
    anchor = phrase[0]
    for start in positions.get(anchor.term, []):
        base = start - anchor.offset
        if all(base + c.offset in positions.get(c.term, []) for c in phrase[1:]):
            return True
    return False


# ---------------------------------------------------------------------------- snippets
@dataclass(frozen=True, slots=True)
class Snippet:
    text: str
    highlights: list[tuple[int, int]]  # [start, end) in code points of ``text``


def match_text(query: Query, text: str) -> list[Token] | None:
    """The tokens of ``text`` that the query matches, or None if the text does not satisfy
    every clause and phrase (an edited message no longer matching its old postings)."""
    found = tokens(prepare(text))
    matched: list[Token] = []
    for clause in query.clauses:
        hits = [t for t in found if clause_matches(clause, t.term, [t.surface])]
        if not hits:
            return None
        matched.extend(hits)
    for phrase in query.phrases.values():
        positions: dict[str, list[int]] = {}
        for token in found:
            positions.setdefault(token.term, []).append(token.position)
        if not phrase_holds(phrase, positions):
            return None
    return sorted(set(matched), key=lambda t: t.start)


def snippet(text: str, matched: list[Token], width: int = 160) -> Snippet:
    """About ``width`` characters of ``text`` around the first match, with every match in
    that window highlighted (offsets relative to the snippet)."""
    text = prepare(text)
    first = matched[0].start if matched else 0
    start = 0 if len(text) <= width else max(0, min(first - width // 4, len(text) - width))
    if start > 0:  # start on a word boundary
        space = text.find(" ", start, first)
        start = space + 1 if space != -1 else start
    end = min(len(text), start + width)
    if end < len(text):
        space = text.rfind(" ", max(start, matched[-1].end if matched else start), end)
        end = space if space > start else end
    prefix = "…" if start > 0 else ""
    suffix = "…" if end < len(text) else ""
    shift = len(prefix) - start
    highlights = [
        (t.start + shift, t.end + shift) for t in matched if t.start >= start and t.end <= end
    ]
    return Snippet(prefix + text[start:end] + suffix, highlights)
