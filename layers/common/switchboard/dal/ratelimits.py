"""RateLimits table: small time-window markers shared by every Lambda instance
(one conditional write decides; TTL cleans up)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from switchboard.dal.base import DynamoRepository
from switchboard.dal.items import is_condition_failure, outcome_unknown
from switchboard.observability import logger


class WindowLimiter(DynamoRepository):
    """See the module docstring."""

    def acquire(self, key: str, now_ms: int, window_ms: int, connection_id: str = "") -> bool:
        """True at most once per ``window_ms`` for ``key`` (the caller may act), else False.
        ``connection_id`` is recorded on the window (who opened it, for analytics)."""
        values = {
            ":now": {"N": str(now_ms)},
            ":cutoff": {"N": str(now_ms - window_ms)},
            ":exp": {"N": str((now_ms + window_ms) // 1000 + 60)},
        }
        update = "SET windowStart = :now, expiresAt = :exp"
        if connection_id:
            values[":conn"] = {"S": connection_id}
            update += ", connectionId = :conn"
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"key": {"S": key}},
                UpdateExpression=update,
                ConditionExpression="attribute_not_exists(windowStart) OR windowStart <= :cutoff",
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def force(self, key: str, now_ms: int, window_ms: int) -> None:
        """Starts a window now, whatever the previous one was."""
        self.client.put_item(
            TableName=self.table,
            Item={
                "key": {"S": key},
                "windowStart": {"N": str(now_ms)},
                "expiresAt": {"N": str((now_ms + window_ms) // 1000 + 60)},
            },
        )

    def release(self, key: str) -> None:
        self.client.delete_item(TableName=self.table, Key={"key": {"S": key}})


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``limit`` hits per ``window_seconds`` for ``key`` (e.g. ``send#user#alice``)."""

    key: str
    limit: int
    window_seconds: int

    def window(self, now_ms: int) -> int:
        return now_ms // (self.window_seconds * 1000)

    def retry_after_ms(self, now_ms: int) -> int:
        return (self.window(now_ms) + 1) * self.window_seconds * 1000 - now_ms


class RateLimiter(DynamoRepository):
    """Fixed-window counters in the RateLimits table, shared by every Lambda instance: one
    conditional ADD decides, and TTL removes old windows. ``update`` is that write as an
    item of the caller's own transaction, so a limit on a write costs no extra call;
    ``consume`` is the same write on its own (an action with no transaction to join)."""

    def consume(self, rule: RateLimit, now_ms: int) -> bool:
        """Counts one hit; False (nothing counted) if the window is full.

        A counter whose every answer was lost has counted (botocore's retries each landed
        too, which only over-counts): the caller goes on, and the action's own writes
        report a table that is really failing. Refusing instead would turn a lost answer
        on a counter into ``internal`` for an action that never ran."""
        try:
            self.client.update_item(**self.update(rule, now_ms))
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            if outcome_unknown(exc):
                logger.warning("rate-limit count answer lost: counted", extra={"key": rule.key})
                return True
            raise
        return True

    def update(self, rule: RateLimit, now_ms: int) -> dict[str, Any]:
        window = rule.window(now_ms)
        return {
            "TableName": self.table,
            "Key": {"key": {"S": f"{rule.key}#{window}"}},
            "UpdateExpression": "ADD hits :one SET expiresAt = :exp",
            "ConditionExpression": "attribute_not_exists(hits) OR hits < :limit",
            "ExpressionAttributeValues": {
                ":one": {"N": "1"},
                ":limit": {"N": str(rule.limit)},
                ":exp": {"N": str((window + 2) * rule.window_seconds + 60)},
            },
        }

    def update_together(self, rules: Sequence[RateLimit], now_ms: int) -> dict[str, Any]:
        """``update`` of several rules of one action in ONE item: the first rule's window
        item counts the first rule in ``hits`` and each other rule in an attribute of its
        own (``hits:<key>``), all ADDed by one Update conditioned on every count being
        under its limit. The rules must share a window length. One item instead of one per
        rule: in a transaction, 2 write units fewer per extra rule."""
        first = rules[0]
        if any(rule.window_seconds != first.window_seconds for rule in rules):
            raise ValueError("rules counted together must share their window length")
        window = first.window(now_ms)
        names: dict[str, str] = {}
        values: dict[str, Any] = {
            ":one": {"N": "1"},
            ":exp": {"N": str((window + 2) * first.window_seconds + 60)},
        }
        adds, conditions = [], []
        for i, rule in enumerate(rules):
            names[f"#h{i}"] = "hits" if i == 0 else f"hits:{rule.key}"
            values[f":limit{i}"] = {"N": str(rule.limit)}
            adds.append(f"#h{i} :one")
            conditions.append(f"(attribute_not_exists(#h{i}) OR #h{i} < :limit{i})")
        return {
            "TableName": self.table,
            "Key": {"key": {"S": f"{first.key}#{window}"}},
            "UpdateExpression": "ADD " + ", ".join(adds) + " SET expiresAt = :exp",
            "ConditionExpression": " AND ".join(conditions),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
