"""Consent and membership in the demo, as a person would try it (real Chromium): a
stranger's request arrives and is accepted, then presence shows; a blocked stranger's
send fails exactly as a refused request does; leaving a group shows "bob left" to the
others."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.conftest import AppPage, OpenApp
from tests.browser.demo import accept_request, send, send_numbered, start_conversation, users


def shown_error(app: AppPage) -> str:
    """The error toast the demo shows, then hidden again."""
    toast = app.page.get_by_role("alert").filter(has_text="forbidden")
    expect(toast).to_be_visible()
    text: str = toast.inner_text()
    app.eval("() => { document.getElementById('toast').hidden = true; }")
    return text


def test_a_strangers_request_is_accepted_then_presence_shows(open_app: OpenApp) -> None:
    alice_id, bob_id = users("alice", "bob")
    alice, bob = open_app(alice_id), open_app(bob_id)
    # When alice, a stranger, writes to bob
    start_conversation(alice, bob_id)
    send(alice, "Hi, is the bike still for sale?")
    # Then it arrives as a request, not in bob's conversations; alice sees no presence
    request = bob.page.get_by_role("list", name="Message requests").locator(".request")
    expect(request).to_contain_text(alice_id)
    expect(request).to_contain_text("Hi, is the bike still for sale?")
    expect(bob.page.locator(".conversation", has_text=alice_id)).to_have_count(0)
    alice_row = alice.page.locator(".conversation", has_text=bob_id)
    expect(alice_row.get_by_role("img", name="offline")).to_be_visible()
    # When bob reads it, then accepts
    request.get_by_role("button", name=alice_id).click()
    expect(bob.page.locator(".message.theirs .body")).to_have_text(
        ["Hi, is the bike still for sale?"]
    )
    accept_request(bob, alice_id)
    # Then each sees the other online, and alice's message shows read
    expect(alice_row.get_by_role("img", name="online")).to_be_visible()
    expect(
        bob.page.locator(".conversation", has_text=alice_id).get_by_role("img", name="online")
    ).to_be_visible()
    expect(alice.page.locator(".message.own .ticks").last).to_have_attribute("aria-label", "read")


# Counts, in the page, the frames its sockets send per action (before the app's own
# scripts run, so nothing is missed).
COUNT_FRAMES = """
    window.sentActions = {};
    const send = WebSocket.prototype.send;
    WebSocket.prototype.send = function (data) {
        const frame = JSON.parse(data);
        const key = frame.action + (frame.data && frame.data.folder ? ":" + frame.data.folder : "");
        window.sentActions[key] = (window.sentActions[key] || 0) + 1;
        return send.call(this, data);
    };
"""


def test_a_requests_backlog_reloads_the_requests_once_not_per_message(
    open_app: OpenApp,
) -> None:
    alice_id, bob_id = users("alice", "bob")
    alice = open_app(alice_id)
    conversation_id = start_conversation(alice, bob_id)
    # Given 35 messages from a stranger while bob is away
    send_numbered(alice, conversation_id, 35)
    # When bob connects: the backlog brings them (35 messages of a request)
    bob = open_app(bob_id, init_script=COUNT_FRAMES)
    bob.page.wait_for_function(
        "id => window.switchboardApp.client.log.cursor(id) === 35", arg=conversation_id
    )
    expect(bob.page.locator(".request", has_text=alice_id)).to_be_visible()
    # Then the requests section was read again at most twice after its first load (one
    # reload in flight, one queued behind it), not once per message
    sent = bob.eval("() => window.sentActions")
    assert 1 <= sent.get("conversation:list:requests", 0) <= 3, sent


def test_a_block_fails_the_strangers_send_like_a_refused_request(open_app: OpenApp) -> None:
    mallory_id, bob_id, carol_id = users("mallory", "bob", "carol")
    mallory, bob, carol = open_app(mallory_id), open_app(bob_id), open_app(carol_id)
    # Given carol refuses requests altogether
    carol.page.get_by_label("Accept message requests").uncheck()
    expect(carol.page.get_by_label("Accept message requests")).not_to_be_checked()
    carol.page.reload()
    expect(carol.page.get_by_label("Accept message requests")).not_to_be_checked()
    # And mallory's request to bob, which bob blocks from the requests section
    start_conversation(mallory, bob_id)
    send(mallory, "buy my stuff")
    request = bob.page.locator(".request", has_text=mallory_id)
    request.get_by_role("button", name="Block").click()
    expect(request).to_have_count(0)
    # When mallory writes to bob again, and tries to start a conversation with carol
    box = mallory.page.get_by_label("Message", exact=True)
    box.fill("hello?")
    box.press("Enter")
    blocked = shown_error(mallory)
    expect(box).to_have_value("hello?")  # not sent: the text stays in the box
    mallory.page.get_by_label("Start a conversation with").fill(carol_id)
    mallory.page.get_by_role("button", name="Start", exact=True).click()
    refused = shown_error(mallory)
    # Then both fail alike: mallory cannot tell the block from the refusal
    assert blocked == refused == "forbidden: they do not accept messages from you"
    # And bob's block list has mallory (the members panel offers to unblock)
    assert bob.eval("() => window.switchboardApp.client.blocks()") == [mallory_id]
    mallory.errors.clear()  # the refusals above were the point: the demo logged them


def test_leaving_shows_bob_left_to_the_others(open_app: OpenApp) -> None:
    alice_id, bob_id, carol_id = users("alice", "bob", "carol")
    alice, bob, carol = open_app(alice_id), open_app(bob_id), open_app(carol_id)
    # Given a group of alice's that bob and carol accepted
    start_conversation(alice, bob_id, carol_id)
    send(alice, "Who wants the sofa?")
    accept_request(bob, alice_id)
    accept_request(carol, alice_id)
    # When bob opens the members panel and leaves
    bob.page.locator(".conversation", has_text=alice_id).click()
    bob.page.get_by_role("button", name="Members").click()
    members = bob.page.get_by_role("list", name="Member list")
    expect(members.locator(".member")).to_have_count(3)
    expect(members).to_contain_text(f"{alice_id} · owner")
    bob.page.get_by_role("button", name="Leave conversation").click()
    expect(bob.page.locator(".conversation", has_text=alice_id)).to_have_count(0)
    # Then alice and carol see "bob left" in the conversation
    for page in (alice.page, carol.page):
        if page is carol.page:
            page.locator(".conversation", has_text=alice_id).click()
        expect(page.locator(".message.system")).to_have_text([f"{bob_id} left"])
    # And the owner's members panel lists the two left, with a Remove for carol
    alice.page.get_by_role("button", name="Members").click()
    panel = alice.page.get_by_role("list", name="Member list")
    expect(panel.locator(".member")).to_have_count(2)
    carol_row = panel.locator(".member", has_text=carol_id)
    carol_row.get_by_role("button", name="Remove").click()
    expect(alice.page.locator(".message.system")).to_have_text(
        [f"{bob_id} left", f"you removed {carol_id}"]
    )
