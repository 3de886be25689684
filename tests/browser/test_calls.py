"""A real WebRTC call between two browser contexts, signaled through the devserver by the
demo app (web/switchboard.js's CallSession): ICE connects, a data-channel message
round-trips, video frames are decoded. Then the same call forced through a real coturn
(`iceTransportPolicy: "relay"`) with the ephemeral credentials from `call:ice-servers`."""

from __future__ import annotations

import uuid
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import AppPage, OpenApp, TurnServer
from tests.browser.demo import accept_request, send, start_conversation, users

CONNECTED = ("connected", "completed")

DATA_CHANNEL_ROUND_TRIP = """async (text) => {
    const call = window.switchboardApp.call;
    const channel = call.dataChannel;
    for (let i = 0; i < 300 && channel.readyState !== "open"; i++) {
        await new Promise((r) => setTimeout(r, 100));
    }
    const reply = new Promise((resolve) => {
        channel.addEventListener("message", (e) => resolve(e.data), {once: true});
    });
    channel.send(text);
    const bound = new Promise((_, reject) => setTimeout(() => reject(new Error("no echo")), 30000));
    return await Promise.race([reply, bound]);
}"""

ECHO = """async () => {
    const app = window.switchboardApp;
    for (let i = 0; i < 600 && !app.call?.dataChannel; i++) {
        await new Promise((r) => setTimeout(r, 50));
    }
    const channel = app.call.dataChannel;
    channel.addEventListener("message", (e) => channel.send(`echo:${e.data}`));
    return channel.label;
}"""

FRAMES_DECODED = """async () => {
    const call = window.switchboardApp.call;
    for (let i = 0; i < 300; i++) {
        const stats = await call.stats();
        if (stats.framesDecoded > 0) return stats;
        await new Promise((r) => setTimeout(r, 100));
    }
    return await call.stats();
}"""


def place_call(alice: AppPage, bob: AppPage, alice_id: str, bob_id: str) -> None:
    start_conversation(alice, bob_id)
    accept_request(bob, alice_id)  # a call rings only contacts
    send(alice, "Can I call you?")
    # When alice presses the call button, bob's devices ring; he accepts
    alice.page.get_by_role("button", name=f"Video call {bob_id}").click()
    ringing = bob.page.get_by_role("alertdialog", name="Incoming call")
    expect(ringing).to_contain_text(f"{alice_id} is calling (video)")
    ringing.get_by_role("button", name="Accept").click()
    expect(ringing).to_be_hidden()


def assert_media_flows(alice: AppPage, bob: AppPage) -> list[dict[str, Any]]:
    # ICE connects on both sides (the app shows it)
    for app in (alice, bob):
        status = app.page.get_by_role("status", name="Call status")
        expect(status).to_have_attribute("data-ice", _any_of(CONNECTED))
        expect(status).to_have_attribute("data-state", "active")
    # A data-channel message round-trips
    assert bob.eval(ECHO) == "switchboard"
    token = uuid.uuid4().hex
    assert alice.eval(DATA_CHANNEL_ROUND_TRIP, token) == f"echo:{token}"
    # Video frames are decoded on both sides
    stats = [app.eval(FRAMES_DECODED) for app in (alice, bob)]
    assert all(s["framesDecoded"] > 0 for s in stats), stats
    # And the remote tile shows that video
    for app in (alice, bob):
        width = app.page.locator("#remote-video").evaluate("v => v.videoWidth")
        assert width > 0
    return stats


def _any_of(values: tuple[str, ...]) -> Any:
    import re

    return re.compile("^(" + "|".join(map(re.escape, values)) + ")$")


def hang_up(alice: AppPage, bob: AppPage) -> None:
    alice.page.get_by_role("button", name="Hang up").click()
    for app in (alice, bob):
        expect(app.page.get_by_role("region", name="Call")).to_be_hidden()
    expect(bob.page.get_by_role("alert")).to_contain_text("Call ended (hangup)")


def test_video_call_connects_with_data_channel_and_video(open_app: OpenApp) -> None:
    alice_id, bob_id = users("alice", "bob")
    alice = open_app(alice_id)
    bob = open_app(bob_id)
    place_call(alice, bob, alice_id, bob_id)
    # Then the call connects peer to peer (loopback host candidates: no TURN needed)
    stats = assert_media_flows(alice, bob)
    assert stats[0]["localCandidateType"] == "host"
    hang_up(alice, bob)


ADD_CANVAS_TRACK = """() => {
    const call = window.switchboardApp.call;
    const canvas = Object.assign(document.createElement("canvas"), {width: 160, height: 120});
    const ctx = canvas.getContext("2d");
    window.canvasTimer = setInterval(() => {
        ctx.fillStyle = `hsl(${Date.now() % 360}, 80%, 50%)`;
        ctx.fillRect(0, 0, 160, 120);
    }, 40);
    const stream = canvas.captureStream(15);
    call.pc.addTrack(stream.getVideoTracks()[0], stream);
}"""

VIDEO_TRACKS_DECODING = """async (wanted) => {
    const call = window.switchboardApp.call;
    for (let i = 0; i < 300; i++) {
        let decoding = 0;
        (await call.pc.getStats()).forEach((s) => {
            if (s.type === "inbound-rtp" && s.kind === "video" && s.framesDecoded > 0) decoding++;
        });
        if (decoding >= wanted && call.pc.signalingState === "stable") return decoding;
        await new Promise((r) => setTimeout(r, 100));
    }
    return -1;
}"""


def test_both_sides_add_a_track_at_once_perfect_negotiation(open_app: OpenApp) -> None:
    # Given a connected call
    alice_id, bob_id = users("alice", "bob")
    alice = open_app(alice_id)
    bob = open_app(bob_id)
    place_call(alice, bob, alice_id, bob_id)
    for app in (alice, bob):
        status = app.page.get_by_role("status", name="Call status")
        expect(status).to_have_attribute("data-ice", _any_of(CONNECTED))
    # When both add a second video track at the same moment (their offers may cross:
    # "glare"; the callee is the polite peer and rolls back)
    alice.page.evaluate(ADD_CANVAS_TRACK)
    bob.page.evaluate(ADD_CANVAS_TRACK)
    # Then both renegotiations complete (call:offer / call:answer through the server) and
    # each side decodes two video tracks, the call still up
    assert alice.eval(VIDEO_TRACKS_DECODING, 2) == 2
    assert bob.eval(VIDEO_TRACKS_DECODING, 2) == 2
    for app in (alice, bob):
        status = app.page.get_by_role("status", name="Call status")
        expect(status).to_have_attribute("data-state", "active")
    hang_up(alice, bob)


def test_video_call_through_turn_relay(open_app: OpenApp, turn_server: TurnServer) -> None:
    # Given both browsers only allowed to use relayed candidates (iceTransportPolicy
    # "relay"), with the TURN credentials call:ice-servers issues for each user
    alice_id, bob_id = users("alice", "bob")
    alice = open_app(alice_id, base_query="ice=relay")
    bob = open_app(bob_id, base_query="ice=relay")
    place_call(alice, bob, alice_id, bob_id)
    # (the credentials are for someone alice shares a conversation with: place_call made it)
    ice = alice.eval("(bob) => window.switchboardApp.client.iceServers({calleeId: bob})", bob_id)
    turn = [s for s in ice if any(u.startswith("turn:") for u in s["urls"])]
    assert turn, ice
    assert turn[0]["username"].endswith(f":{alice_id}")
    assert turn[0]["urls"] == [f"turn:127.0.0.1:{turn_server.port}?transport=udp"]
    # Then the call connects through coturn: relay candidates, media and data flow
    stats = assert_media_flows(alice, bob)
    assert {s["localCandidateType"] for s in stats} == {"relay"}, stats
    # And coturn accepted the ephemeral credentials of both users (REST API auth)
    log = turn_server.log()
    for user in (alice_id, bob_id):
        assert f":{user}>: incoming packet ALLOCATE processed, success" in log, log[-3000:]
    hang_up(alice, bob)


def test_turn_refuses_credentials_not_signed_with_the_secret(
    open_app: OpenApp, turn_server: TurnServer
) -> None:
    # Given the credentials call:ice-servers issued, and the same with a forged credential
    alice_id, bob_id = users("alice", "bob")
    alice = open_app(alice_id)
    start_conversation(alice, bob_id)  # credentials are for someone she can call
    accept_request(open_app(bob_id), alice_id)
    ice = alice.eval("(bob) => window.switchboardApp.client.iceServers({calleeId: bob})", bob_id)
    turn = next(s for s in ice if s.get("credential"))
    forged = {**turn, "credential": "AAAAAAAAAAAAAAAAAAAAAAAAAAA="}
    # When a browser gathers relay candidates with each
    gathered = [alice.eval(GATHER_RELAY, server) for server in (turn, forged)]
    # Then coturn allocates a relay for the real credential only
    assert gathered[0]["relay"] >= 1, gathered
    assert gathered[1]["relay"] == 0, gathered
    assert any(e["errorCode"] == 401 for e in gathered[1]["errors"]), gathered


GATHER_RELAY = """async (server) => {
    const pc = new RTCPeerConnection({iceServers: [server], iceTransportPolicy: "relay"});
    const errors = [];
    let relay = 0;
    pc.onicecandidateerror = (e) => errors.push({errorCode: e.errorCode, url: e.url});
    const done = new Promise((resolve) => {
        pc.onicecandidate = (e) => {
            if (!e.candidate) resolve();
            else if (e.candidate.type === "relay") relay += 1;
        };
    });
    pc.createDataChannel("probe");
    await pc.setLocalDescription();
    await Promise.race([done, new Promise((r) => setTimeout(r, 15000))]);
    pc.close();
    return {relay, errors};
}"""


def test_every_device_rings_and_stops_when_one_answers(open_app: OpenApp) -> None:
    # Given bob on a phone and a laptop
    alice_id, bob_id = users("alice", "bob")
    alice = open_app(alice_id)
    bob_phone = open_app(bob_id)
    bob_laptop = open_app(bob_id)
    start_conversation(alice, bob_id)
    accept_request(bob_phone, alice_id)
    # When alice calls, both of bob's devices ring
    alice.page.get_by_role("button", name=f"Video call {bob_id}").click()
    rings = [
        device.page.get_by_role("alertdialog", name="Incoming call")
        for device in (bob_phone, bob_laptop)
    ]
    for ring in rings:
        expect(ring).to_contain_text(f"{alice_id} is calling (video)")
    # And when he answers on the laptop, the phone stops ringing and the call connects there
    rings[1].get_by_role("button", name="Accept").click()
    expect(rings[0]).to_be_hidden()
    status = bob_laptop.page.get_by_role("status", name="Call status")
    expect(status).to_have_attribute("data-ice", _any_of(CONNECTED))
    expect(bob_phone.page.get_by_role("region", name="Call")).to_be_hidden()
    hang_up(alice, bob_laptop)


def test_declined_call_ends_on_the_callers_side(open_app: OpenApp) -> None:
    alice_id, bob_id = users("alice", "bob")
    alice = open_app(alice_id)
    bob = open_app(bob_id)
    start_conversation(alice, bob_id)
    accept_request(bob, alice_id)
    alice.page.get_by_role("button", name=f"Video call {bob_id}").click()
    ring = bob.page.get_by_role("alertdialog", name="Incoming call")
    # When bob declines
    ring.get_by_role("button", name="Decline").click()
    # Then alice's call ends, saying why, and she can call again
    expect(alice.page.get_by_role("alert")).to_contain_text("Call ended (declined)")
    expect(alice.page.get_by_role("region", name="Call")).to_be_hidden()
    expect(alice.page.get_by_role("button", name=f"Video call {bob_id}")).to_be_enabled()


# Frames decoded from the peer's camera (`screen` false) or shared screen (true), waited for
# (bounded) until more than `after`; -1 while the peer sends no such stream.
FRAMES_FROM = """async ({screen, after}) => {
    const call = window.switchboardApp.call;
    const frames = async () => {
        const entry = [...call.remote.streams.values()].find((s) => s.screen === screen);
        const track = entry?.stream.getVideoTracks()[0];
        if (!track) return -1;
        let n = 0;
        (await call.pc.getStats(track)).forEach((s) => {
            if (s.type === "inbound-rtp") n += s.framesDecoded ?? 0;
        });
        return n;
    };
    for (let i = 0; i < 300; i++) {
        const n = await frames();
        if (n > after) return n;
        await new Promise((r) => setTimeout(r, 100));
    }
    return await frames();
}"""

SCREEN_STREAMS = """() => [...window.switchboardApp.call.remote.streams.values()]
    .filter((s) => s.screen).length"""

TRANSCEIVERS = "() => window.switchboardApp.call.pc.getTransceivers().length"

SCREEN_IN_ACTIVE_CALL = """async (user) => {
    const {call} = await window.switchboardApp.client.request("call:get-active");
    return call.participants.find((p) => p.userId === user).media.screen;
}"""


def test_screen_share_in_a_one_to_one_call_and_back_to_the_camera(open_app: OpenApp) -> None:
    # Given a connected 1:1 video call
    alice_id, bob_id = users("alice", "bob")
    alice, bob = open_app(alice_id), open_app(bob_id)
    place_call(alice, bob, alice_id, bob_id)
    for app in (alice, bob):
        status = app.page.get_by_role("status", name="Call status")
        expect(status).to_have_attribute("data-ice", _any_of(CONNECTED))
    screen_tile = bob.page.locator("#remote-screen-tile")
    alice_tile = bob.page.locator("#remote-tile")
    expect(alice_tile).to_have_attribute("data-screen", "false")
    screen_frames = 0
    transceivers = []
    # Shared four times: each share after the first takes the transceiver the last one
    # left (an m-section per share would push the fourth offer past MAX_SDP_CHARS)
    for share in range(4):
        # When alice shares her screen (the fake desktop, no picker)
        alice.page.get_by_role("button", name="Share screen").click()
        expect(alice.page.get_by_role("button", name="Stop sharing")).to_be_visible()
        # Then bob decodes a new video track, shown as alice's screen tile, and his UI
        # says she is sharing
        expect(screen_tile).to_be_visible()
        expect(alice_tile).to_have_attribute("data-screen", "true")
        now = bob.eval(FRAMES_FROM, {"screen": True, "after": screen_frames})
        assert now > screen_frames, (share, now, screen_frames)
        screen_frames = now
        if share == 0:
            expect(screen_tile).to_contain_text(f"{alice_id} (screen)")
            expect(alice_tile).to_contain_text("sharing")
            assert bob.eval(SCREEN_IN_ACTIVE_CALL, alice_id) is True
            width = screen_tile.locator("video").evaluate(
                "async (v) => { for (let i = 0; i < 100 && !v.videoWidth; i++)"
                " await new Promise((r) => setTimeout(r, 100)); return v.videoWidth; }"
            )
            assert width > 0
        # When she stops sharing, bob's screen tile goes and his state says so
        camera = bob.eval(FRAMES_FROM, {"screen": False, "after": 0})
        alice.page.get_by_role("button", name="Stop sharing").click()
        expect(screen_tile).to_be_hidden()
        expect(alice_tile).to_have_attribute("data-screen", "false")
        assert bob.eval(SCREEN_STREAMS) == 0
        if share == 0:
            assert bob.eval(SCREEN_IN_ACTIVE_CALL, alice_id) is False
        # And he keeps decoding her camera (new frames after the stop)
        assert bob.eval(FRAMES_FROM, {"screen": False, "after": camera}) > camera
        transceivers.append(alice.eval(TRANSCEIVERS))
    assert transceivers == [transceivers[0]] * 4, transceivers
    hang_up(alice, bob)
