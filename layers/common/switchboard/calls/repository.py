"""Calls table: one item per call and one "active call" item per user in a call.

- ``call#<callId>``  (``kind: "call"``): state, media, callerId, group, conversationId,
  participants (userId -> role, state, in-call connectionId, timestamps, reason),
  participantIds, createdAt/answeredAt/endedAt, endReason, durationMs, the 1:1 offer and
  the ICE candidates kept for a participant who has not answered yet, the pairs a block
  made during the call keeps apart (``apart``), and ``version``.
  Every transition is a write conditioned on the version it read, so concurrent
  transitions (two devices answering) cannot both win. The table's stream
  (NEW_AND_OLD_IMAGES) feeds the analytics: attempts, answered, missed, rejected, busy,
  durations all come from these items.
- ``active#<userId>`` (``kind: "active"``): the call the user is in (ringing counts).
  Taken with ``attribute_not_exists`` in the same transaction that creates the call or
  invites the user, so "busy" is decided atomically; released in the transaction that
  ends the user's part. ``expiresAt`` bounds it (ring timeout + margin while ringing,
  beyond the 2 h connection lifetime once joined) so a lost event cannot hold a user
  forever: an expired item counts as free even before TTL deletes it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from switchboard.calls.model import Call, CallState, Participant, PartState
from switchboard.dal.base import DynamoRepository
from switchboard.dal.items import (
    from_item,
    is_condition_failure,
    to_item,
    write_token,
)
from switchboard.dal.transactions import Transaction

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

CALL = "call#"
ACTIVE = "active#"
_FREE = "attribute_not_exists(pk) OR expiresAt < :now"


class StaleCall(Exception):
    """The stored call changed since it was read (its version moved): read it again."""


class CallRepository(DynamoRepository):
    def __init__(
        self, table_name: str, *, retention_days: int = 30, client: DynamoDBClient | None = None
    ) -> None:
        super().__init__(table_name, client=client)
        self._retention_seconds = retention_days * 86400

    def get(self, call_id: str) -> Call | None:
        response = self.client.get_item(
            TableName=self.table, Key={"pk": {"S": CALL + call_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        return _call(from_item(item)) if item else None

    def active_call_id(self, user_id: str, now_ms: int) -> str | None:
        response = self.client.get_item(
            TableName=self.table, Key={"pk": {"S": ACTIVE + user_id}}, ConsistentRead=True
        )
        item = from_item(response.get("Item") or {})
        if not item or int(item.get("expiresAt", 0)) < now_ms // 1000:
            return None
        return str(item["callId"])

    def create(self, call: Call, ringing_until: int) -> list[str]:
        """Stores a new call and takes every participant's active-call item, atomically.
        Returns the users already in a call (then nothing is written)."""
        users = list(call.participants)
        now_s = call.created_at // 1000
        token = write_token()
        tx = Transaction()
        tx.put(
            "call",
            {
                "TableName": self.table,
                "Item": {**self._item(call), "lastOp": {"S": token}},
                "ConditionExpression": "attribute_not_exists(pk)",
            },
        )
        for user_id in users:
            tx.put(f"active:{user_id}", self._take(user_id, call.call_id, ringing_until, now_s))
        try:
            tx.write(self.client)
        except (ClientError, BotoCoreError) as exc:
            if self._landed(call.call_id, token):
                return []  # our write landed; only its answer was lost
            if not isinstance(exc, ClientError) or not tx.reasons(exc):
                raise
            return _users_of(tx.refused(exc))
        return []

    def record(self, call: Call) -> None:
        """A call that holds nobody (a refused attempt, kept for the statistics)."""
        self.client.put_item(TableName=self.table, Item=self._item(call))

    def save(
        self,
        call: Call,
        *,
        expected_version: int,
        now_ms: int,
        release: Iterable[str] = (),
        acquire: Iterable[str] = (),
        hold: Iterable[str] = (),
        ringing_until: int = 0,
        in_call_until: int = 0,
    ) -> list[str]:
        """Writes ``call`` if its stored version is still ``expected_version`` (else raises
        StaleCall), with the active-call items of the users it affects. Returns the users
        of ``acquire`` who turned out to be busy (then nothing is written)."""
        now_s = now_ms // 1000
        token = write_token()
        call_put: dict[str, Any] = {
            "TableName": self.table,
            "Item": {**self._item(call), "lastOp": {"S": token}},
            "ConditionExpression": "version = :v",
            "ExpressionAttributeValues": {":v": {"N": str(expected_version)}},
        }
        tx = Transaction()
        tx.put("call", call_put)
        for user_id in acquire:
            tx.put(f"active:{user_id}", self._take(user_id, call.call_id, ringing_until, now_s))
        for user_id in hold:
            tx.put(
                f"active:{user_id}",
                {
                    "TableName": self.table,
                    "Item": _active(user_id, call.call_id, in_call_until),
                    "ConditionExpression": "attribute_not_exists(pk) OR callId = :c",
                    "ExpressionAttributeValues": {":c": {"S": call.call_id}},
                },
            )
        for user_id in release:
            # Unconditional: the user's part is over whatever the item says.
            tx.delete(
                f"release:{user_id}",
                {"TableName": self.table, "Key": {"pk": {"S": ACTIVE + user_id}}},
            )
        try:
            if len(tx) == 1:
                self.client.put_item(**call_put)
                return []
            tx.write(self.client)
        except (ClientError, BotoCoreError) as exc:
            if self._landed(call.call_id, token):
                return []  # our write landed; only its answer was lost
            if not isinstance(exc, ClientError):
                raise
            if is_condition_failure(exc):
                raise StaleCall(call.call_id) from None
            if not tx.reasons(exc):
                raise
            refused = tx.refused(exc)
            if "call" in refused:
                raise StaleCall(call.call_id) from None
            # Someone's active-call item belongs to another call: that user is busy.
            busy = _users_of(refused)
            if busy:
                return busy
            raise
        return []

    def _landed(self, call_id: str, token: str) -> bool:
        return self.wrote({"pk": {"S": CALL + call_id}}, token)

    def _item(self, call: Call) -> dict[str, Any]:
        return _item(call, call.created_at // 1000 + self._retention_seconds)

    def _take(self, user_id: str, call_id: str, until: int, now_s: int) -> dict[str, Any]:
        return {
            "TableName": self.table,
            "Item": _active(user_id, call_id, until),
            "ConditionExpression": _FREE,
            "ExpressionAttributeValues": {":now": {"N": str(now_s)}},
        }


def _users_of(labels: Iterable[str]) -> list[str]:
    """The users whose ``active:<userId>`` item refused."""
    return [label.removeprefix("active:") for label in labels if label.startswith("active:")]


def _active(user_id: str, call_id: str, until: int) -> dict[str, Any]:
    return to_item(
        {
            "pk": ACTIVE + user_id,
            "kind": "active",
            "userId": user_id,
            "callId": call_id,
            "expiresAt": until,
        }
    )


def _item(call: Call, expires_at: int) -> dict[str, Any]:
    values: dict[str, Any] = {
        "pk": CALL + call.call_id,
        "kind": "call",
        "callId": call.call_id,
        "state": call.state.value,
        "media": call.media,
        "callerId": call.caller_id,
        "group": call.group,
        "conversationId": call.conversation_id,
        "participantIds": list(call.participants),
        "participantCount": len(call.participants),
        "participants": {
            u: {
                k: v
                for k, v in {
                    "role": p.role,
                    "state": p.state.value,
                    "invitedAt": p.invited_at,
                    "connectionId": p.connection_id,
                    "joinedAt": p.joined_at,
                    "leftAt": p.left_at,
                    "reason": p.reason,
                    "audio": p.audio,
                    "video": p.video,
                    "screen": p.screen,
                }.items()
                if v is not None
            }
            for u, p in call.participants.items()
        },
        "createdAt": call.created_at,
        "answeredAt": call.answered_at,
        "endedAt": call.ended_at,
        "endReason": call.end_reason,
        "durationMs": call.duration_ms,
        "offer": json.dumps(call.offer) if call.offer is not None else None,
        "pendingIce": json.dumps(call.pending_ice) if call.pending_ice else None,
        "apart": json.dumps(call.apart) if call.apart else None,
        "recording": list(call.recording) or None,
        "recordedBy": list(call.recorded_by) or None,
        "recordingStarts": call.recording_starts or None,
        "recordingSince": call.recording_since or None,
        "recordedMs": call.recorded_ms or None,
        "version": call.version,
        "expiresAt": expires_at,
    }
    return to_item(values)


def _call(item: dict[str, Any]) -> Call:
    participants = {
        u: Participant(
            user_id=u,
            role=str(p["role"]),
            state=PartState(p["state"]),
            invited_at=int(p["invitedAt"]),
            connection_id=p.get("connectionId"),
            joined_at=p.get("joinedAt"),
            left_at=p.get("leftAt"),
            reason=p.get("reason"),
            audio=bool(p.get("audio", True)),
            video=bool(p.get("video", item["media"] == "video")),
            screen=bool(p.get("screen", False)),
        )
        for u, p in item["participants"].items()
    }
    # DynamoDB maps do not keep order: the caller first, then by invitation time.
    ordered = dict(
        sorted(
            participants.items(), key=lambda kv: (kv[1].role != "caller", kv[1].invited_at, kv[0])
        )
    )
    return Call(
        call_id=str(item["callId"]),
        caller_id=str(item["callerId"]),
        media=str(item["media"]),
        group=bool(item["group"]),
        state=CallState(item["state"]),
        created_at=int(item["createdAt"]),
        participants=ordered,
        conversation_id=item.get("conversationId"),
        offer=json.loads(item["offer"]) if item.get("offer") else None,
        answered_at=item.get("answeredAt"),
        ended_at=item.get("endedAt"),
        end_reason=item.get("endReason"),
        pending_ice=json.loads(item["pendingIce"]) if item.get("pendingIce") else {},
        apart=tuple((a, b) for a, b in json.loads(item["apart"])) if item.get("apart") else (),
        recording=tuple(item.get("recording") or ()),
        recorded_by=tuple(item.get("recordedBy") or ()),
        recording_starts=int(item.get("recordingStarts") or 0),
        recording_since={u: int(t) for u, t in (item.get("recordingSince") or {}).items()},
        recorded_ms={u: int(t) for u, t in (item.get("recordedMs") or {}).items()},
        version=int(item["version"]),
    )
