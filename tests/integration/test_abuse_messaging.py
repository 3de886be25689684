"""Abuse cases of messaging, sessions and connections (docs/security.md, "Messaging, calls
and authentication"): each test is a finding of the review in issue 14, and failed on the
code before its fix. Handlers are called in-process under moto."""

from __future__ import annotations

from typing import Any

from tests.integration.test_messaging import apps, new_conversation, people  # noqa: F401 - fixtures


def test_typing_stop_is_rate_limited_like_typing_start(people: Any) -> None:
    attacker, victim = people("attacker", "victim")
    conversation = new_conversation(attacker, victim)
    # Given 31 typing:stop frames in a row (each was a presence read and a post per device)
    codes = [attacker.call("typing:stop", {"conversationId": conversation}) for _ in range(31)]
    # Then one is pushed and the other 30 are refused
    assert [r["ok"] for r in codes].count(True) == 1
    assert {r["error"]["code"] for r in codes if not r["ok"]} == {"rate_limited"}
    assert len(victim.frames("typing")) == 1
    # And a start right after a stop is still allowed (their windows are separate)
    attacker.ok("typing:start", {"conversationId": conversation})
    assert [f["data"]["state"] for f in victim.frames("typing")] == ["stop", "start"]
