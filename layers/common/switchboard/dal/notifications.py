"""Notifications table: PK userId, SK notificationId (time-ordered), TTL 30 days."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from switchboard.dal.base import DynamoRepository
from switchboard.dal.items import from_item, is_condition_failure, to_item

if TYPE_CHECKING:
    from switchboard.wire import messaging as wire

RETENTION_SECONDS = 30 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Notification:
    user_id: str
    notification_id: str  # "<createdAt ms, 13 digits>#<source key>": sorts by time
    kind: str
    data: dict[str, Any]
    created_at: int
    read: bool = False

    def wire(self) -> wire.Notification:
        from switchboard.wire.messaging import Notification

        return Notification(
            notificationId=self.notification_id,
            kind=self.kind,
            data=self.data,
            createdAt=self.created_at,
            read=self.read,
        )


class NotificationRepository(DynamoRepository):
    """See the module docstring."""

    def add(self, notification: Notification) -> bool:
        """Idempotent on notificationId: False if it was already recorded (a retried job)."""
        try:
            self.client.put_item(
                TableName=self.table,
                Item=to_item(
                    {
                        "userId": notification.user_id,
                        "notificationId": notification.notification_id,
                        "kind": notification.kind,
                        "data": notification.data,
                        "createdAt": notification.created_at,
                        "read": notification.read,
                        "expiresAt": notification.created_at // 1000 + RETENTION_SECONDS,
                    }
                ),
                ConditionExpression="attribute_not_exists(notificationId)",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def page(
        self, user_id: str, limit: int, before: str | None = None, unread_only: bool = False
    ) -> list[Notification]:
        values: dict[str, Any] = {":u": {"S": user_id}}
        condition = "userId = :u"
        if before:
            condition += " AND notificationId < :b"
            values[":b"] = {"S": before}
        query: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if unread_only:
            query["FilterExpression"] = "#r = :false"
            query["ExpressionAttributeNames"] = {"#r": "read"}
            values[":false"] = {"BOOL": False}
        # DynamoDB applies Limit before the filter: keep reading until the page is full
        # or the user's notifications are exhausted, so a short page means "no more".
        found: list[Notification] = []
        while True:
            response = self.client.query(**query)
            found += [_notification(from_item(i)) for i in response["Items"]]
            last = response.get("LastEvaluatedKey")
            if len(found) >= limit or not last:
                return found[:limit]
            query["ExclusiveStartKey"] = last
            query["Limit"] = limit - len(found) if not unread_only else limit

    def mark_read(self, user_id: str, notification_ids: list[str]) -> int:
        """Marks the user's own notifications read; ids of others simply do not match."""
        marked = 0
        for notification_id in notification_ids:
            try:
                self.client.update_item(
                    TableName=self.table,
                    Key={"userId": {"S": user_id}, "notificationId": {"S": notification_id}},
                    UpdateExpression="SET #r = :true",
                    ConditionExpression="attribute_exists(notificationId)",
                    ExpressionAttributeNames={"#r": "read"},
                    ExpressionAttributeValues={":true": {"BOOL": True}},
                )
                marked += 1
            except ClientError as exc:
                if not is_condition_failure(exc):
                    raise
        return marked


def _notification(item: dict[str, Any]) -> Notification:
    return Notification(
        user_id=item["userId"],
        notification_id=item["notificationId"],
        kind=item.get("kind", ""),
        data=item.get("data", {}),
        created_at=int(item.get("createdAt", 0)),
        read=bool(item.get("read", False)),
    )
