"""The admin dashboard (web/admin.html) in a real Chromium: after known activity through
the devserver it shows the totals, non-empty SVG charts, the queues and the sessions, and
refreshes live; a screenshot is kept. Without an admin token it asks for one."""

from __future__ import annotations

import asyncio
import io
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image
from playwright.sync_api import expect

from tests.browser.conftest import OpenPage
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


def test_dashboard_shows_metrics_and_non_empty_charts(
    devserver: RunningDevserver, open_page: OpenPage, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    # Given known activity: two users, three messages, all delivered
    # (in a thread of its own: Playwright's sync API holds this thread's event loop)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, activity(devserver, tag)).result(timeout=120)
    # When an operator opens the dashboard (a dev admin token from the devserver)
    app = open_page("/admin.html?refresh=1", user="admin")
    page = app.page
    # Then, once the aggregator has caught up, the charts have data points
    page.wait_for_function(
        "Number(document.getElementById('chart-messages').dataset.nonzero) > 0"
        " && Number(document.getElementById('chart-connections').dataset.nonzero) > 0"
        " && Number(document.getElementById('chart-latency').dataset.points) > 0",
        timeout=STREAM_TIMEOUT_MS,
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
    # And the queue table lists every queue with its DLQ
    expect(page.locator("#queues tbody tr", has_text="delivery")).to_be_visible()
    expect(page.locator("#queues tbody tr", has_text="analytics")).to_be_visible()
    # And it refreshes by itself
    refreshed = int(page.evaluate("document.body.dataset.refreshed"))
    page.wait_for_function(f"Number(document.body.dataset.refreshed) > {refreshed}")
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


def test_dashboard_without_an_admin_token_asks_for_one(open_page: OpenPage) -> None:
    app = open_page("/admin.html?token=not-a-jwt", user="admin")
    page = app.page
    expect(page.get_by_role("alert")).to_have_text("the token was refused")
    expect(page.get_by_label("Admin token")).to_be_visible()
    expect(page.get_by_role("status", name="Refresh")).to_have_text("sign in with an admin token")
