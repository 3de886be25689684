"""TURN REST API credentials: the maths against values computed independently (a fixed
vector and the standard library's hmac), the expiry, and the ICE server list shape."""

from __future__ import annotations

import base64
import hashlib
import hmac

from switchboard.turn import IceServers, split_urls, turn_credentials

SECRET = "north-wind-turn-secret-0123456789abcdef"


def test_known_vector() -> None:
    # Given a fixed secret, user and expiry; the expected credential was computed once with
    #   printf '%s' '1700003600:alice' | openssl dgst -sha1 -hmac "$SECRET" -binary | base64
    username, credential = turn_credentials(SECRET, "alice", 1_700_003_600)
    assert username == "1700003600:alice"
    assert credential == "U3LMmyNhiArYyZG864DLzKDKP2I="


def test_credential_is_base64_hmac_sha1_of_the_username() -> None:
    for user, expiry in [("bob", 1), ("u-\u00e9t\u00e9", 2_000_000_000), ("x" * 128, 42)]:
        username, credential = turn_credentials(SECRET, user, expiry)
        expected = base64.b64encode(
            hmac.new(SECRET.encode(), f"{expiry}:{user}".encode(), hashlib.sha1).digest()
        ).decode()
        assert username == f"{expiry}:{user}"
        assert credential == expected
        assert len(base64.b64decode(credential)) == 20  # a SHA-1 digest


def test_another_secret_gives_another_credential() -> None:
    assert turn_credentials(SECRET, "a", 1)[1] != turn_credentials(SECRET + "x", "a", 1)[1]


def test_ice_servers_expire_after_the_ttl_and_read_the_secret_on_use() -> None:
    reads: list[int] = []

    def secret() -> str:
        reads.append(1)
        return SECRET

    servers = IceServers(
        stun_urls=["stun:127.0.0.1:3478"],
        turn_urls=["turn:127.0.0.1:3478?transport=udp", "turn:127.0.0.1:3478?transport=tcp"],
        ttl_seconds=600,
        secret=secret,
        clock=lambda: 1_700_000_000.7,
    )
    result = servers.for_user("carol").wire()
    assert result["ttl"] == 600 and result["expiresAt"] == 1_700_000_600
    stun, turn = result["iceServers"]
    assert stun == {"urls": ["stun:127.0.0.1:3478"]}
    assert turn["urls"] == [
        "turn:127.0.0.1:3478?transport=udp",
        "turn:127.0.0.1:3478?transport=tcp",
    ]
    assert turn["username"] == "1700000600:carol"
    assert turn["credential"] == turn_credentials(SECRET, "carol", 1_700_000_600)[1]
    assert reads == [1]


def test_without_turn_urls_only_stun_and_no_secret_read() -> None:
    def secret() -> str:
        raise AssertionError("the secret is not needed without TURN")

    servers = IceServers(stun_urls=["stun:s:3478"], turn_urls=[], ttl_seconds=60, secret=secret)
    assert servers.for_user("d").wire()["iceServers"] == [{"urls": ["stun:s:3478"]}]


def test_split_urls_ignores_blanks() -> None:
    assert split_urls("") == []
    assert split_urls(" turn:a:1 , ,turns:b:2") == ["turn:a:1", "turns:b:2"]
