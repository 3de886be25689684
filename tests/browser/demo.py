"""Steps on the demo app (web/index.html) shared by the browser tests."""

from __future__ import annotations

import uuid

from playwright.sync_api import expect

from tests.browser.conftest import AppPage


def users(*names: str) -> list[str]:
    """Fresh user ids per test: the session's devserver is shared by every browser test."""
    suffix = uuid.uuid4().hex[:6]
    return [f"{name}-{suffix}" for name in names]


def start_conversation(app: AppPage, *members: str) -> str:
    """Starts a conversation through the sidebar form; returns its id."""
    page = app.page
    page.get_by_label("Start a conversation with").fill(", ".join(members))
    page.get_by_role("button", name="Start", exact=True).click()
    expect(page.locator("#chat-title")).to_have_text(", ".join(members))
    conversation_id: str = app.eval("() => window.switchboardApp.active")
    return conversation_id


def send(app: AppPage, text: str) -> None:
    box = app.page.get_by_label("Message", exact=True)
    box.fill(text)
    box.press("Enter")
    expect(app.page.locator(".message.own .body", has_text=text)).to_be_visible()


def send_numbered(app: AppPage, conversation_id: str, count: int) -> None:
    """Sends "message 1" .. "message <count>" through the client, one after the other
    (each waits for its reply: seqs in order), without the compose box."""
    app.eval(
        """async ([id, count]) => {
            const c = window.switchboardApp.client;
            for (let i = 1; i <= count; i++) await c.sendMessage(id, `message ${i}`);
        }""",
        [conversation_id, count],
    )


def accept_request(app: AppPage, from_user: str) -> None:
    """Accepts, in the requests section, the conversation ``from_user`` started: until
    then it is a message request (no presence, typing or receipts either way)."""
    request = app.page.locator(".request", has_text=from_user)
    request.get_by_role("button", name="Accept").click()
    expect(request).to_have_count(0)
    expect(app.page.locator(".conversation", has_text=from_user)).to_be_visible()
