"""Stream records -> contributions: what one source change adds to the metrics.

A ``Contribution`` carries an idempotency ``marker`` that names the change itself, not the
delivery of it: ``msg#<conversationId>#<seq>`` (a message is inserted once),
``conn+#<connectionId>`` / ``conn-#<connectionId>`` (API Gateway never reuses an id),
``ack#<conversationId>#<userId>#<from>#<to>`` (cursors only move forward), ... The
aggregator applies a contribution together with its marker, so a retried batch, a
duplicated delivery or a replay of the stream adds nothing twice.

Handlers are registered per source table (switchboard/services.py ``analytics_sources``); a
new source plugs in with a handler for its item shapes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from switchboard.dal.items import from_item

DELIVERY_MS = "deliveryMs"


@dataclass(frozen=True, slots=True)
class StreamChange:
    """One stream record, images as plain Python values."""

    table: str
    event_name: str  # INSERT | MODIFY | REMOVE
    at_ms: int  # ApproximateCreationDateTime (seconds on AWS) in ms
    new: dict[str, Any]
    old: dict[str, Any]

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> StreamChange:
        ddb = record.get("dynamodb") or {}
        arn = str(record.get("eventSourceARN", ""))
        # arn:aws:dynamodb:<region>:<account>:table/<TableName>/stream/<label>
        table = arn.split(":table/", 1)[-1].split("/stream/", 1)[0]
        return cls(
            table=table,
            event_name=str(record.get("eventName", "")),
            at_ms=int(float(ddb.get("ApproximateCreationDateTime", 0)) * 1000),
            new=from_item(ddb.get("NewImage") or {}),
            old=from_item(ddb.get("OldImage") or {}),
        )


@dataclass(frozen=True, slots=True)
class SessionStart:
    connection_id: str
    user_id: str
    connected_at: int
    device: str = ""


@dataclass(frozen=True, slots=True)
class SessionEnd:
    connection_id: str
    user_id: str
    connected_at: int
    ended_at: int


@dataclass
class Contribution:
    marker: str
    at_ms: int
    counters: dict[str, int] = field(default_factory=dict)
    latencies: dict[str, list[int]] = field(default_factory=dict)
    gauges: dict[str, int] = field(default_factory=dict)
    users: dict[str, dict[str, int]] = field(default_factory=dict)
    session_start: SessionStart | None = None
    session_end: SessionEnd | None = None
    # Per-session counters ("messages", "typingEvents") of one connection of one user:
    # (userId, connectionId, {counter: n}). Kept on the user's stats item while the
    # session is open and folded into the session's items when it ends (dal/metrics.py).
    session_counts: tuple[str, str, dict[str, int]] | None = None

    def is_empty(self) -> bool:
        return not (
            any(self.counters.values())
            or any(self.latencies.values())
            or any(self.gauges.values())
            or self.users
            or self.session_start
            or self.session_end
            or self.session_counts
        )


@dataclass(frozen=True, slots=True)
class SentMessage:
    seq: int
    sender_id: str
    created_at: int


class Lookups(Protocol):
    """Reads some contributions need (the aggregator's, never the hot path's)."""

    def members(self, conversation_id: str) -> frozenset[str]: ...

    def messages(self, conversation_id: str, after_seq: int, to_seq: int) -> list[SentMessage]: ...


Handler = Callable[[StreamChange, Lookups], list[Contribution]]


# ---------------------------------------------------------------------- connections
def connections(change: StreamChange, _: Lookups) -> list[Contribution]:
    if change.event_name == "INSERT" and change.new:
        item = change.new
        user = str(item["userId"])
        connected_at = int(item.get("connectedAt") or change.at_ms)
        return [
            Contribution(
                marker=f"conn+#{item['connectionId']}",
                at_ms=connected_at,
                counters={"connections": 1},
                gauges={"online": 1},
                users={user: {"sessions": 1}},
                session_start=SessionStart(
                    str(item["connectionId"]), user, connected_at, str(item.get("device", ""))
                ),
            )
        ]
    if change.event_name == "REMOVE" and change.old:
        item = change.old
        user = str(item["userId"])
        connected_at = int(item.get("connectedAt") or change.at_ms)
        ended_at = max(change.at_ms, connected_at)
        duration = ended_at - connected_at
        return [
            Contribution(
                marker=f"conn-#{item['connectionId']}",
                at_ms=ended_at,
                counters={"disconnections": 1, "sessionMs": duration},
                gauges={"online": -1},
                users={user: {"sessionsEnded": 1, "sessionMs": duration}},
                session_end=SessionEnd(str(item["connectionId"]), user, connected_at, ended_at),
            )
        ]
    return []


# ---------------------------------------------------------------------- messages
def messages(change: StreamChange, lookups: Lookups) -> list[Contribution]:
    if change.event_name != "INSERT" or not change.new or change.new.get("system"):
        return []  # (a system entry - "bob left" - is no message anyone sent)
    item = change.new
    conversation_id, sender = str(item["conversationId"]), str(item["senderId"])
    recipients = len(lookups.members(conversation_id) - {sender})
    return [
        Contribution(
            marker=f"msg#{conversation_id}#{item['seq']}",
            at_ms=int(item.get("createdAt") or change.at_ms),
            counters={
                "messagesSent": 1,
                "recipients": recipients,
                "attachments": len(item.get("attachments") or []),
            },
            users={sender: {"messages": 1}},
            session_counts=_session(sender, item.get("senderConnectionId"), "messages"),
        )
    ]


def _session(user: str, connection_id: Any, counter: str) -> tuple[str, str, dict[str, int]] | None:
    # Items written before the connection id was recorded count for the user only.
    return (user, str(connection_id), {counter: 1}) if connection_id else None


# ---------------------------------------------------------------------- receipts
def conversations(change: StreamChange, lookups: Lookups) -> list[Contribution]:
    item = change.new or change.old
    sk = str(item.get("sk", ""))
    if sk == "#meta":
        if change.event_name != "INSERT":
            return []
        return [
            Contribution(
                marker=f"conv#{item['conversationId']}",
                at_ms=int(item.get("createdAt") or change.at_ms),
                counters={"conversations": 1},
            )
        ]
    if not sk.startswith("member#") or change.event_name not in ("INSERT", "MODIFY"):
        return []
    conversation_id = str(item["conversationId"])
    user = str(item.get("memberId") or sk.removeprefix("member#"))
    found: list[Contribution] = []
    for cursor, counter, latency in (
        ("ackedSeq", "messagesDelivered", DELIVERY_MS),
        ("readSeq", "messagesRead", None),
    ):
        before = int(change.old.get(cursor) or 0)
        after = int(change.new.get(cursor) or 0)
        if after <= before:
            continue
        if before == after - 1 == int(change.new.get("sentSeq") or 0) - 1:
            continue  # the member's send moved it over her own message only: nothing to count
        # Cursors are cumulative: (before, after] were delivered (read) just now, minus the
        # user's own messages (their other devices ack those too).
        received = [
            m for m in lookups.messages(conversation_id, before, after) if m.sender_id != user
        ]
        # ``ackedAt``/``readAt`` (ms) when the item records it; else the stream's time.
        at_ms = int(change.new.get(cursor.replace("Seq", "At")) or change.at_ms)
        contribution = Contribution(
            marker=f"{cursor}#{conversation_id}#{user}#{before}#{after}",
            at_ms=at_ms,
            counters={counter: len(received)},
        )
        if latency:
            contribution.latencies[latency] = [max(0, at_ms - m.created_at) for m in received]
        found.append(contribution)
    return found


# ---------------------------------------------------------------------- offline delivery
def notifications(change: StreamChange, _: Lookups) -> list[Contribution]:
    if change.event_name != "INSERT" or change.new.get("kind") != "message":
        return []
    item = change.new
    return [
        Contribution(
            marker=f"notif#{item['userId']}#{item['notificationId']}",
            at_ms=int(item.get("createdAt") or change.at_ms),
            counters={"offlineDeliveries": 1},
        )
    ]


# ---------------------------------------------------------------------- typing
def rate_limits(change: StreamChange, _: Lookups) -> list[Contribution]:
    """An accepted ``typing:start`` is a new window on ``typing#<userId>#<conversationId>``."""
    key = str(change.new.get("key", ""))
    if change.event_name not in ("INSERT", "MODIFY") or not key.startswith("typing#"):
        return []
    if "windowStart" not in change.new:
        return []  # (moto also streams a keys-only INSERT before an update's first write)
    window = int(change.new["windowStart"])
    if window == int(change.old.get("windowStart") or -1):
        return []
    user = key.removeprefix("typing#").rsplit("#", 1)[0]
    return [
        Contribution(
            marker=f"{key}#{window}",
            at_ms=window or change.at_ms,
            counters={"typingEvents": 1},
            users={user: {"typingEvents": 1}},
            session_counts=_session(user, change.new.get("connectionId"), "typingEvents"),
        )
    ]


# ---------------------------------------------------------------------- calls
CALL_DURATION_MS = "callDurationMs"
CALL_ANSWER_MS = "callAnswerMs"
_CALL_OUTCOMES = {
    "active": "callsAnswered",
    "rejected": "callsRejected",
    "missed": "callsMissed",
    "cancelled": "callsCancelled",
    "busy": "callsBusy",
    "ended": "callsEnded",
}


def calls(change: StreamChange, _: Lookups) -> list[Contribution]:
    """``call#<callId>`` items (calls/repository.py): an INSERT is an attempt; each state a call
    reaches (a state machine: every state at most once) is counted once."""
    item = change.new
    if change.event_name not in ("INSERT", "MODIFY") or item.get("kind") != "call":
        return []
    call_id = str(item["callId"])
    found: list[Contribution] = []
    if change.event_name == "INSERT":
        found.append(
            Contribution(
                marker=f"call+#{call_id}",
                at_ms=int(item.get("createdAt") or change.at_ms),
                counters={"callAttempts": 1},
                users={str(item["callerId"]): {"callsStarted": 1}},
            )
        )
    state, before = str(item.get("state", "")), str(change.old.get("state", ""))
    outcome = _CALL_OUTCOMES.get(state)
    if outcome is None or state == before:
        return found
    at_ms = int(item.get("endedAt") or item.get("answeredAt") or change.at_ms)
    contribution = Contribution(marker=f"call#{call_id}#{state}", at_ms=at_ms)
    contribution.counters[outcome] = 1
    if state == "active":
        contribution.gauges["activeCalls"] = 1
        answered, created = item.get("answeredAt"), item.get("createdAt")
        if answered and created:
            contribution.latencies[CALL_ANSWER_MS] = [max(0, int(answered) - int(created))]
    elif before == "active":  # an answered call is over
        contribution.gauges["activeCalls"] = -1
        duration = int(item.get("durationMs") or 0)
        contribution.counters["callTimeMs"] = duration
        contribution.latencies[CALL_DURATION_MS] = [duration]
    found.append(contribution)
    return found


# ---------------------------------------------------------------------- uploads
_UPLOAD_OUTCOMES = {  # final state -> (counter, timestamp attribute)
    "complete": ("uploadsCompleted", "completedAt"),
    "failed": ("uploadsFailed", "failedAt"),
    "aborted": ("uploadsAborted", "abortedAt"),
}


def uploads(change: StreamChange, _: Lookups) -> list[Contribution]:
    """Upload records (dal/uploads.py): started on INSERT, then their final state."""
    item = change.new
    if change.event_name not in ("INSERT", "MODIFY") or "uploadId" not in item:
        return []
    upload_id, owner = str(item["uploadId"]), str(item.get("ownerId", ""))
    found: list[Contribution] = []
    if change.event_name == "INSERT":
        found.append(
            Contribution(
                marker=f"upload+#{upload_id}",
                at_ms=int(item.get("createdAt") or change.at_ms),
                counters={"uploadsStarted": 1},
            )
        )
    state = str(item.get("state", ""))
    outcome = _UPLOAD_OUTCOMES.get(state)
    if outcome is None or state == change.old.get("state"):
        return found
    counter, stamp = outcome
    at_ms = int(item.get(stamp) or item.get("updatedAt") or change.at_ms)
    contribution = Contribution(
        marker=f"upload#{upload_id}#{state}", at_ms=at_ms, counters={counter: 1}
    )
    if state == "complete":
        stored = item.get("storedSize") or item.get("bytes") or item.get("size") or 0
        contribution.counters["uploadBytes"] = int(stored)
        if owner:
            contribution.users[owner] = {"uploads": 1, "uploadBytes": int(stored)}
    found.append(contribution)
    return found


def contributions(
    change: StreamChange, sources: Mapping[str, Handler], lookups: Lookups
) -> list[Contribution]:
    handler = sources.get(change.table)
    if handler is None:
        raise UnknownSource(change.table)
    return [c for c in handler(change, lookups) if not c.is_empty()]


class UnknownSource(Exception):
    """A record from a table no handler is registered for (a template/config mismatch)."""
