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
# notification:list with unreadOnly: Queries per frame, and items each reads (read ones
# are read and filtered out).
PAGE_QUERIES = 3
UNREAD_READ_AHEAD = 100


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
    ) -> tuple[list[Notification], str | None]:
        """Up to ``limit`` notifications older than ``before``, newest first, and the
        cursor to go on from (None: no more). ``unread_only`` filters out read ones, which
        DynamoDB still reads: at most PAGE_QUERIES Queries of UNREAD_READ_AHEAD items, so a
        page may come back short (even empty) with a cursor past what was read."""
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
            "Limit": max(limit, UNREAD_READ_AHEAD) if unread_only else limit,
        }
        if unread_only:
            query["FilterExpression"] = "#r = :false"
            query["ExpressionAttributeNames"] = {"#r": "read"}
            values[":false"] = {"BOOL": False}
        # DynamoDB applies Limit before the filter: read on until the page is full, the
        # user's notifications are exhausted or the frame's Queries are spent (each read
        # notification costs a read; a user may have thousands in 30 days).
        found: list[Notification] = []
        resume: str | None = None
        for _ in range(PAGE_QUERIES):
            response = self.client.query(**query)
            found += [_notification(from_item(i)) for i in response["Items"]]
            last = response.get("LastEvaluatedKey")
            if len(found) >= limit:
                return found[:limit], found[limit - 1].notification_id
            if not last:
                return found, None
            query["ExclusiveStartKey"] = last
            resume = last["notificationId"]["S"]
            if not unread_only:
                query["Limit"] = limit - len(found)
        return found, resume

    def mark_read(self, user_id: str, notification_ids: list[str]) -> int:
        """Marks the user's own unread notifications read; ids of others simply do not
        match. One BatchGetItem finds which of them are the user's and unread: only those
        are written (a frame of 100 made-up or already read ids was 100 writes)."""
        keys = [
            {"userId": {"S": user_id}, "notificationId": {"S": n}}
            for n in dict.fromkeys(notification_ids)  # a BatchGetItem refuses duplicates
        ]
        unread: list[str] = []
        request: dict[str, Any] = {
            self.table: {
                "Keys": keys,
                "ProjectionExpression": "notificationId, #r",
                "ExpressionAttributeNames": {"#r": "read"},
            }
        }
        while request:
            response = self.client.batch_get_item(RequestItems=request)
            unread += [
                item["notificationId"]["S"]
                for item in response["Responses"].get(self.table, [])
                if not item.get("read", {}).get("BOOL", False)
            ]
            request = dict(response.get("UnprocessedKeys") or {})
        marked = 0
        for notification_id in unread:
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
