"""The admin dashboard in a real Chromium, opened where a deployment serves it: ``/admin``
on the analytics HTTP API (the AnalyticsApiFunction's route, run by the devserver as API
Gateway would). The operator signs in with the deployment's identity provider
(tests/browser/oidc.py: authorization code + PKCE); after known activity the page shows
the totals, non-empty SVG charts, the queues and the sessions, and refreshes live; a
screenshot is kept. A non-admin or a bad token is told so and asked to sign in."""

from __future__ import annotations

import asyncio
import io
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image
from playwright.sync_api import Page, expect

from tests.browser.conftest import OpenPage
from tests.browser.oidc import OidcProvider
from tests.e2e.clients import Session
from tests.e2e.conftest import RunningDevserver

STREAM_TIMEOUT_MS = 90_000  # streams -> aggregator on a loaded 2-core machine
SERIES_COLOURS = [(0x24, 0x56, 0xD6), (0x1F, 0x9D, 0x55), (0xC7, 0x77, 0x00)]  # admin.js COLORS


async def activity(ds: RunningDevserver, tag: str) -> None:
    async with Session(ds) as session:
        alice = await session.connect(f"dash-alice-{tag}")
        bob = await session.connect(f"dash-bob-{tag}")
        conversation = await alice.create_conversation([bob.user_id])
        for i in range(3):
            await alice.send(conversation, f"dashboard {i}")
        await bob.call("message:ack", {"conversationId": conversation, "seq": 3})


def sign_in(open_page: OpenPage) -> Page:
    """Opens /admin as an operator would and signs in with the identity provider."""
    app = open_page("/admin", user="operator")
    page = app.page
    expect(page).to_have_url(re.compile(r"/admin/index\.html$"))
    expect(page.get_by_role("status", name="Refresh")).to_have_text("sign in with an admin token")
    page.get_by_role("button", name=re.compile(r"^Sign in with 127\.0\.0\.1:")).click()
    return page


def test_dashboard_shows_metrics_and_non_empty_charts(
    devserver: RunningDevserver,
    open_page: OpenPage,
    oidc_provider: OidcProvider,
    tmp_path: Path,
) -> None:
    tag = uuid.uuid4().hex[:6]
    # Given known activity: two users, three messages, all delivered
    # (in a thread of its own: Playwright's sync API holds this thread's event loop)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, activity(devserver, tag)).result(timeout=120)
    # When an operator opens the deployed route and signs in with the IdP (as an admin)
    redeemed = len(oidc_provider.redeemed)
    page = sign_in(open_page)
    # Then the IdP redeemed exactly one code, with the PKCE verifier of its challenge
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    assert len(oidc_provider.redeemed) == redeemed + 1
    assert oidc_provider.redeemed[-1]["code_verifier"] and not oidc_provider.refused
    assert "code=" not in page.url  # the single-use code is dropped from the address
    # Then, once the aggregator has caught up, the charts have data points
    # (locator waits: the page's CSP allows no eval, so no wait_for_function strings)
    positive = re.compile(r"^[1-9][0-9]*$")
    for chart, attribute in (
        ("#chart-messages", "data-nonzero"),
        ("#chart-connections", "data-nonzero"),
        ("#chart-latency", "data-points"),
    ):
        expect(page.locator(chart)).to_have_attribute(
            attribute, positive, timeout=STREAM_TIMEOUT_MS
        )
    expect(page.get_by_role("status", name="Refresh")).to_contain_text("updated")
    sent = int(page.locator('dd[data-metric="messages.sent"]').inner_text().replace(",", ""))
    delivered = int(
        page.locator('dd[data-metric="messages.delivered"]').inner_text().replace(",", "")
    )
    assert sent >= 3 and delivered >= 3
    assert page.locator("#chart-messages polyline, #chart-messages circle").count() >= 1
    label = page.get_by_role("img", name="Messages per minute: sent").get_attribute("aria-label")
    assert label and "no data" not in label
    # And distinct users beside connections (alice and bob were online together)
    peak_users = page.locator('dd[data-metric="connections.peakUsers"]')
    expect(peak_users).to_have_text(re.compile(r"^[0-9,]+$"))
    assert int(peak_users.inner_text().replace(",", "")) >= 2
    # And the queue table lists every queue with its DLQ, and the main queues' processing
    expect(page.locator("#queues tbody tr", has_text="delivery")).to_be_visible()
    expect(page.locator("#queues tbody tr", has_text="analytics")).to_be_visible()
    notification = page.locator("#queues tbody tr", has_text="notification").locator("td")
    expect(notification.nth(5)).to_have_text(re.compile("^[0-9.]+ %$|^\u2013$"))
    # And each ended session shows its own messages and typing events (alice sent 3)
    alice_row = page.locator("#recent-sessions tbody tr", has_text=f"dash-alice-{tag}")
    expect(alice_row.locator("td").nth(3)).to_have_text("3", timeout=STREAM_TIMEOUT_MS)
    expect(alice_row.locator("td").nth(4)).to_have_text("0")
    # And it refreshes by itself
    refreshed = int(page.locator("body").get_attribute("data-refreshed") or 0)
    expect(page.locator("body")).not_to_have_attribute("data-refreshed", str(refreshed))
    # And the screenshot shows drawn charts (the series colour is in the chart's pixels)
    shot = page.locator("#chart-messages").screenshot()
    page.screenshot(path=str(tmp_path / "admin-dashboard.png"), full_page=True)
    image = Image.open(io.BytesIO(shot)).convert("RGB")
    pixels = [image.getpixel((x, y)) for x in range(image.width) for y in range(image.height)]
    drawn = sum(
        1
        for pixel in pixels
        if any(all(abs(a - b) < 40 for a, b in zip(pixel, c)) for c in SERIES_COLOURS)  # type: ignore[arg-type]
    )
    # the legend alone is ~3 x 20 px of colour; lines along the chart add hundreds
    assert drawn > 400, f"only {drawn} pixels of series colours in the messages chart"


def test_a_signed_in_non_admin_is_refused(open_page: OpenPage, oidc_provider: OidcProvider) -> None:
    # Given an IdP user without the admin role
    oidc_provider.admin = False
    try:
        page = sign_in(open_page)
    finally:
        oidc_provider.admin = True
    # Then the API's 403 is shown and the operator is asked to sign in again
    expect(page.get_by_role("alert")).to_have_text("this token has no admin role")
    expect(page.get_by_role("button", name=re.compile("^Sign in with"))).to_be_visible()
    expect(page.locator("#queues tbody tr")).to_have_count(0)


def test_dashboard_without_an_admin_token_asks_for_one(open_page: OpenPage) -> None:
    app = open_page("/admin/index.html?token=not-a-jwt", user="admin")
    page = app.page
    expect(page.get_by_role("alert")).to_have_text("the token was refused")
    expect(page.get_by_label("Admin token")).to_be_visible()
    expect(page.get_by_role("status", name="Refresh")).to_have_text("sign in with an admin token")
