"""Group calls in real Chromium (fake camera, microphone and screen), signaled through the
devserver by the demo app (web/app-calls.js on web/calls.js): a three-person mesh whose
every side decodes every other's video, mute state on the tiles, a screen share the
others get as a new track, one person leaving while the other two keep decoding; a
recording announced to all, uploaded and played by a member (its duration checked with
ffprobe); a voice message held, sent and played; the mesh relayed by the real coturn."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import AppPage, OpenApp, TurnServer
from tests.browser.conftest import require_tool as require
from tests.browser.demo import accept_request, send, start_conversation, users

# Per peer: frames decoded and video tracks decoding, waited for (bounded) until every
# peer of `peers` reaches `tracks` decoding video tracks and more than `after` frames.
DECODING = """async ({peers, tracks, after}) => {
    const app = window.switchboardApp;
    for (let i = 0; i < 300 && !app.groupCall; i++) await new Promise((r) => setTimeout(r, 100));
    const call = app.groupCall;
    let stats = {};
    for (let i = 0; i < 300; i++) {
        stats = await call.stats();
        const ok = peers.every((p) => stats[p] && stats[p].videoTracks >= tracks
            && stats[p].framesDecoded > (after[p] ?? 0));
        if (ok && Object.keys(stats).length === peers.length) return stats;
        await new Promise((r) => setTimeout(r, 100));
    }
    return stats;
}"""


def decoding(
    app: AppPage, peers: list[str], tracks: int = 1, after: dict[str, int] | None = None
) -> dict[str, Any]:
    stats: dict[str, Any] = app.eval(
        DECODING, {"peers": peers, "tracks": tracks, "after": after or {}}
    )
    assert set(stats) == set(peers), stats
    for peer in peers:
        assert stats[peer]["videoTracks"] >= tracks, (app.user, stats)
        assert stats[peer]["framesDecoded"] > (after or {}).get(peer, 0), (app.user, stats)
    return stats


def group_call(caller: AppPage, others: list[AppPage]) -> None:
    """The caller starts a group call from the open conversation; the others join."""
    names = ", ".join(o.user for o in others)
    caller.page.get_by_role("button", name=f"Group call {names}").click()
    for other in others:
        ring = other.page.get_by_role("alertdialog", name="Incoming group call")
        expect(ring).to_contain_text(f"{caller.user} invites you to a group call")
        ring.get_by_role("button", name="Join").click()
        expect(ring).to_be_hidden()


def tile(app: AppPage, user: str, kind: str = "camera") -> Any:
    return app.page.locator(f'#group-tiles figure[data-user="{user}"][data-kind="{kind}"]')


def test_three_person_mesh_media_state_screen_share_and_one_leaves(open_app: OpenApp) -> None:
    alice_id, bob_id, carol_id = users("alice", "bob", "carol")
    alice, bob, carol = open_app(alice_id), open_app(bob_id), open_app(carol_id)
    everyone = [alice, bob, carol]
    start_conversation(alice, bob_id, carol_id)
    # Calls ring contacts: both accept alice's group first
    accept_request(bob, alice_id)
    accept_request(carol, alice_id)
    group_call(alice, [bob, carol])
    # Then each of the three decodes video from both others (three peer connections)
    for app in everyone:
        decoding(app, [o.user for o in everyone if o is not app])
        for other in everyone:
            if other is not app:
                expect(tile(app, other.user)).to_be_visible()
    # When bob mutes (his microphone: the group call's button, not the chat head's
    # "Mute notifications"), the others' tiles of bob say so
    bob_call = bob.page.get_by_role("region", name="Group call")
    expect(bob.page.get_by_role("button", name="Mute", exact=True)).to_have_count(1)
    bob_call.get_by_role("button", name="Mute", exact=True).click()
    for app in (alice, carol):
        expect(tile(app, bob_id)).to_have_attribute("data-audio", "false")
        expect(tile(app, bob_id)).to_contain_text("muted")
    # When alice shares her screen, bob and carol get a new track: a screen tile
    alice.page.get_by_role("button", name="Share screen").click()
    for app in (bob, carol):
        screen = tile(app, alice_id, "screen")
        expect(screen).to_be_visible()
        expect(tile(app, alice_id)).to_have_attribute("data-screen", "true")
        assert decoding(app, [alice_id, *(o.user for o in (bob, carol) if o is not app)], 1)
        assert app.eval(VIDEO_TRACKS_FROM, alice_id) == 2
        width = screen.locator("video").evaluate(
            "async (v) => { for (let i = 0; i < 100 && !v.videoWidth; i++)"
            " await new Promise((r) => setTimeout(r, 100)); return v.videoWidth; }"
        )
        assert width > 0
    # And stopping it takes the screen tile away (the camera stays)
    alice.page.get_by_role("button", name="Stop sharing").click()
    for app in (bob, carol):
        expect(tile(app, alice_id, "screen")).to_have_count(0)
        expect(tile(app, alice_id)).to_have_attribute("data-screen", "false")
        expect(tile(app, alice_id)).to_be_visible()
    # When carol leaves, alice and bob keep decoding each other (new frames after it)
    carol.page.get_by_role("button", name="Leave", exact=True).click()
    expect(carol.page.get_by_role("region", name="Group call")).to_be_hidden()
    for app, other in ((alice, bob_id), (bob, alice_id)):
        expect(tile(app, carol_id)).to_have_count(0)
        status = app.page.get_by_role("status", name="Group call status")
        expect(status).to_have_attribute("data-peers", "1")
        before = app.eval("async () => await window.switchboardApp.groupCall.stats()")
        decoding(app, [other], after={other: before[other]["framesDecoded"]})
    alice.page.get_by_role("button", name="Leave", exact=True).click()
    expect(bob.page.get_by_role("alert")).to_contain_text("Group call ended")


VIDEO_TRACKS_FROM = """async (user) => {
    for (let i = 0; i < 300; i++) {
        const stats = await window.switchboardApp.groupCall.stats();
        if ((stats[user]?.videoTracks ?? 0) >= 2) return stats[user].videoTracks;
        await new Promise((r) => setTimeout(r, 100));
    }
    return (await window.switchboardApp.groupCall.stats())[user]?.videoTracks ?? 0;
}"""


def ffprobe_duration_ms(data: bytes, tmp_path: Path) -> int:
    """The media's duration by ffprobe (Debian's ffmpeg): the end of its last packet (a
    MediaRecorder file is a live stream: its header has no duration)."""
    path = tmp_path / "media.webm"
    path.write_bytes(data)
    ffprobe = require("ffprobe", "ffmpeg")
    out = subprocess.run(
        [
            ffprobe,
            "-v",
            "error",
            "-show_entries",
            "packet=pts_time,duration_time",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    packets = json.loads(out)["packets"]
    assert packets, out
    end = max(float(p["pts_time"]) + float(p.get("duration_time", 0) or 0) for p in packets)
    return round(end * 1000)


def download(url: str) -> bytes:
    assert url.startswith("http://127.0.0.1:"), url  # the devserver's S3 (moto)
    with urllib.request.urlopen(url, timeout=30) as response:
        body: bytes = response.read()
    return body


PLAYED = """async (selector) => {
    // The player is added once upload:get answered with the file's URL.
    for (let i = 0; i < 300 && !document.querySelector(selector); i++) {
        await new Promise((r) => setTimeout(r, 50));
    }
    const media = document.querySelector(selector);
    media.muted = true;  // autoplay policy: a muted element may play without a gesture
    await media.play();
    for (let i = 0; i < 300 && media.currentTime < 0.5 && !media.ended; i++) {
        await new Promise((r) => setTimeout(r, 50));
    }
    return {currentTime: media.currentTime, error: media.error && media.error.code};
}"""


def test_recording_is_announced_uploaded_and_played_by_a_member(
    open_app: OpenApp, tmp_path: Path
) -> None:
    alice_id, bob_id = users("alice", "bob")
    alice, bob = open_app(alice_id), open_app(bob_id)
    conversation = start_conversation(alice, bob_id)
    accept_request(bob, alice_id)  # calls ring contacts
    send(alice, "Shall we record the walkthrough?")
    bob.page.get_by_role("button", name=alice_id).click()
    group_call(alice, [bob])
    decoding(alice, [bob_id])
    # When alice records, both see the indicator, and the conversation says so
    alice.page.get_by_role("button", name="Record", exact=True).click()
    for app in (alice, bob):
        indicator = app.page.get_by_role("status", name="Recording")
        expect(indicator).to_have_text(f"● Recording ({alice_id})")
        entry = app.page.locator(".message.system", has_text=f"{alice_id} started recording")
        expect(entry).to_be_visible()
    # Record some frames (bounded: until the recorder has delivered data three times)
    alice.eval(RECORDED_CHUNKS, 3)
    alice.page.get_by_role("button", name="Stop recording").click()
    for app in (alice, bob):
        expect(app.page.get_by_role("status", name="Recording")).to_be_hidden()
        expect(app.page.locator(".message.system", has_text="stopped recording")).to_be_visible()
    # Then the recording lands in the conversation, and bob plays it
    player = bob.page.locator(".attachment.recording video")
    expect(player).to_have_count(1)
    played = bob.eval(PLAYED, ".attachment.recording video")
    assert played["error"] is None and played["currentTime"] > 0, played
    # Its duration, as the server read it, matches ffprobe's reading of the bytes
    message = bob.eval(LAST_ATTACHMENT, conversation)
    got = bob.eval(UPLOAD_GET, [message["uploadId"], conversation])
    data = download(got["url"])
    probed = ffprobe_duration_ms(data, tmp_path)
    assert message["durationMs"] >= 1000, message
    assert abs(probed - message["durationMs"]) <= 200, (probed, message)


UPLOAD_GET = """([uploadId, conversationId]) =>
    window.switchboardApp.client.request("upload:get", {uploadId, conversationId})"""

RECORDED_CHUNKS = """async (wanted) => {
    const recorder = window.switchboardApp.groupCall.recorder;
    let chunks = 0;
    recorder.addEventListener("dataavailable", () => chunks++);
    for (let i = 0; i < 300 && chunks < wanted; i++) await new Promise((r) => setTimeout(r, 50));
    return chunks;
}"""

LAST_ATTACHMENT = """(conversationId) => {
    const messages = [...window.switchboardApp.messages.get(conversationId).values()];
    const withMedia = messages.filter((m) => m.attachments?.length).pop();
    return withMedia.attachments[0];
}"""


def test_voice_message_is_held_sent_and_played_by_the_recipient(
    open_app: OpenApp, tmp_path: Path
) -> None:
    alice_id, bob_id = users("alice", "bob")
    alice, bob = open_app(alice_id), open_app(bob_id)
    conversation = start_conversation(alice, bob_id)
    accept_request(bob, alice_id)  # then it is in bob's conversations, not his requests
    send(alice, "Listen to this")
    bob.page.get_by_role("button", name=alice_id).click()
    # When alice holds the voice button for a while and lets go
    hold = alice.page.get_by_role("button", name="Hold to record a voice message")
    hold.hover()
    alice.page.mouse.down()
    expect(hold).to_have_attribute("aria-pressed", "true")
    alice.eval(VOICE_LEVELS, 20)  # until 20 level samples (~1 s of sound) were taken
    alice.page.mouse.up()
    # Then bob gets a voice message with its duration and waveform, and plays it
    voice = bob.page.locator(".attachment.voice")
    expect(voice).to_contain_text("Voice message")
    attachment = bob.eval(LAST_ATTACHMENT, conversation)
    assert attachment["kind"] == "voice" and attachment["durationMs"] >= 500, attachment
    assert attachment["waveform"] and max(attachment["waveform"]) > 0, attachment
    played = bob.eval(PLAYED, ".attachment.voice audio")
    assert played["error"] is None and played["currentTime"] > 0, played
    progress = voice.get_by_role("progressbar", name="Playback")
    expect(progress).not_to_have_attribute("aria-valuenow", "0")
    got = bob.eval(UPLOAD_GET, [attachment["uploadId"], conversation])
    assert got["contentType"] == "audio/webm"
    probed = ffprobe_duration_ms(download(got["url"]), tmp_path)
    assert abs(probed - attachment["durationMs"]) <= 200, (probed, attachment)


VOICE_LEVELS = """async (wanted) => {
    // recordVoice() samples the level every 50 ms; wait for the recorder to be running.
    for (let i = 0; i < 300; i++) {
        const button = document.getElementById("voice");
        if (button.getAttribute("aria-pressed") === "true") break;
        await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, wanted * 50));
    return wanted;
}"""


def test_group_call_through_turn_relay(open_app: OpenApp, turn_server: TurnServer) -> None:
    # Given three browsers allowed relayed candidates only
    alice_id, bob_id, carol_id = users("alice", "bob", "carol")
    apps = [open_app(u, base_query="ice=relay") for u in (alice_id, bob_id, carol_id)]
    alice, bob, carol = apps
    start_conversation(alice, bob_id, carol_id)
    # Calls ring contacts: both accept alice's group first
    accept_request(bob, alice_id)
    accept_request(carol, alice_id)
    group_call(alice, [bob, carol])
    # Then every pair connects through coturn and decodes video
    for app in apps:
        stats = decoding(app, [o.user for o in apps if o is not app])
        assert {s["localCandidateType"] for s in stats.values()} == {"relay"}, stats
    # And coturn allocated relays with each user's ephemeral credentials
    log = turn_server.log()
    for user in (alice_id, bob_id, carol_id):
        assert f":{user}>: incoming packet ALLOCATE processed, success" in log, log[-3000:]
    alice.page.get_by_role("button", name="Leave", exact=True).click()
