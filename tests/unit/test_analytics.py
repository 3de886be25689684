"""Analytics maths and rules: histogram buckets and percentiles, time buckets, what each
stream change contributes and under which idempotency marker, queue discovery."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from switchboard.analytics import histogram, periods, records
from switchboard.analytics.records import Contribution, SentMessage, StreamChange
from switchboard.config import AnalyticsApiSettings
from switchboard.dal.items import to_item

# ---------------------------------------------------------------------- histogram


def test_bucket_bounds_are_contiguous_and_each_value_falls_inside_its_bucket() -> None:
    for index in range(1, histogram.LAST_BUCKET):
        assert histogram.upper_bound(index) == pytest.approx(histogram.lower_bound(index + 1))
        assert histogram.upper_bound(index) / histogram.lower_bound(index) == pytest.approx(
            1 + histogram.RELATIVE_RESOLUTION
        )
    for value in (0, 0.5, 1, 1.0905, 2, 3, 999, 1000, 1001, 65_536, 3_599_999):
        index = histogram.bucket_of(value)
        assert histogram.lower_bound(index) <= value < histogram.upper_bound(index), value


def test_exact_powers_of_two_start_their_bucket() -> None:
    for exponent in range(0, 21):
        value = 2.0**exponent
        assert histogram.lower_bound(histogram.bucket_of(value)) == pytest.approx(value)


def test_values_of_an_hour_and_more_share_the_last_bucket() -> None:
    assert histogram.bucket_of(3_600_000) == histogram.LAST_BUCKET
    assert histogram.bucket_of(10**9) == histogram.LAST_BUCKET


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=3_000_000), min_size=1, max_size=300),
    st.sampled_from([50, 95, 99, 100]),
)
def test_percentile_is_never_below_the_true_value_and_within_the_resolution(
    values: list[int], p: int
) -> None:
    true = sorted(values)[max(1, math.ceil(p / 100 * len(values))) - 1]  # nearest rank
    reported = histogram.percentile(histogram.counts_of(values), p)
    assert reported is not None
    assert reported >= true
    assert reported <= max(true * (1 + histogram.RELATIVE_RESOLUTION), 1.0) + 1e-3


def test_percentiles_of_known_data() -> None:
    # 100 values 1..100 ms: p50 is 50 ms, p95 95 ms, p99 99 ms, each reported as its
    # bucket's upper bound.
    counts = histogram.counts_of(range(1, 101))
    for p in (50, 95, 99):
        reported = histogram.percentile(counts, p)
        assert reported is not None
        assert p <= reported < p * 1.0906
    assert histogram.percentile({}, 50) is None
    assert histogram.summary({}).count == 0


def test_histograms_merge_exactly() -> None:
    a, b = histogram.counts_of([1, 2, 3]), histogram.counts_of([3, 400])
    assert histogram.merge([a, b]) == histogram.counts_of([1, 2, 3, 3, 400])


# ---------------------------------------------------------------------- time buckets


def test_bucket_keys_are_utc_and_sortable() -> None:
    t = 1_764_151_505_123  # 2025-11-26T10:05:05.123Z
    assert periods.bucket_key(t, "minute") == "2025-11-26T10:05"
    assert periods.bucket_key(t, "hour") == "2025-11-26T10"
    assert periods.key_to_epoch("2025-11-26T10:05", "minute") * 1000 == t - 5_123
    assert periods.bucket_range(t - 120_000, t, "minute") == [
        "2025-11-26T10:03",
        "2025-11-26T10:04",
        "2025-11-26T10:05",
    ]
    assert periods.bucket_range(t, t, "hour") == ["2025-11-26T10"]


# ---------------------------------------------------------------------- contributions


class FakeLookups:
    def __init__(self, members: frozenset[str], sent: list[SentMessage]) -> None:
        self._members, self._sent = members, sent
        self.message_reads = 0

    def members(self, conversation_id: str) -> frozenset[str]:
        return self._members

    def messages(self, conversation_id: str, after_seq: int, to_seq: int) -> list[SentMessage]:
        self.message_reads += 1
        return [m for m in self._sent if after_seq < m.seq <= to_seq]


def change(
    table: str,
    name: str,
    new: dict[str, Any] | None = None,
    old: dict[str, Any] | None = None,
    at: int = 1_700_000_000,
) -> StreamChange:
    record: dict[str, Any] = {
        "eventName": name,
        "eventSourceARN": f"arn:aws:dynamodb:us-east-1:123456789012:table/{table}/stream/2026",
        "dynamodb": {"ApproximateCreationDateTime": at},
    }
    if new:
        record["dynamodb"]["NewImage"] = to_item(new)
    if old:
        record["dynamodb"]["OldImage"] = to_item(old)
    return StreamChange.from_record(record)


NO_LOOKUPS = FakeLookups(frozenset(), [])


def test_stream_change_knows_its_table_and_time() -> None:
    c = change(
        "sb-Connections-1", "INSERT", {"connectionId": "c1", "userId": "u"}, at=1_700_000_001
    )
    assert c.table == "sb-Connections-1"
    assert c.at_ms == 1_700_000_001_000
    assert c.new == {"connectionId": "c1", "userId": "u"}


def test_connection_open_and_close() -> None:
    opened = records.connections(
        change("C", "INSERT", {"connectionId": "c1", "userId": "u1", "connectedAt": 1000}),
        NO_LOOKUPS,
    )
    assert [(c.marker, c.counters, c.gauges) for c in opened] == [
        ("conn+#c1", {"connections": 1}, {"online": 1})
    ]
    assert opened[0].session_start is not None
    closed = records.connections(
        change(
            "C", "REMOVE", old={"connectionId": "c1", "userId": "u1", "connectedAt": 1000}, at=5
        ),
        NO_LOOKUPS,
    )
    assert closed[0].marker == "conn-#c1"
    assert closed[0].counters == {"disconnections": 1, "sessionMs": 4000}
    assert closed[0].gauges == {"online": -1}
    assert closed[0].users == {"u1": {"sessionsEnded": 1, "sessionMs": 4000}}
    # a MODIFY (token refresh, ...) is not a new connection
    assert (
        records.connections(
            change("C", "MODIFY", {"connectionId": "c1", "userId": "u"}), NO_LOOKUPS
        )
        == []
    )


def test_message_counts_its_recipients_not_its_sender() -> None:
    lookups = FakeLookups(frozenset({"a", "b", "c"}), [])
    [sent] = records.messages(
        change(
            "M",
            "INSERT",
            {"conversationId": "cv", "seq": 7, "senderId": "a", "createdAt": 5, "body": "x"},
        ),
        lookups,
    )
    assert sent.marker == "msg#cv#7"
    assert sent.counters == {"messagesSent": 1, "recipients": 2, "attachments": 0}
    assert sent.users == {"a": {"messages": 1}}


def test_a_system_entry_is_no_message_sent() -> None:
    # "bob left" is written in the seq stream (membership.py) but nobody sent it
    entry = {"conversationId": "cv", "seq": 8, "senderId": "b", "createdAt": 6, "body": ""}
    lookups = FakeLookups(frozenset({"a", "b"}), [])
    system = {"kind": "left", "by": "b", "userIds": ["b"]}
    assert records.messages(change("M", "INSERT", {**entry, "system": system}), lookups) == []
    assert len(records.messages(change("M", "INSERT", entry), lookups)) == 1


def test_ack_counts_the_newly_acked_messages_of_others_with_their_latency() -> None:
    sent = [
        SentMessage(1, "bob", 1_000),
        SentMessage(2, "alice", 1_500),  # alice's own message: not a delivery to her
        SentMessage(3, "bob", 2_000),
        SentMessage(4, "bob", 9_000),  # beyond the new cursor
    ]
    member = {"conversationId": "cv", "sk": "member#alice", "memberId": "alice"}
    found = records.conversations(
        change(
            "V", "MODIFY", {**member, "ackedSeq": 3, "readSeq": 0}, {**member, "ackedSeq": 0}, at=3
        ),
        FakeLookups(frozenset(), sent),
    )
    assert len(found) == 1
    assert found[0].marker == "ackedSeq#cv#alice#0#3"
    assert found[0].counters == {"messagesDelivered": 2}
    assert found[0].latencies == {"deliveryMs": [2_000, 1_000]}


def test_read_counts_reads_and_a_cursor_that_did_not_move_counts_nothing() -> None:
    member = {"conversationId": "cv", "sk": "member#alice", "memberId": "alice"}
    lookups = FakeLookups(frozenset(), [SentMessage(1, "bob", 0), SentMessage(2, "bob", 0)])
    found = records.conversations(
        change(
            "V",
            "MODIFY",
            {**member, "ackedSeq": 2, "readSeq": 2},
            {**member, "ackedSeq": 2, "readSeq": 0},
        ),
        lookups,
    )
    assert [(c.marker, c.counters) for c in found] == [
        ("readSeq#cv#alice#0#2", {"messagesRead": 2})
    ]
    same = records.conversations(
        change("V", "MODIFY", {**member, "ackedSeq": 2}, {**member, "ackedSeq": 2}), lookups
    )
    assert same == []


def test_a_send_moving_the_senders_cursors_over_her_message_only_reads_nothing() -> None:
    member = {"conversationId": "cv", "sk": "member#alice", "memberId": "alice"}
    moved = {**member, "ackedSeq": 5, "readSeq": 5, "sentSeq": 5}
    lookups = FakeLookups(
        frozenset(),
        [SentMessage(3, "bob", 0), SentMessage(4, "bob", 0), SentMessage(5, "alice", 0)],
    )
    # Her cursors were at 4: only her own message 5 lies in between; nothing is looked up.
    at_four = {**member, "ackedSeq": 4, "readSeq": 4}
    assert records.conversations(change("V", "MODIFY", moved, at_four), lookups) == []
    assert lookups.message_reads == 0
    # They were behind (bob's 3 and 4 unread): those count, as an ack would.
    at_two = {**member, "ackedSeq": 2, "readSeq": 2}
    found = records.conversations(change("V", "MODIFY", moved, at_two), lookups)
    assert [c.counters for c in found] == [{"messagesDelivered": 2}, {"messagesRead": 2}]


def test_conversation_meta_and_idempotency_records() -> None:
    created = records.conversations(
        change("V", "INSERT", {"conversationId": "cv", "sk": "#meta", "createdAt": 1}), NO_LOOKUPS
    )
    assert [(c.marker, c.counters) for c in created] == [("conv#cv", {"conversations": 1})]
    meta_update = change("V", "MODIFY", {"conversationId": "cv", "sk": "#meta", "lastSeq": 2})
    assert records.conversations(meta_update, NO_LOOKUPS) == []
    idem = change("V", "INSERT", {"conversationId": "cv", "sk": "idem#a#x"})
    assert records.conversations(idem, NO_LOOKUPS) == []


def test_offline_delivery_is_a_message_notification() -> None:
    note = {"userId": "u", "notificationId": "0001#msg#cv#1", "kind": "message", "createdAt": 1}
    [c] = records.notifications(change("N", "INSERT", note), NO_LOOKUPS)
    assert (c.marker, c.counters) == ("notif#u#0001#msg#cv#1", {"offlineDeliveries": 1})
    other = change("N", "INSERT", {**note, "kind": "missed_call"})
    assert records.notifications(other, NO_LOOKUPS) == []
    marked_read = change("N", "MODIFY", {**note, "read": True})
    assert records.notifications(marked_read, NO_LOOKUPS) == []


def test_typing_counts_each_accepted_window_per_user() -> None:
    window = {"key": "typing#bob#cv_1", "windowStart": 5_000}
    [c] = records.rate_limits(
        change("R", "MODIFY", window, {**window, "windowStart": 1_000}), NO_LOOKUPS
    )
    assert c.marker == "typing#bob#cv_1#5000"
    assert c.users == {"bob": {"typingEvents": 1}}
    assert (
        records.rate_limits(
            change("R", "INSERT", {"key": "send#bob", "windowStart": 1}), NO_LOOKUPS
        )
        == []
    )


def test_same_change_gives_the_same_marker_and_different_changes_different_ones() -> None:
    insert = change("C", "INSERT", {"connectionId": "c1", "userId": "u1", "connectedAt": 1})
    again = records.connections(insert, NO_LOOKUPS)[0].marker
    assert records.connections(insert, NO_LOOKUPS)[0].marker == again
    other = change("C", "INSERT", {"connectionId": "c2", "userId": "u1", "connectedAt": 1})
    assert records.connections(other, NO_LOOKUPS)[0].marker != again


def test_unknown_source_table_is_an_error_not_a_silent_skip() -> None:
    with pytest.raises(records.UnknownSource):
        records.contributions(change("Other", "INSERT", {"x": 1}), {}, NO_LOOKUPS)


def test_empty_contributions_are_dropped() -> None:
    assert Contribution("m", 0, counters={"messagesDelivered": 0}).is_empty()
    assert not Contribution("m", 0, gauges={"online": -1}).is_empty()


# ---------------------------------------------------------------------- configuration


def test_queues_are_discovered_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METRICS_TABLE", "metrics")
    monkeypatch.setenv("USERS_TABLE", "users")
    monkeypatch.setenv("DELIVERY_QUEUE_URL", "http://q/delivery")
    monkeypatch.setenv("DELIVERY_DLQ_URL", "http://q/delivery-dlq")
    monkeypatch.setenv("CONNECTION_EVENTS_DLQ_URL", "http://q/ce-dlq")
    settings_ = AnalyticsApiSettings.from_env()
    assert settings_.QUEUES["delivery"] == {
        "queue": "http://q/delivery",
        "dlq": "http://q/delivery-dlq",
    }
    assert settings_.QUEUES["connectionEvents"] == {"dlq": "http://q/ce-dlq"}


# ---------------------------------------------------------------------- calls and uploads


def _call(state: str, **extra: Any) -> dict[str, Any]:
    return {
        "pk": "call#k1",
        "kind": "call",
        "callId": "k1",
        "callerId": "alice",
        "state": state,
        "createdAt": 1_000,
        **extra,
    }


def test_call_attempt_answer_and_end_each_count_once_with_durations() -> None:
    [attempt] = records.calls(change("K", "INSERT", _call("ringing")), NO_LOOKUPS)
    assert (attempt.marker, attempt.counters) == ("call+#k1", {"callAttempts": 1})
    [answered] = records.calls(
        change("K", "MODIFY", _call("active", answeredAt=4_000), _call("ringing")), NO_LOOKUPS
    )
    assert answered.marker == "call#k1#active"
    assert answered.counters == {"callsAnswered": 1}
    assert answered.gauges == {"activeCalls": 1}
    assert answered.latencies == {"callAnswerMs": [3_000]}
    [ended] = records.calls(
        change(
            "K",
            "MODIFY",
            _call("ended", answeredAt=4_000, endedAt=64_000, durationMs=60_000),
            _call("active", answeredAt=4_000),
        ),
        NO_LOOKUPS,
    )
    assert ended.counters == {"callsEnded": 1, "callTimeMs": 60_000}
    assert ended.gauges == {"activeCalls": -1}
    assert ended.latencies == {"callDurationMs": [60_000]}
    # an ICE candidate stored on the item (same state) is not a transition
    same = change("K", "MODIFY", _call("active", answeredAt=4_000), _call("active"))
    assert records.calls(same, NO_LOOKUPS) == []


def test_rejected_missed_and_busy_calls_and_active_items() -> None:
    for state, counter in (
        ("rejected", "callsRejected"),
        ("missed", "callsMissed"),
        ("cancelled", "callsCancelled"),
    ):
        [c] = records.calls(change("K", "MODIFY", _call(state), _call("ringing")), NO_LOOKUPS)
        assert c.counters == {counter: 1} and not c.gauges
    busy = records.calls(change("K", "INSERT", _call("busy")), NO_LOOKUPS)
    assert [c.counters for c in busy] == [{"callAttempts": 1}, {"callsBusy": 1}]
    active_item = change("K", "INSERT", {"pk": "active#bob", "kind": "active", "callId": "k1"})
    assert records.calls(active_item, NO_LOOKUPS) == []


def _upload(state: str, **extra: Any) -> dict[str, Any]:
    return {"uploadId": "u1", "ownerId": "alice", "state": state, "size": 300, **extra}


def test_uploads_started_completed_with_bytes_and_failed() -> None:
    [started] = records.uploads(change("U", "INSERT", _upload("uploading")), NO_LOOKUPS)
    assert (started.marker, started.counters) == ("upload+#u1", {"uploadsStarted": 1})
    [done] = records.uploads(
        change("U", "MODIFY", _upload("complete", storedSize=280), _upload("processing")),
        NO_LOOKUPS,
    )
    assert done.marker == "upload#u1#complete"
    assert done.counters == {"uploadsCompleted": 1, "uploadBytes": 280}
    assert done.users == {"alice": {"uploads": 1, "uploadBytes": 280}}
    [failed] = records.uploads(
        change("U", "MODIFY", _upload("failed"), _upload("uploaded")), NO_LOOKUPS
    )
    assert failed.counters == {"uploadsFailed": 1}
    progress = change("U", "MODIFY", _upload("uploading", bytes=100), _upload("uploading"))
    assert records.uploads(progress, NO_LOOKUPS) == []


def test_batched_contributions_fit_transactions_of_at_most_100_items() -> None:
    from switchboard.dal.metrics import MAX_TRANSACTION_ITEMS, _contribution_adds, _groups

    at = 1_764_000_000_000
    # 80 messages of 80 different senders: 80 markers + 80 stats items + 3 shared items
    many = [
        Contribution(
            marker=f"msg#c#{i}", at_ms=at, counters={"messagesSent": 1}, users={f"u{i}": {"m": 1}}
        )
        for i in range(80)
    ]
    groups = list(_groups(list(enumerate(many))))
    assert [i for group in groups for i, _ in group] == list(range(80))  # all, in order
    for group in groups:
        keys = {key for _, c in group for key, _, _ in _contribution_adds(c)}
        assert len(group) + len(keys) <= MAX_TRANSACTION_ITEMS
    assert len(groups) == 2
    # 80 messages of one sender share every counter item: one transaction
    one_sender = [
        Contribution(marker=f"m{i}", at_ms=at, counters={"messagesSent": 1}, users={"a": {"m": 1}})
        for i in range(80)
    ]
    assert len(list(_groups(list(enumerate(one_sender))))) == 1
