"""The browser harness itself: Chromium from the Debian package, fake media devices, the
devserver's dev-token endpoint the demo app signs in with."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import jwt

from tests.browser.conftest import OpenPage
from tests.e2e.conftest import RunningDevserver


def _get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_chromium_has_webrtc_and_fake_camera(open_page: OpenPage) -> None:
    # Given a page served by the devserver in the harness's Chromium
    app = open_page("/")
    # When it asks for camera and microphone
    tracks = app.eval(
        """async () => {
            const stream = await navigator.mediaDevices.getUserMedia({audio: true, video: true});
            const kinds = stream.getTracks().map((t) => t.kind).sort();
            stream.getTracks().forEach((t) => t.stop());
            return {kinds, pc: typeof RTCPeerConnection};
        }"""
    )
    # Then the fake devices answer without a permission prompt and WebRTC exists
    assert tracks == {"kinds": ["audio", "video"], "pc": "function"}


def test_dev_token_endpoint(devserver: RunningDevserver) -> None:
    # Given the devserver; When the demo app asks for alice's and admin's tokens
    status, alice = _get(f"{devserver.http}/__devserver/token?user=alice")
    _, admin = _get(f"{devserver.http}/__devserver/token?user=admin")
    # Then they are dev JWTs for those users (admin role only for the demo admin),
    # with the WebSocket URL the page connects to
    assert status == 200
    assert alice["ws"] == devserver.ws
    claims = jwt.decode(str(alice["token"]), options={"verify_signature": False})
    assert claims["sub"] == "alice"
    assert "admin" not in claims["roles"]
    assert alice["admin"] is False
    assert admin["admin"] is True
    assert "admin" in jwt.decode(str(admin["token"]), options={"verify_signature": False})["roles"]
    # And the demo users are listed
    _, users = _get(f"{devserver.http}/__devserver/users")
    assert [u["userId"] for u in users["users"]] == ["alice", "bob", "carol", "admin"]  # type: ignore[index,union-attr]


def test_dev_token_endpoint_refuses_bad_users(devserver: RunningDevserver) -> None:
    for query in ("", "?user=", "?user=a%20b", "?user=" + "x" * 65):
        status, body = _get(f"{devserver.http}/__devserver/token{query}")
        assert status == 400, query
        assert "user" in str(body["message"])
