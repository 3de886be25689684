"""RateLimits table: small time-window markers shared by every Lambda instance
(one conditional write decides; TTL cleans up)."""

from __future__ import annotations

from botocore.exceptions import ClientError

from switchboard.dal.base import DynamoRepository
from switchboard.dal.items import is_condition_failure


class WindowLimiter(DynamoRepository):
    """See the module docstring."""

    def acquire(self, key: str, now_ms: int, window_ms: int) -> bool:
        """True at most once per ``window_ms`` for ``key`` (the caller may act), else False."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"key": {"S": key}},
                UpdateExpression="SET windowStart = :now, expiresAt = :exp",
                ConditionExpression="attribute_not_exists(windowStart) OR windowStart <= :cutoff",
                ExpressionAttributeValues={
                    ":now": {"N": str(now_ms)},
                    ":cutoff": {"N": str(now_ms - window_ms)},
                    ":exp": {"N": str((now_ms + window_ms) // 1000 + 60)},
                },
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
