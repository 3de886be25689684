"""The search text pipeline, query parsing, the index's documents and ranking: pure code,
no AWS."""

from __future__ import annotations

from dataclasses import replace

import pytest
from switchboard.search.index import (
    MAX_DOCUMENT_BYTES,
    IndexDocument,
    Posting,
    postings_of,
    sort_key,
)
from switchboard.search.ranking import ClauseRead, rank
from switchboard.search.text import (
    MAX_TERM_CHARS,
    Clause,
    QueryTooComplex,
    analyse,
    match_text,
    normalise,
    parse_query,
    prepare,
    snippet,
    tokens,
)


# ------------------------------------------------------------------ words and terms
@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("Café", "cafe"),
        ("CAFE\u0301", "cafe"),  # a combining accent
        ("Straße", "strasse"),  # case folding, not lower()
        ("\uff22\uff29\uff2b\uff25", "bike"),  # full-width (NFKC)
        ("ﬁle", "file"),  # a ligature (NFKC)
        ("naïve", "naive"),
        ("don\u2019t", "don't"),
    ],
)
def test_normalise_folds_case_width_ligatures_and_diacritics(word: str, expected: str) -> None:
    assert normalise(word) == expected


def test_tokens_stem_drop_stop_words_and_keep_positions_and_spans() -> None:
    text = prepare("The bikes were running, don\u2019t stop — invoice_2026.PDF")
    found = tokens(text)
    assert [t.term for t in found] == ["bike", "run", "stop", "invoic", "2026", "pdf"]
    assert [t.position for t in found] == [1, 3, 5, 6, 7, 8]  # stop words counted
    assert [text[t.start : t.end] for t in found][:2] == ["bikes", "running"]
    assert found[0].surface == "bikes"


def test_very_long_words_are_not_indexed() -> None:
    assert tokens("x" * (MAX_TERM_CHARS + 1)) == []
    assert len(tokens("x" * MAX_TERM_CHARS)) == 1


def test_analyse_counts_frequencies_and_keeps_fields_apart() -> None:
    document = analyse("bike bike red", ["red-bike.jpg"], max_terms=64)
    assert document.terms["bike"].frequency == 3
    assert document.terms["red"].positions[0] == 2
    # The file name starts FIELD_GAP positions after the body: no phrase spans both.
    assert document.terms["red"].positions[1] > 3 + 1
    assert document.length == 6


def test_analyse_keeps_at_most_max_terms_distinct_terms_in_order() -> None:
    document = analyse("alpha bravo charlie delta alpha", [], max_terms=2)
    assert list(document.terms) == ["alpha", "bravo"]
    assert document.terms["alpha"].frequency == 2
    assert document.length == 5  # every word still counts for the length


# ------------------------------------------------------------------ queries
def test_the_last_word_is_a_prefix_unless_a_space_or_quote_ends_it() -> None:
    assert parse_query("red bik", 8).clauses == (
        Clause("red"),
        Clause("bik", prefix="bik"),
    )
    assert parse_query("red bik ", 8).clauses[-1].prefix is None
    assert parse_query('"red bik"', 8).clauses[-1].prefix is None
    assert parse_query("red b", 8).clauses[-1].prefix is None  # too short to expand
    # A stop word at the end is dropped, not expanded.
    assert parse_query("bike the", 8).clauses == (Clause("bike"),)


def test_phrases_keep_offsets_with_stop_words_counted() -> None:
    query = parse_query('"man of the year" award', 8)
    phrase = query.phrases[1]
    assert [(c.term, c.offset) for c in phrase] == [("man", 0), ("year", 3)]
    assert query.clauses[-1] == Clause("award", prefix="award")
    # an unclosed quote closes at the end
    assert len(parse_query('"red bike', 8).phrases[1]) == 2


def test_only_stop_words_is_an_empty_query_and_too_many_words_are_refused() -> None:
    assert parse_query("the of and", 8).clauses == ()
    with pytest.raises(QueryTooComplex):
        parse_query(" ".join(f"w{i}" for i in range(9)), 8)
    assert len(parse_query("bike bikes biking ", 8).clauses) == 1  # one stem, one clause


def test_match_text_requires_every_clause_and_the_phrase_order() -> None:
    query = parse_query('"red bike" ', 8)
    assert match_text(query, "a red bike for sale") is not None
    assert match_text(query, "a bike, red") is None
    assert match_text(parse_query("runni", 8), "he keeps running") is not None
    assert match_text(parse_query("runni", 8), "he runs") is None


def test_snippet_is_cut_around_the_first_match_with_highlights_inside() -> None:
    text = ("lorem ipsum " * 30) + "the red bike is here " + ("dolor sit " * 30)
    matched = match_text(parse_query("bike ", 8), text)
    assert matched is not None
    cut = snippet(text, matched)
    assert cut.text.startswith("…") and cut.text.endswith("…")
    assert len(cut.text) <= 162
    assert [cut.text[s:e] for s, e in cut.highlights] == ["bike"]


def test_snippet_offsets_count_code_points_after_emoji() -> None:
    text = "🚲🚲 bike"
    matched = match_text(parse_query("bike ", 8), text)
    assert matched is not None
    cut = snippet(text, matched)
    assert cut.highlights == [(3, 7)]


# ------------------------------------------------------------------ documents
def test_a_scopes_documents_are_ordered_by_time() -> None:
    older = sort_key(1_000, "dm_1", 7)
    newer = sort_key(20_000, "dm_0", 1)
    assert older < newer
    assert newer == "0000000020000#dm_0#000000000001"


def test_one_document_holds_every_term_of_a_message_and_reads_back() -> None:
    postings = (_term_posting("bike"), _term_posting("bin"))
    document = IndexDocument("c1", 1, 1_700_000_000_000, 9, postings)
    item = document.item("u#alice")
    assert item["pk"]["S"] == "u#alice"
    assert item["sk"]["S"] == "1700000000000#c1#000000000001"
    # read back as written: "bike" only ever appeared as "bikes", so it is marked as no
    # word of the text (a prefix "bik" matches through "bikes", never through the stem)
    assert postings_of(item) == list(postings)
    assert item["d"]["S"] == "9|bike/2/0,3/!,bikes;bin/2/0,3/!,bins"
    # a term that is one of its words is not stored twice, and reads back as one
    plain = replace(_term_posting("bike"), surfaces=["bike", "bikes"])
    stored = IndexDocument("c1", 1, 1_700_000_000_000, 9, (plain,)).item("u#alice")
    assert stored["d"]["S"] == "9|bike/2/0,3/bikes"
    assert postings_of(stored) == [plain]


def test_a_stem_that_is_no_word_of_the_text_matches_no_prefix_the_text_does_not_have() -> None:
    # Snowball stems "dying" to "die": the prefix "di" must not find a "dying" message
    # (the page would be fetched for nothing, candidate after candidate)
    document = analyse("dying", [], 64)
    assert list(document.terms) == ["die"]
    posting = Posting("die", "c1", 1, 1, 1, [0], document.terms["die"].surfaces, 1)
    item = IndexDocument("c1", 1, 1, 1, (posting,)).item("u#a")
    (read,) = postings_of(item)
    assert read.surfaces == ["dying"]
    assert not any(w.startswith("di") for w in read.surfaces)


def test_a_document_never_passes_its_byte_budget() -> None:
    # 300 long made-up words, each with 4 surface forms and many positions: far over 4 KB
    postings = tuple(
        Posting(
            f"t{n:03d}{'x' * 30}",
            "c1",
            1,
            1,
            9,
            list(range(n, n + 40)),
            [f"s{k}" * 8 for k in range(4)],
            600,
        )
        for n in range(300)
    )
    document = IndexDocument("c1", 1, 1, 600, postings)
    packed = document.item("u#a")["d"]["S"]
    assert len(packed.encode()) <= MAX_DOCUMENT_BYTES
    read = postings_of(document.item("u#a"))
    # the first terms keep everything; later ones lose surface forms, then positions
    assert read[0].positions == postings[0].positions and len(read[0].surfaces) == 4
    assert any(not p.positions for p in read)
    assert 0 < len(read) < len(postings)


# ------------------------------------------------------------------ ranking
def posting(term: str, seq: int, *, at: int, tf: int = 1, length: int = 5, pos: int = 0) -> Posting:
    return Posting(term, "c1", seq, at, tf, [pos + i for i in range(tf)], [term], length)


def test_rank_is_an_and_of_clauses() -> None:
    query = parse_query("red bike ", 8)
    reads = [
        ClauseRead(query.clauses[0], [posting("red", 1, at=1), posting("red", 2, at=2)]),
        ClauseRead(query.clauses[1], [posting("bike", 2, at=2), posting("bike", 3, at=3)]),
    ]
    assert [c.seq for c in rank(query, reads)] == [2]


def test_more_occurrences_in_a_shorter_message_rank_first_and_ties_go_to_the_newest() -> None:
    query = parse_query("bike ", 8)
    postings = [
        posting("bike", 1, at=100, tf=1, length=20),
        posting("bike", 2, at=200, tf=3, length=5),
        posting("bike", 3, at=300, tf=1, length=20),  # same as 1, newer
        posting("bike", 4, at=50, tf=1, length=5),
    ]
    ranked = rank(query, [ClauseRead(query.clauses[0], postings)])
    assert [c.seq for c in ranked] == [2, 4, 3, 1]


def test_a_rare_word_weighs_more_than_a_common_one() -> None:
    query = parse_query("bike red ", 8)
    bikes = [posting("bike", s, at=s) for s in range(1, 9)]
    reds = [posting("red", 1, at=1, tf=2, length=5), posting("red", 2, at=2, tf=1, length=5)]
    bikes[1] = posting("bike", 2, at=2, tf=2, length=5)
    ranked = rank(query, [ClauseRead(query.clauses[0], bikes), ClauseRead(query.clauses[1], reds)])
    # seq 1 has the rare word twice, seq 2 the common word twice: the rare one wins.
    assert [c.seq for c in ranked] == [1, 2]


def test_phrases_are_checked_on_positions() -> None:
    query = parse_query('"red bike"', 8)
    reds = [posting("red", 1, at=1, pos=0), posting("red", 2, at=2, pos=3)]
    bikes = [posting("bike", 1, at=1, pos=1), posting("bike", 2, at=2, pos=0)]
    reads = [ClauseRead(query.clauses[0], reds), ClauseRead(query.clauses[1], bikes)]
    assert [c.seq for c in rank(query, reads)] == [1]


def test_a_seq_bound_hides_what_came_after_it() -> None:
    query = parse_query("bike ", 8)
    reads = [ClauseRead(query.clauses[0], [posting("bike", s, at=s) for s in (1, 2, 3)])]
    assert [c.seq for c in rank(query, reads, max_seq={"c1": 2})] == [2, 1]


def _term_posting(term: str, seq: int = 1) -> Posting:
    return Posting(term, "c1", seq, 1_700_000_000_000, 2, [0, 3], [term + "s"], 9)
