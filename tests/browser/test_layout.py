"""The demo app's shell: keyboard sign-in, accessible names, phone width, the admin link."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.conftest import OpenApp, OpenPage
from tests.browser.demo import accept_request, send, start_conversation, users

UNNAMED_CONTROLS = """() => [...document.querySelectorAll("button, input, textarea, video, a")]
    .filter((el) => el.offsetParent !== null || el.type === "file")
    .filter((el) => !(el.getAttribute("aria-label") || el.labels?.length
        || el.textContent.trim() || el.getAttribute("title")))
    .map((el) => el.outerHTML.slice(0, 120))"""

PHONE = {"width": 390, "height": 780}
HELLO = "hello from a laptop: is the bike still for sale? I could pick it up tomorrow"


def test_sign_in_with_the_keyboard(open_page: OpenPage) -> None:
    # Given the sign-in screen, When a keyboard user presses Enter on the focused first user
    app = open_page("/")
    page = app.page
    expect(page.get_by_role("heading", name="Pick a demo user")).to_be_visible()
    expect(page.get_by_role("button", name="alice")).to_be_focused()
    page.keyboard.press("Enter")
    # Then they are signed in and connected
    expect(page.get_by_role("status", name="Connection")).to_have_text("online")
    expect(page.get_by_text("Signed in as alice")).to_be_visible()
    assert page.evaluate(UNNAMED_CONTROLS) == []


def test_admin_sees_the_dashboard_link_others_do_not(open_app: OpenApp) -> None:
    admin = open_app("admin")
    link = admin.page.get_by_role("link", name="Admin dashboard")
    expect(link).to_have_attribute("href", "/admin")
    alice = open_app(users("alice")[0])
    expect(alice.page.get_by_role("link", name="Admin dashboard")).to_be_hidden()


def test_phone_width_list_then_chat_then_back(open_app: OpenApp) -> None:
    alice_id, bob_id = users("alice", "bob")
    alice = open_app(alice_id)
    start_conversation(alice, bob_id)
    send(alice, HELLO)
    # Given bob on a phone-sized screen
    bob = open_app(bob_id, viewport=PHONE)
    page = bob.page
    # Then alice's request, a one-line preview of a long message, fits the screen
    expect(page.locator(".request", has_text=alice_id)).to_contain_text("hello from a laptop")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    accept_request(bob, alice_id)
    # And the conversation list fills the screen, without sideways scrolling
    chat = page.get_by_role("region", name="Select a conversation")
    expect(chat).to_be_hidden()
    row = page.locator(".conversation", has_text=alice_id)
    expect(row).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    # When he opens the conversation, the chat replaces the list
    row.click()
    expect(page.locator(".message .body")).to_have_text([HELLO])
    expect(row).to_be_hidden()
    # (the chat head's actions - mute, members, call, group call - wrap under the title)
    expect(page.get_by_role("button", name="Group call")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert page.evaluate(UNNAMED_CONTROLS) == []
    page.get_by_role("button", name="Members").click()
    expect(page.get_by_role("list", name="Member list").locator(".member")).to_have_count(2)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.get_by_role("button", name="Members").click()
    # And "Back to conversations" brings the list back
    page.get_by_role("button", name="Back to conversations").click()
    expect(row).to_be_visible()
