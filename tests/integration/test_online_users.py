"""Distinct users online under a race: two sessions of one user start at once on two
shards. The first to read the user's open-session count loses the race, its transaction
is refused on the count it read, and it reads again: the user is counted online once."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from switchboard.analytics.records import Contribution, StreamChange, connections
from switchboard.dal.metrics import MetricsRepository, Presence

from tests.integration.conftest import Stack


def connect_change(stack: Stack, user: str, connection_id: str) -> Contribution:
    record = {
        "eventName": "INSERT",
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:1:table/Connections/stream/x",
        "dynamodb": {
            "ApproximateCreationDateTime": 1795687200,
            "NewImage": {
                "connectionId": {"S": connection_id},
                "userId": {"S": user},
                "connectedAt": {"N": "1795687200000"},
            },
        },
    }
    (contribution,) = connections(StreamChange.from_record(record), None)  # type: ignore[arg-type]
    return contribution


def test_a_session_racing_another_of_the_same_user_is_counted_once(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = stack.table("MetricsTable")
    user = f"racer-{uuid.uuid4().hex[:6]}"
    first, second = MetricsRepository(table), MetricsRepository(table)
    before = int(first.gauges().get("onlineUsers", 0))
    reads: list[Presence | None] = []
    real = MetricsRepository._presence

    def racing(self: MetricsRepository, c: Contribution) -> Any:
        presence = real(self, c)
        reads.append(presence)
        if len(reads) == 1:
            # Given the other session's start lands between this read and this write
            assert second.apply(connect_change(stack, user, "phone"))
        return presence

    monkeypatch.setattr(MetricsRepository, "_presence", racing)
    # When the first session's start is applied
    assert first.apply(connect_change(stack, user, "laptop"))
    monkeypatch.undo()
    # Then it read twice (its first transaction was refused on the stale count); the
    # middle read is the other session's own
    assert [p.open if p else None for p in reads] == [None, None, 1]
    # And the user is online once, with two open sessions
    assert first.user_stats(user)["open"] == 2
    assert int(first.gauges()["onlineUsers"]) == before + 1
