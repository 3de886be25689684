"""Connections table: connectionId -> userId, connectedAt, tokenExp, device; GSI byUser.

Opening and closing a connection also maintains the user's presence set in the Users
table, in the same transaction, so the two can never disagree."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from switchboard.dal.base import DynamoRepository
from switchboard.dal.items import is_condition_failure
from switchboard.dal.ratelimits import RateLimit
from switchboard.dal.transactions import Transaction
from switchboard.dal.users import UserRepository

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from switchboard.dal.ratelimits import RateLimiter


@dataclass(frozen=True, slots=True)
class Connection:
    connection_id: str
    user_id: str
    connected_at: int  # epoch milliseconds
    token_exp: int
    roles: frozenset[str] = frozenset()
    token_iat: int = 0
    device: str = ""
    source_ip: str = ""
    backlog_batch: bool = False


class TooManyConnections(Exception):
    """The user already holds the most connections a user may hold."""


class TooManyConnects(TooManyConnections):
    """The user opened the most connections a user may open in a minute."""


class TokenRevoked(Exception):
    """The token was issued before the user's sessions were revoked."""


class ConnectionRepository(DynamoRepository):
    def __init__(
        self,
        table_name: str,
        users: UserRepository,
        *,
        ttl_seconds: int = 7800,
        max_per_user: int = 0,
        connect_limit: tuple[RateLimiter, int] | None = None,
        client: DynamoDBClient | None = None,
    ) -> None:
        super().__init__(table_name, client=client)
        self._users = users
        self._ttl = ttl_seconds
        self._max_per_user = max_per_user
        # (limiter, connects a user may open a minute): each first connection of a user
        # sets off presence to all their contacts and the backlog, so connecting and
        # disconnecting in a loop would be an amplifier (one handshake, up to 500 pushes).
        self._connect_limit = connect_limit

    def put(self, connection: Connection) -> None:
        item: dict[str, Any] = {
            "connectionId": {"S": connection.connection_id},
            "userId": {"S": connection.user_id},
            "connectedAt": {"N": str(connection.connected_at)},
            "tokenExp": {"N": str(connection.token_exp)},
            # For the revocation re-check on the connection's first stream record.
            "tokenIat": {"N": str(connection.token_iat)},
            "expiresAt": {"N": str(connection.connected_at // 1000 + self._ttl)},
        }
        if connection.roles:
            item["roles"] = {"SS": sorted(connection.roles)}
        if connection.device:
            item["device"] = {"S": connection.device[:256]}
        if connection.source_ip:
            item["sourceIp"] = {"S": connection.source_ip}
        if connection.backlog_batch:
            item["backlogBatch"] = {"BOOL": True}
        for attempt in range(2):
            tx = Transaction()
            tx.put("connection", {"TableName": self.table, "Item": item})
            tx.update(
                "user",
                self._users.add_connection_update(
                    connection.user_id,
                    connection.connection_id,
                    self._max_per_user,
                    issued_at=connection.token_iat,
                ),
            )
            if self._connect_limit is not None:
                # Counted in the connect's own transaction: a refused connect counts nothing.
                limiter, per_minute = self._connect_limit
                rule = RateLimit(f"connect#user#{connection.user_id}", per_minute, 60)
                tx.update("rate", limiter.update(rule, connection.connected_at))
            try:
                tx.write(self.client)
            except ClientError as exc:
                refused = tx.refused(exc)
                if "rate" in refused:
                    raise TooManyConnects(connection.user_id) from None
                if "user" not in refused:
                    raise
                # The user's item refused: revoked after the authorizer looked (a race
                # the condition closes), or full - perhaps of ids whose $disconnect never
                # came: those are pruned and the connect tried once more.
                if connection.token_iat < self._users.tokens_valid_after(connection.user_id):
                    raise TokenRevoked(connection.user_id) from None
                if attempt or not self.prune_stale(
                    connection.user_id, now_ms=connection.connected_at
                ):
                    raise TooManyConnections(connection.user_id) from None
            else:
                return

    def prune_stale(self, user_id: str, *, now_ms: int) -> int:
        """Removes from the user's presence set the ids with no live connection item
        (gone, or past their TTL but not deleted yet); how many were removed."""
        ids = sorted(self._users.connection_ids(user_id))
        live: set[str] = set()
        for start in range(0, len(ids), 100):
            request: dict[str, Any] = {
                self.table: {
                    "Keys": [{"connectionId": {"S": i}} for i in ids[start : start + 100]],
                    "ProjectionExpression": "connectionId, expiresAt",
                    "ConsistentRead": True,
                }
            }
            while request:
                response = self.client.batch_get_item(RequestItems=request)
                live |= {
                    found["connectionId"]["S"]
                    for found in response["Responses"].get(self.table, [])
                    if int(found.get("expiresAt", {"N": "0"})["N"]) * 1000 > now_ms
                }
                request = dict(response.get("UnprocessedKeys") or {})
        stale = [i for i in ids if i not in live]
        for connection_id in stale:
            self._users.remove_connection(user_id, connection_id, now_ms)
        return len(stale)

    def delete(self, connection_id: str, user_id: str, now_ms: int) -> None:
        """Idempotent: closing a connection that is already gone is not an error."""
        self.client.transact_write_items(
            TransactItems=[
                {
                    "Delete": {
                        "TableName": self.table,
                        "Key": {"connectionId": {"S": connection_id}},
                    }
                },
                {
                    "Update": self._users.remove_connection_update(  # type: ignore[typeddict-item]
                        user_id, connection_id, now_ms
                    )
                },
            ]
        )

    def get(self, connection_id: str) -> Connection | None:
        response = self.client.get_item(
            TableName=self.table, Key={"connectionId": {"S": connection_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        return _from_item(item) if item else None

    def refresh_token(self, connection_id: str, user_id: str, token_exp: int) -> bool:
        """Stores the expiry of a token sent with ``auth:refresh`` (False: the connection
        is gone or is not the user's)."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"connectionId": {"S": connection_id}},
                UpdateExpression="SET refreshedTokenExp = :exp",
                ConditionExpression="userId = :u",
                ExpressionAttributeValues={
                    ":exp": {"N": str(token_exp)},
                    ":u": {"S": user_id},
                },
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def refreshed_token_exp(self, connection_id: str) -> int:
        """The expiry stored by the last ``auth:refresh`` (0 if none); read only once the
        authorizer's token has expired (see ``WebSocketRouter``)."""
        response = self.client.get_item(
            TableName=self.table,
            Key={"connectionId": {"S": connection_id}},
            ProjectionExpression="refreshedTokenExp",
            ConsistentRead=True,
        )
        return int(response.get("Item", {}).get("refreshedTokenExp", {"N": "0"})["N"])

    def for_user(self, user_id: str) -> list[Connection]:
        return self.for_users([user_id]).get(user_id, [])

    def for_users(self, user_ids: Iterable[str]) -> dict[str, list[Connection]]:
        """One Query per user on the byUser index (never a Scan)."""
        found: dict[str, list[Connection]] = {}
        for user_id in dict.fromkeys(user_ids):
            paginator = self.client.get_paginator("query")
            pages = paginator.paginate(
                TableName=self.table,
                IndexName="byUser",
                KeyConditionExpression="userId = :u",
                ExpressionAttributeValues={":u": {"S": user_id}},
            )
            found[user_id] = [_from_item(item) for page in pages for item in page["Items"]]
        return found


def _from_item(item: dict[str, Any]) -> Connection:
    return Connection(
        connection_id=item["connectionId"]["S"],
        user_id=item["userId"]["S"],
        connected_at=int(item.get("connectedAt", {"N": "0"})["N"]),
        token_exp=int(item.get("tokenExp", {"N": "0"})["N"]),
        token_iat=int(item.get("tokenIat", {"N": "0"})["N"]),
        roles=frozenset(item.get("roles", {}).get("SS", [])),
        device=item.get("device", {}).get("S", ""),
        source_ip=item.get("sourceIp", {}).get("S", ""),
        backlog_batch=item.get("backlogBatch", {}).get("BOOL") is True,
    )
