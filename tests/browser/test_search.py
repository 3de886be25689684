"""Search in the demo app (real Chromium): a user types in the search box, goes on into
older messages, sees the hit with the matched words highlighted, and opens the
conversation scrolled to the message, loaded around it (message:history aroundSeq) on a
device that never had it."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.conftest import OpenApp
from tests.browser.demo import accept_request, start_conversation, users

BURIED_SEQ = 5
TOTAL = 45


def test_search_box_highlights_hits_and_opens_the_conversation_at_the_message(
    open_app: OpenApp,
) -> None:
    alice_id, bob_id = users("alice", "bob")
    alice = open_app(alice_id)
    bob_phone = open_app(bob_id)
    # Given a long conversation, with one message about a Brompton far back in it
    conversation = start_conversation(alice, bob_id)
    accept_request(bob_phone, alice_id)
    alice.eval(
        """async ([id, total, buried]) => {
            const client = window.switchboardApp.client;
            for (let i = 1; i <= total; i++) {
              const body = i === buried ? "A vintage Brompton folding bike, barely ridden"
                                        : `message number ${i}`;
              await client.sendMessage(id, body);
            }
        }""",
        [conversation, TOTAL, BURIED_SEQ],
    )
    # ... that bob's phone received and acknowledged (alice sees it delivered)
    expect(alice.page.locator(".message.own .ticks").last).to_have_attribute(
        "aria-label", "delivered"
    )
    bob_phone.close()
    # When bob, on another device, types the start of the word
    bob = open_app(bob_id)
    bob.page.get_by_label("Search messages").press_sequentially("folding bromp", delay=20)
    # Then the first request (4 windows of 10 here: the 40 newest messages) finds nothing
    # and offers to go on, and going on finds the message
    older = bob.page.get_by_role("button", name="Search older messages")
    expect(older).to_be_visible()
    hit = bob.page.locator(".search-hit")
    expect(hit).to_have_count(0)
    older.click()
    # Then the hit shows with both words highlighted, and nothing older is left to read
    expect(hit).to_have_count(1)
    expect(older).to_be_hidden()
    expect(hit.locator("mark")).to_have_text(["Brompton", "folding"])
    expect(hit).to_contain_text(alice_id)
    # When he opens it, the conversation scrolls to the message, marked
    hit.click()
    found = bob.page.locator(".message.found")
    expect(found).to_have_attribute("data-seq", str(BURIED_SEQ))
    expect(found.locator(".body")).to_have_text("A vintage Brompton folding bike, barely ridden")
    expect(found).to_be_in_viewport()
    # The page came from history around the hit, not from this device's live stream
    seqs = [
        int(s)
        for s in bob.page.locator(".message").evaluate_all("els => els.map(e => e.dataset.seq)")
    ]
    assert BURIED_SEQ in seqs and TOTAL not in seqs, seqs
    # And clearing the box brings the conversation list back
    bob.page.get_by_label("Search messages").fill("")
    expect(bob.page.locator("#conversation-list")).to_be_visible()
