"""Screenshots of the demo app's main screens for the README (docs/screenshots/*.png):
`make screenshots` (= `python -m tests.browser.screenshots`). It starts its own devserver
on free ports, drives the app in Chromium as the browser tests do, and stops everything."""

from __future__ import annotations

import argparse
import io
import tempfile
from pathlib import Path

from PIL import Image
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from tests.browser.conftest import CHROMIUM, CHROMIUM_FLAGS
from tests.e2e.conftest import ROOT, _start

OUT = ROOT / "docs" / "screenshots"
DESKTOP = {"width": 1180, "height": 720}
PHONE = {"width": 390, "height": 780}


def _open(browser: Browser, http: str, user: str, viewport: dict[str, int]) -> Page:
    context = browser.new_context(viewport=viewport, device_scale_factor=1)
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.goto(f"{http}/?user={user}")
    expect(page.get_by_role("status", name="Connection")).to_have_text("online")
    return page


def _send(page: Page, text: str) -> None:
    box = page.get_by_label("Message", exact=True)
    box.fill(text)
    box.press("Enter")
    expect(page.locator(".message.own .body", has_text=text)).to_be_visible()


def _message_menu(page: Page, text: str) -> Locator:
    message = page.locator("#messages .message").filter(has=page.locator(".body", has_text=text))
    message.hover()
    message.get_by_role("button", name="Message actions").click()
    return page.get_by_role("menu", name="Message actions")


def _photo() -> bytes:
    # A small "photo": a gradient with a few shapes (no external assets).
    image = Image.radial_gradient("L").resize((480, 360)).convert("RGB")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def take(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    shots: list[Path] = []

    def shot(page: Page, name: str) -> None:
        path = out / f"{name}.png"
        page.screenshot(path=str(path))
        shots.append(path)

    with tempfile.TemporaryDirectory() as tmp:
        server = _start(Path(tmp), ["--param", "StunUrls="])
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
                )
                sign_in = browser.new_context(viewport=DESKTOP).new_page()
                sign_in.goto(server.http + "/")
                expect(sign_in.get_by_role("button", name="alice")).to_be_visible()
                shot(sign_in, "sign-in")

                alice = _open(browser, server.http, "alice", DESKTOP)
                bob = _open(browser, server.http, "bob", DESKTOP)
                carol = _open(browser, server.http, "carol", DESKTOP)
                carol.get_by_label("Start a conversation with").fill("alice")
                carol.get_by_role("button", name="Start", exact=True).click()
                _send(carol, "Hi! Do you ship the lamp to Lyon?")
                alice.get_by_label("Start a conversation with").fill("bob")
                alice.get_by_role("button", name="Start", exact=True).click()
                _send(alice, "Hi Bob, is the bike still for sale?")
                # Both arrive as message requests: the requests section, then accepted
                request = bob.locator(".request", has_text="alice")
                expect(request).to_contain_text("is the bike still for sale?")
                shot(bob, "requests")
                request.get_by_role("button", name="Accept").click()
                alice.locator(".request", has_text="carol").get_by_role(
                    "button", name="Accept"
                ).click()
                bob.locator(".conversation", has_text="alice").click()
                _send(bob, "Yes! It was serviced last month.")
                _send(alice, "Great, can I see it on Saturday?")
                expect(alice.locator(".message.own .ticks").last).to_have_attribute(
                    "aria-label", "read"
                )
                bob.get_by_label("Message", exact=True).press_sequentially("Sure, 10", delay=40)
                expect(alice.get_by_role("status", name="Typing")).not_to_be_empty()
                shot(alice, "chat")

                alice.get_by_label("Attach a file").set_input_files(
                    {"name": "bike.png", "mimeType": "image/png", "buffer": _photo()}
                )
                expect(alice.get_by_role("status", name="Upload status")).to_have_text(
                    "100 % · ready to send", timeout=60_000
                )
                expect(alice.get_by_role("img", name="Thumbnail of bike.png")).to_be_visible()
                shot(alice, "upload")
                _send(alice, "Here it is")  # (the photo goes with it)

                alice.get_by_role("button", name="Video call bob").click()
                bob.get_by_role("alertdialog", name="Incoming call").wait_for()
                shot(bob, "incoming-call")
                bob.get_by_role("button", name="Accept").click()
                expect(alice.get_by_role("status", name="Call status")).to_have_attribute(
                    "data-ice", "connected"
                )
                alice.wait_for_function("document.getElementById('remote-video').videoWidth > 0")
                alice.wait_for_timeout(1500)  # a few frames of the fake camera
                shot(alice, "call")
                alice.get_by_role("button", name="Hang up").click()

                # Message operations: a reaction, an edit, a tombstone, a quote, a thread
                alice.locator(".conversation", has_text="carol").click()
                _send(alice, "Yes, shipping to Lyon is 12 €.")
                _send(alice, "It leaves on Monday")
                carol.locator(".conversation", has_text="alice").click()
                _message_menu(carol, "shipping to Lyon").get_by_role(
                    "menuitem", name="React 👍"
                ).click()
                _message_menu(carol, "It leaves on").get_by_role(
                    "menuitem", name="Reply in thread"
                ).click()
                carol.get_by_label("Reply in thread").fill("Perfect, I will order today")
                carol.get_by_role("button", name="Reply", exact=True).click()
                _send(carol, "Wrong chat, sorry")
                _message_menu(carol, "Wrong chat").get_by_role(
                    "menuitem", name="Delete for everyone"
                ).click()
                _message_menu(carol, "shipping to Lyon").get_by_role(
                    "menuitem", name="Quote"
                ).click()
                _send(carol, "Does that include insurance?")
                _message_menu(alice, "It leaves on Monday").get_by_role(
                    "menuitem", name="Edit"
                ).click()
                box = alice.get_by_label("Message", exact=True)
                box.fill("It leaves on Tuesday")
                box.press("Enter")
                alice.get_by_role("button", name="1 reply").click()
                expect(alice.locator("#thread-messages .body")).to_have_count(1)
                expect(alice.locator(".tombstone")).to_have_count(1)
                shot(alice, "message-ops")
                alice.get_by_role("button", name="Close the thread").click()

                phone = _open(browser, server.http, "alice", PHONE)
                expect(phone.locator(".conversation")).to_have_count(2)
                shot(phone, "phone-conversations")
                phone.locator(".conversation", has_text="bob").click()
                expect(phone.locator(".message").first).to_be_visible()
                shot(phone, "phone-chat")
                browser.close()
        finally:
            server.stop()
    return shots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    for path in take(args.out):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


if __name__ == "__main__":
    main()
