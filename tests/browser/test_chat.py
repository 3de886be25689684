"""Two users chat in the demo app, each in their own browser context (device): presence
dots, typing indicator, unread badge, delivered/read ticks; one goes offline (context
closed), the other writes, the first comes back and sees every message, in order."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.conftest import OpenApp
from tests.browser.demo import accept_request, send, send_numbered, start_conversation, users


def test_two_users_chat_with_presence_typing_and_read_ticks(open_app: OpenApp) -> None:
    alice_id, bob_id = users("alice", "bob")
    # Given alice and bob, each signed in on their own device
    alice = open_app(alice_id)
    bob = open_app(bob_id)
    # When alice starts a conversation with bob (a request: he accepts it) and writes
    start_conversation(alice, bob_id)
    accept_request(bob, alice_id)
    send(alice, "Hi Bob, is the bike still for sale?")
    # Then bob's list shows it with an unread badge and alice online
    row = bob.page.locator(".conversation", has_text=alice_id)
    expect(row.get_by_label("1 unread")).to_be_visible()
    expect(row.get_by_role("img", name="online")).to_be_visible()
    # And alice sees bob online, and her message delivered (bob's client acked it)
    alice_row = alice.page.locator(".conversation", has_text=bob_id)
    expect(alice_row.get_by_role("img", name="online")).to_be_visible()
    expect(alice.page.locator(".message.own .ticks").last).to_have_attribute(
        "aria-label", "delivered"
    )

    # When bob opens the conversation, it is read: alice's tick turns to "read"
    row.click()
    expect(bob.page.locator(".message.theirs .body")).to_have_text(
        ["Hi Bob, is the bike still for sale?"]
    )
    expect(row.get_by_label("1 unread")).to_have_count(0)
    expect(alice.page.locator(".message.own .ticks").last).to_have_attribute("aria-label", "read")

    # When bob types, alice sees it; when he sends, the indicator goes
    bob.page.get_by_label("Message", exact=True).press_sequentially("Yes", delay=30)
    expect(alice.page.get_by_role("status", name="Typing")).to_have_text(f"{bob_id} is typing…")
    bob.page.get_by_label("Message", exact=True).press("Enter")
    expect(alice.page.locator(".message.theirs .body")).to_have_text(["Yes"])
    expect(alice.page.get_by_role("status", name="Typing")).to_have_text("")

    # When bob goes offline, alice sees his dot turn grey
    bob.close()
    expect(alice_row.get_by_role("img", name="offline")).to_be_visible()


def test_offline_user_gets_every_message_in_order_on_return(open_app: OpenApp) -> None:
    alice_id, bob_id = users("alice", "bob")
    alice = open_app(alice_id)
    bob = open_app(bob_id)
    start_conversation(alice, bob_id)
    accept_request(bob, alice_id)
    send(alice, "first")
    bob.page.locator(".conversation", has_text=alice_id).click()
    expect(bob.page.locator(".message .body")).to_have_text(["first"])
    # Given bob's device goes away (context closed: its socket closes)
    bob.close()
    expect(
        alice.page.locator(".conversation", has_text=bob_id).get_by_role("img", name="offline")
    ).to_be_visible()
    # When alice writes while he is offline
    later = [f"while you were away {n}" for n in range(1, 6)]
    for text in later:
        send(alice, text)
    # Then bob, back on a new device, sees every message once, in order, with a badge first
    bob_again = open_app(bob_id)
    row = bob_again.page.locator(".conversation", has_text=alice_id)
    expect(row.get_by_label(f"{len(later)} unread")).to_be_visible()
    row.click()
    expect(bob_again.page.locator(".message .body")).to_have_text(["first", *later])
    seqs = bob_again.page.locator(".message").evaluate_all(
        "els => els.map(e => Number(e.dataset.seq))"
    )
    assert seqs == list(range(1, len(later) + 2))
    # And alice sees them read
    expect(alice.page.locator(".message.own .ticks").last).to_have_attribute("aria-label", "read")


def test_history_scroll_back_loads_older_messages(open_app: OpenApp) -> None:
    alice_id, bob_id = users("alice", "bob")
    alice = open_app(alice_id)
    conversation_id = start_conversation(alice, bob_id)
    # Given 40 messages (more than the 30 a conversation opens with) that bob's device got
    send_numbered(alice, conversation_id, 40)
    bob = open_app(bob_id)
    accept_request(bob, alice_id)  # (the receipts held back until then follow)
    expect(alice.page.locator(".message.own .ticks").last).to_have_attribute(
        "aria-label", "delivered"
    )
    bob.close()
    # When bob opens it later on another device (nothing left to deliver), he sees the newest 30
    bob = open_app(bob_id)
    bob.page.locator(".conversation", has_text=alice_id).click()
    bodies = bob.page.locator(".message .body")
    expect(bodies).to_have_count(30)
    expect(bodies.first).to_have_text("message 11")
    older = bob.page.get_by_role("button", name="Load earlier messages")
    expect(older).to_be_visible()
    # And scrolling back to the top brings the rest, in order; the button then disappears
    bob.page.locator("#messages-wrap").evaluate("wrap => { wrap.scrollTop = 0; }")
    expect(bodies).to_have_count(40)
    assert bodies.all_inner_texts() == [f"message {i}" for i in range(1, 41)]
    expect(older).to_be_hidden()


def test_load_earlier_messages_button_brings_the_rest(open_app: OpenApp) -> None:
    alice_id, bob_id = users("alice", "bob")
    alice = open_app(alice_id)
    conversation_id = start_conversation(alice, bob_id)
    send_numbered(alice, conversation_id, 35)
    bob = open_app(bob_id)
    # He accepts at once: before his backlog comes, while it is read, or while his device's
    # ack of it is in flight (test_consent.py puts the accept exactly there); alice's
    # receipt follows in every case
    accept_request(bob, alice_id)
    expect(alice.page.locator(".message.own .ticks").last).to_have_attribute(
        "aria-label", "delivered"
    )
    bob.close()
    bob = open_app(bob_id)  # another device: nothing left to deliver, history is paged
    bob.page.locator(".conversation", has_text=alice_id).click()
    bodies = bob.page.locator(".message .body")
    expect(bodies).to_have_count(30)
    # The button alone (activated where it is: scrolling to it would load the page too)
    older = bob.page.get_by_role("button", name="Load earlier messages")
    expect(older).to_be_visible()
    older.dispatch_event("click")
    expect(bodies).to_have_count(35)
    assert bodies.all_inner_texts() == [f"message {i}" for i in range(1, 36)]
    expect(older).to_be_hidden()


def test_dropped_connection_resumes_without_loss_or_duplicates(open_app: OpenApp) -> None:
    alice_id, bob_id = users("alice", "bob")
    alice = open_app(alice_id)
    bob = open_app(bob_id)
    start_conversation(alice, bob_id)
    accept_request(bob, alice_id)
    send(alice, "before the drop")
    bob.page.locator(".conversation", has_text=alice_id).click()
    expect(bob.page.locator(".message .body")).to_have_text(["before the drop"])
    # Given bob's connection drops and stays down (a long backoff: the network is gone)
    bob.eval(
        """() => {
            const client = window.switchboardApp.client;
            client.options.backoffInitialMs = 600000;
            client.dropConnection();
        }"""
    )
    connection = bob.page.get_by_role("status", name="Connection")
    expect(connection).to_have_text("reconnecting…")
    # When alice writes meanwhile
    later = [f"during the outage {n}" for n in range(1, 7)]
    for text in later:
        send(alice, text)
    # Then bob's browser comes back online and his client reconnects at once: the server's
    # backlog push (one message:batch frame) and the client's own sync (racing each other:
    # either may bring a message first, the other is a duplicate) ...
    bob.eval(
        """() => {
            const client = window.switchboardApp.client;
            const markRead = client.markRead.bind(client);
            window.readsSent = [];
            client.markRead = (id, seq) => (window.readsSent.push(seq), markRead(id, seq));
            window.dispatchEvent(new Event('online'));
        }"""
    )
    expect(connection).to_have_text("online")
    # ... show him each message exactly once, in order
    expect(bob.page.locator(".message .body")).to_have_text(["before the drop", *later])
    expect(alice.page.locator(".message.own .ticks").last).to_have_attribute("aria-label", "read")
    # And the open conversation was marked read up to the last of them in one or two
    # message:read requests (the catch-up, the reconnect's own), not one per message
    reads = bob.eval("() => window.readsSent")
    assert 1 <= len(reads) <= 2, reads
    assert max(reads) == 1 + len(later)
