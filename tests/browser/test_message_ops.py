"""What people do to messages in the demo app, in real Chromium, two devices: edit, react,
delete (a tombstone for both), reply in a thread, quote, mute."""

from __future__ import annotations

from playwright.sync_api import Locator, expect

from tests.browser.conftest import AppPage, OpenApp
from tests.browser.demo import accept_request, send, start_conversation, users


def menu(app: AppPage, text: str) -> Locator:
    """Opens the message menu of the message saying ``text``; returns the menu."""
    message = app.page.locator("#messages .message").filter(
        has=app.page.locator(".body", has_text=text)
    )
    message.hover()
    message.get_by_role("button", name="Message actions").click()
    found = app.page.get_by_role("menu", name="Message actions")
    expect(found).to_be_visible()
    return found


def test_edit_react_and_delete_reach_the_other_device(open_app: OpenApp) -> None:
    alice_id, bob_id = users("alice", "bob")
    alice, bob = open_app(alice_id), open_app(bob_id)
    start_conversation(alice, bob_id)
    accept_request(bob, alice_id)  # a stranger's conversation is a request until accepted
    send(alice, "See you at 5")
    bob.page.locator(".conversation", has_text=alice_id).click()
    theirs = bob.page.locator("#messages .message.theirs")
    expect(theirs.locator(".body")).to_have_text(["See you at 5"])

    # When alice edits her message, bob sees the new text marked "(edited)"
    menu(alice, "See you at 5").get_by_role("menuitem", name="Edit").click()
    expect(alice.page.get_by_role("status").filter(has_text="Editing your message")).to_be_visible()
    box = alice.page.get_by_label("Message", exact=True)
    expect(box).to_have_value("See you at 5")
    box.fill("See you at 6")
    box.press("Enter")
    expect(theirs.locator(".body")).to_have_text(["See you at 6 (edited)"])
    expect(alice.page.locator("#messages .message.own .edited")).to_have_count(1)

    # When bob reacts, both see the reaction, and bob's chip is pressed
    menu(bob, "See you at 6").get_by_role("menuitem", name="React 👍").click()
    bob_chip = theirs.locator(".reaction", has_text="👍 1")
    expect(bob_chip).to_have_attribute("aria-pressed", "true")
    alice_chip = alice.page.locator("#messages .message.own .reaction", has_text="👍 1")
    expect(alice_chip).to_have_attribute("aria-pressed", "false")
    # ... alice adds hers to the same emoji: 2; bob takes his back: 1
    alice_chip.click()
    expect(theirs.locator(".reaction", has_text="👍 2")).to_be_visible()
    theirs.locator(".reaction", has_text="👍 2").click()
    expect(alice.page.locator("#messages .message.own .reaction")).to_have_text(["👍 1"])

    # When alice deletes it, both see a tombstone; the text and the reaction are gone
    menu(alice, "See you at 6").get_by_role("menuitem", name="Delete for everyone").click()
    expect(theirs.locator(".body")).to_have_text(["message deleted"])
    expect(theirs.locator(".tombstone")).to_have_count(1)
    expect(theirs.locator(".reaction")).to_have_count(0)
    expect(alice.page.locator("#messages .message.own .body")).to_have_text(["message deleted"])
    row = bob.page.locator(".conversation", has_text=alice_id)
    expect(row.locator(".conversation-preview")).to_have_text(f"{alice_id}: message deleted")
    # A tombstone has no menu: nothing more can be done to it
    expect(theirs.get_by_role("button", name="Message actions")).to_have_count(0)


def test_reply_in_thread_and_quote(open_app: OpenApp) -> None:
    alice_id, bob_id = users("alice", "bob")
    alice, bob = open_app(alice_id), open_app(bob_id)
    start_conversation(alice, bob_id)
    accept_request(bob, alice_id)
    send(alice, "Who is in for Sunday?")
    send(alice, "Bring snacks")
    bob.page.locator(".conversation", has_text=alice_id).click()
    expect(bob.page.locator("#messages .message .body")).to_have_count(2)

    # When bob replies in the thread of alice's first message
    menu(bob, "Who is in for Sunday?").get_by_role("menuitem", name="Reply in thread").click()
    panel = bob.page.get_by_role("complementary", name="Thread")
    expect(panel.locator("#thread-parent .body")).to_have_text("Who is in for Sunday?")
    panel.get_by_label("Reply in thread").fill("Me!")
    panel.get_by_role("button", name="Reply", exact=True).click()
    expect(panel.locator("#thread-messages .body")).to_have_text(["Me!"])
    # Then alice's message shows "1 reply" (the reply is not in the timeline) ...
    link = alice.page.get_by_role("button", name="1 reply")
    expect(link).to_be_visible()
    expect(alice.page.locator("#messages .message .body")).to_have_text(
        ["Who is in for Sunday?", "Bring snacks"]
    )
    # ... and opens the thread with bob's reply; her reply there reaches bob live
    link.click()
    alice_panel = alice.page.get_by_role("complementary", name="Thread")
    expect(alice_panel.locator("#thread-messages .body")).to_have_text(["Me!"])
    alice_panel.get_by_label("Reply in thread").fill("Great")
    alice_panel.get_by_role("button", name="Reply", exact=True).click()
    expect(panel.locator("#thread-messages .body")).to_have_text(["Me!", "Great"])
    expect(bob.page.get_by_role("button", name="2 replies")).to_be_visible()

    # When bob quotes "Bring snacks", alice sees the quote above his answer
    menu(bob, "Bring snacks").get_by_role("menuitem", name="Quote").click()
    expect(bob.page.get_by_role("status").filter(has_text="Quoting")).to_contain_text(
        "Bring snacks"
    )
    send(bob, "Chips it is")
    answer = alice.page.locator("#messages .message.theirs", has_text="Chips it is")
    expect(answer.locator(".quote")).to_have_text("You: Bring snacks")
    # And once alice deletes the quoted message, the quote says so (no text left): at
    # once on both devices, and after a reload
    menu(alice, "Bring snacks").get_by_role("menuitem", name="Delete for everyone").click()
    expect(answer.locator(".quote")).to_have_text("message deleted")
    live = bob.page.locator("#messages .message.own", has_text="Chips it is")
    expect(live.locator(".quote")).to_have_text("message deleted")
    bob.page.reload()
    bob.page.get_by_role("status", name="Connection").filter(has_text="online").wait_for()
    bob.page.locator(".conversation", has_text=alice_id).click()
    mine = bob.page.locator("#messages .message.own", has_text="Chips it is")
    expect(mine.locator(".quote")).to_have_text("message deleted")


def test_mute_and_unread_badges(open_app: OpenApp) -> None:
    alice_id, bob_id = users("alice", "bob")
    alice, bob = open_app(alice_id), open_app(bob_id)
    start_conversation(alice, bob_id)
    accept_request(bob, alice_id)
    send(alice, "one")
    send(alice, "two")
    row = bob.page.locator(".conversation", has_text=alice_id)
    expect(row.get_by_label("2 unread")).to_be_visible()
    row.click()
    expect(row.get_by_label("2 unread")).to_have_count(0)
    # (named for what it mutes: a group call's microphone button is "Mute" too)
    mute = bob.page.get_by_role("button", name="Mute notifications", exact=True)
    mute.click()
    unmute = bob.page.get_by_role("button", name="Unmute notifications", exact=True)
    expect(unmute).to_have_attribute("aria-pressed", "true")
    expect(row.get_by_role("img", name="muted")).to_be_visible()
    # The mute is the server's: a reload still shows it
    bob.page.reload()
    bob.page.get_by_role("status", name="Connection").filter(has_text="online").wait_for()
    expect(
        bob.page.locator(".conversation", has_text=alice_id).get_by_role("img", name="muted")
    ).to_be_visible()
    bob.page.locator(".conversation", has_text=alice_id).click()
    bob.page.get_by_role("button", name="Unmute notifications", exact=True).click()
    expect(bob.page.get_by_role("button", name="Mute notifications", exact=True)).to_be_visible()
    expect(
        bob.page.locator(".conversation", has_text=alice_id).get_by_role("img", name="muted")
    ).to_have_count(0)


def test_a_device_that_was_offline_shows_the_edits_deletes_and_reactions_it_missed(
    open_app: OpenApp,
) -> None:
    alice_id, bob_id = users("alice", "bob")
    alice, bob = open_app(alice_id), open_app(bob_id)
    start_conversation(alice, bob_id)
    accept_request(bob, alice_id)
    send(alice, "Meet at 5")
    send(alice, "Bring the map")
    bob.page.locator(".conversation", has_text=alice_id).click()
    theirs = bob.page.locator("#messages .message.theirs")
    expect(theirs.locator(".body")).to_have_text(["Meet at 5", "Bring the map"])
    # Given bob's device loses its connection and waits (a long backoff) before retrying,
    # recording what it asks the server from now on
    bob.eval(
        """() => {
          const client = window.switchboardApp.client;
          client.options.backoffInitialMs = 600000;
          client.options.backoffMaxMs = 600000;
          window.asked = [];
          const request = client.request.bind(client);
          client.request = (action, data, options) => {
            window.asked.push(action);
            return request(action, data, options);
          };
          client.dropConnection();
        }"""
    )
    expect(bob.page.get_by_role("status", name="Connection")).to_have_text("reconnecting…")
    # When alice edits one message, deletes the other and reacts, while he is away
    menu(alice, "Meet at 5").get_by_role("menuitem", name="Edit").click()
    box = alice.page.get_by_label("Message", exact=True)
    box.fill("Meet at 6")
    box.press("Enter")
    menu(alice, "Bring the map").get_by_role("menuitem", name="Delete for everyone").click()
    menu(alice, "Meet at 6").get_by_role("menuitem", name="React 🎉").click()
    mine = alice.page.locator("#messages .message.own")
    expect(mine.locator(".body")).to_have_text(["Meet at 6 (edited)", "message deleted"])
    expect(mine.locator(".reaction")).to_have_text(["🎉 1"])
    # (bob's closed socket got none of it)
    expect(theirs.locator(".body")).to_have_text(["Meet at 5", "Bring the map"])

    # Then, back online, his device reads what changed - not the history - and shows it
    bob.eval("() => window.switchboardApp.client.reconnect()")
    expect(bob.page.get_by_role("status", name="Connection")).to_have_text("online")
    expect(theirs.locator(".body")).to_have_text(["Meet at 6 (edited)", "message deleted"])
    expect(theirs.locator(".reaction")).to_have_text(["🎉 1"])
    asked = bob.eval("() => window.asked")
    assert "message:changes" in asked and "message:history" not in asked, asked
