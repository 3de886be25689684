"""Uploads from the demo app: a real file through presigned S3 URLs (the devserver's moto,
CORS included), a progress bar that reaches 100 %, the processor's thumbnail shown; a
large file as a multipart upload with a confirmed progress push per part."""

from __future__ import annotations

import io

from PIL import Image
from playwright.sync_api import expect

from tests.browser.conftest import AppPage, OpenApp
from tests.browser.demo import accept_request, send, start_conversation, users

WATCH_PROGRESS = """() => {
    const app = window.switchboardApp;
    window.uploadTrace = {bar: [], pushes: []};
    const bar = document.getElementById("upload-progress");
    const record = () => window.uploadTrace.bar.push(Number(bar.getAttribute("aria-valuenow")));
    const watched = {attributes: true, attributeFilter: ["aria-valuenow"]};
    new MutationObserver(record).observe(bar, watched);
    app.client.on("upload:progress", (d) => window.uploadTrace.pushes.push(d.percent));
}"""


def png_bytes(width: int, height: int) -> bytes:
    image = Image.effect_noise((width, height), 64).convert("RGB")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def attach(app: AppPage, name: str, mime: str, data: bytes) -> None:
    app.eval(WATCH_PROGRESS)
    app.page.get_by_label("Attach a file").set_input_files(
        {"name": name, "mimeType": mime, "buffer": data}
    )


def expect_uploaded(app: AppPage) -> dict[str, list[int]]:
    page = app.page
    expect(page.get_by_role("status", name="Upload status")).to_have_text(
        "100 % · ready to send", timeout=60_000
    )
    bar = page.get_by_role("progressbar", name="Upload progress")
    expect(bar).to_have_attribute("aria-valuenow", "100")
    trace: dict[str, list[int]] = app.eval("() => window.uploadTrace")
    assert trace["bar"] == sorted(trace["bar"]), trace  # never goes backwards
    assert trace["bar"][-1] == 100
    return trace


def test_image_upload_shows_progress_and_thumbnail(open_app: OpenApp) -> None:
    alice_id, bob_id = users("alice", "bob")
    alice = open_app(alice_id)
    start_conversation(alice, bob_id)
    # When alice attaches a 640x480 photo
    attach(alice, "bike.png", "image/png", png_bytes(640, 480))
    # Then the progress bar climbs to 100 % and the processor's thumbnail shows
    expect_uploaded(alice)
    thumb = alice.page.get_by_role("img", name="Thumbnail of bike.png")
    expect(thumb).to_be_visible()
    natural = thumb.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert 0 < natural[0] < 640, natural  # a real, smaller image came back from S3
    # And it is sent with the message
    send(alice, "Here is a photo")
    bubble = alice.page.locator(".message.own", has_text="Here is a photo")
    expect(bubble.locator(".attachment")).to_contain_text("bike.png")
    expect(bubble.get_by_role("img", name="Thumbnail of bike.png")).to_be_visible()
    # And bob, a member of the conversation, sees it too (upload:get through it)
    bob = open_app(bob_id)
    accept_request(bob, alice_id)
    bob.page.locator(".conversation", has_text=alice_id).click()
    received = bob.page.locator(".message", has_text="Here is a photo")
    expect(received.get_by_role("img", name="Thumbnail of bike.png")).to_be_visible()
    expect(received.get_by_role("link", name="Download")).to_be_visible()


def test_large_file_goes_multipart_with_progress_per_part(open_app: OpenApp) -> None:
    alice_id, bob_id = users("alice", "bob")
    alice = open_app(alice_id)
    start_conversation(alice, bob_id)
    # When alice attaches a 12 MiB PDF (over the 8 MiB multipart threshold)
    size = 12 * 1024 * 1024
    data = b"%PDF-1.4\n" + b"%" + bytes(range(256)) * ((size - 10) // 256)
    data += b"\n" * (size - len(data))
    attach(alice, "catalogue.pdf", "application/pdf", data)
    # Then the parts are confirmed one by one (a push per part) up to 100 %
    trace = expect_uploaded(alice)
    pushes = trace["pushes"]
    # (parts confirmed at once are separate invocations, so their pushes may cross on the
    # way: the bar keeps the highest, which expect_uploaded checks never goes back)
    assert len(pushes) >= 2, pushes
    assert min(pushes) < 100 and max(pushes) == 100, pushes
    expect(alice.page.get_by_role("img", name="Thumbnail of catalogue.pdf")).to_have_count(0)
