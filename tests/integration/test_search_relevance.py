"""The relevance test set: a small corpus and queries with the hits they must return, in
order where order is what is being tested. The corpus is stored through the messages
repository (with set times, so recency is deterministic), indexed from the Messages
stream by the real indexer handler and searched through the real search handler.

Each case names what it checks: stemming, prefixes, phrases, diacritics, stop words,
attachments, ranking (frequency, length, rarity) and recency ties.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from switchboard.dal.conversations import Conversation, ConversationRepository, StoredMessage

from tests.integration.conftest import Stack
from tests.integration.test_messaging import Client
from tests.integration.test_search import Index, Searcher

# (key, text, file names); the key's order is the time order (one second apart).
CORPUS: list[tuple[str, str, list[str]]] = [
    ("mtb", "Is the mountain bike still available?", []),
    ("ride", "I ride my bikes every weekend", []),
    ("shoes", "Running shoes, size 42, barely used", []),
    ("shop", "She runs a bike shop downtown", []),
    ("cafe", "The Café near the station sells crème brûlée", []),
    ("lait", "Cafe au lait or espresso?", []),
    ("redbike", "the red bike is sold", []),
    ("bikered", "a bike that is red and fast", []),
    ("invoice-file", "here it is", ["Invoice-2026-03.pdf"]),
    ("invoice-text", "please send the invoice again", []),
    ("lamp1", "lamp for sale", []),
    ("lamp2", "lamp for sale", []),
    ("award", "man of the year award", []),
    ("yearman", "the year of the man", []),
    ("photo1", "a photograph of the sunset", []),
    ("photo2", "more photos tomorrow", []),
    ("bikebike", "bike bike bike", []),
    ("resume", "my résumé is attached", []),
]

# (what it checks, query, expected keys; a list is an exact order, a set any order)
CASES: list[tuple[str, str, list[str] | set[str]]] = [
    (
        "stemming: plural finds singular",
        "bikes ",
        {"mtb", "ride", "shop", "redbike", "bikered", "bikebike"},
    ),
    ("stemming: running = runs", "running ", {"shoes", "shop"}),
    ("diacritics: cafe = Café", "cafe ", ["lait", "cafe"]),
    ("diacritics: query with accents", "crème brulee", ["cafe"]),
    ("diacritics: resume = résumé", "resume ", ["resume"]),
    ("case folding", "ESPRESSO ", ["lait"]),
    ("prefix of the last word", "photo", {"photo1", "photo2"}),
    ("prefix through a stemmed word", "runni", ["shoes"]),
    ("prefix only on the last word", "photograph sunse", ["photo1"]),
    ("a finished word is exact: photo is not photograph", "photo sunse", []),
    ("a finished word is not a prefix", "photo ", ["photo2"]),
    ("phrase: adjacent, in order", '"red bike"', ["redbike"]),
    ("both words anywhere", "red bike ", {"redbike", "bikered"}),
    ("phrase with stop words keeps the distance", '"man of the year"', ["award"]),
    ("stop words alone find nothing", "the of ", []),
    ("attachment file names", "invoice ", ["invoice-text", "invoice-file"]),
    ("attachment and text words together", "invoice pdf ", ["invoice-file"]),
    # bike x3 first; then 3-term messages (equal: newest first), then 4-term ones
    (
        "frequency, length, then recency",
        "bike ",
        ["bikebike", "bikered", "redbike", "shop", "ride", "mtb"],
    ),
    ("recency breaks ties between equal texts", "lamp sale ", ["lamp2", "lamp1"]),
    ("nothing matches", "submarine ", []),
]


@pytest.fixture(scope="module")
def corpus(stack: Stack) -> tuple[Searcher, dict[tuple[str, int], str]]:
    repo = ConversationRepository(stack.table("ConversationsTable"), stack.table("MessagesTable"))
    message, connect = stack.handler("MessageFunction"), stack.handler("ConnectionFunction")
    search_app, indexer = stack.handler("SearchFunction"), stack.handler("SearchIndexerFunction")
    index = Index(stack, indexer)
    tag = uuid.uuid4().hex[:6]
    reader = Client(stack, message, connect, f"reader-{tag}")
    conversation = Conversation(
        conversation_id=f"cv_rel{tag}",
        members=frozenset({reader.user_id, f"seller-{tag}"}),
        created_by=reader.user_id,
        created_at=1_700_000_000_000,
    )
    assert repo.create(conversation)
    keys: dict[tuple[str, int], str] = {}
    for seq, (key, text, files) in enumerate(CORPUS, start=1):
        current = repo.get(conversation.conversation_id)
        assert current is not None
        repo.append(
            current,
            StoredMessage(
                conversation_id=conversation.conversation_id,
                seq=seq,
                message_id=uuid.uuid4().hex,
                sender_id=f"seller-{tag}",
                body=text,
                created_at=conversation.created_at + seq * 1000,
                client_message_id=key,
                attachments=[{"uploadId": f"up-{seq}", "fileName": f} for f in files],
            ),
        )
        keys[(conversation.conversation_id, seq)] = key
    index.catch_up()
    return Searcher(search_app, reader), keys


@pytest.mark.parametrize(("checks", "query", "expected"), CASES, ids=[c[0] for c in CASES])
def test_relevance(corpus: Any, checks: str, query: str, expected: list[str] | set[str]) -> None:
    search, keys = corpus
    found = [keys[(h["conversationId"], h["seq"])] for h in search.hits(query, limit=50)]
    if isinstance(expected, set):
        assert set(found) == expected
        assert len(found) == len(expected)  # no duplicates
    else:
        assert found == expected
