"""What `make dev` prints: the banner's first example runs with what the README's setup
installs, and without coturn it says how to get relayed calls."""

from __future__ import annotations

from pathlib import Path

import pytest

from devserver.__main__ import _banner
from devserver.server import DevServer, DevServerOptions
from devserver.turn import start_coturn

ROOT = Path(__file__).resolve().parents[2]


def test_banner_leads_with_the_websockets_client_in_the_venv() -> None:
    text = _banner("ws://h:1/dev", "http://h:2", "http://h:1/dev", "http://h:3", "turn:x")
    examples = [line.strip() for line in text.splitlines() if "ws://h:1/dev?token=ey" in line]
    assert examples[0].startswith(".venv/bin/python -m websockets 'ws://h:1/dev?token=")
    assert "websocat" not in text
    assert "  TURN        turn:x" in text


def test_without_coturn_the_note_says_how_to_get_relayed_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SWITCHBOARD_TURNSERVER", "no-such-turnserver-here")
    server = DevServer(DevServerOptions(template=ROOT / "template.yaml"))
    server._start_turn()
    assert server.coturn is None
    assert "apt-get install -y coturn" in server.turn_note
    assert "?ice=relay" in server.turn_note and "TurnUrls=" in server.turn_note
    assert server.template.parameters["TurnUrls"] == [""]  # the template default: none


def test_given_turn_urls_are_kept() -> None:
    options = DevServerOptions(
        template=ROOT / "template.yaml", parameters={"TurnUrls": "turn:example:3478"}
    )
    server = DevServer(options)
    server._start_turn()
    assert server.coturn is None and server.turn_note == "TurnUrls as given (--param)"
    assert server.template.parameters["TurnUrls"] == ["turn:example:3478"]


def test_a_coturn_that_does_not_start_is_a_clear_error_not_a_hang(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="turnserver exited 1"):
        start_coturn("/bin/false", "secret", tmp_path)
