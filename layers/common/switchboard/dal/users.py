"""Users table: presence (the set of a user's live connection ids, lastSeen) and
notification preferences. One item per user, so the connections of every member of a
conversation come back in one BatchGetItem, however many users are connected."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from switchboard.dal.base import DynamoRepository
from switchboard.dal.items import from_item, is_condition_failure, to_item
from switchboard.dal.transactions import Transaction

BATCH_GET_LIMIT = 100


@dataclass(frozen=True, slots=True)
class Presence:
    user_id: str
    connection_ids: frozenset[str]
    last_seen: int  # epoch ms of the last disconnect, 0 if never
    tokens_valid_after: int = 0  # epoch s: tokens issued before were revoked (admin:revoke)
    # Read only when asked (presence(..., consent=True)): see dal/blocks.py.
    blocked: frozenset[str] = frozenset()  # the users this one blocked
    refuses_requests: bool = False  # the preference: no message requests at all

    @property
    def online(self) -> bool:
        return bool(self.connection_ids)


@dataclass(frozen=True, slots=True)
class Preferences:
    email_on_offline: bool = False
    email: str | None = None
    digest_minutes: int = 15
    # Double opt-in: no notification mail goes to an address until its owner typed the
    # code mailed to it. The token makes the mails' one-click unsubscribe link.
    email_verified: bool = False
    unsubscribe_token: str | None = None
    # False: message requests are refused altogether (kept outside ``prefs``, as
    # ``refuseRequests``, so the consent checks project it alone).
    accept_requests: bool = True


@dataclass(frozen=True, slots=True)
class EmailCheck:
    """A pending verification: the address, a hash of the code mailed to it, the code's
    expiry and the wrong guesses so far (stored as the user item's ``emailCheck``)."""

    email: str
    code_hash: str
    expires_at: int  # epoch ms
    attempts: int = 0


class UserRepository(DynamoRepository):
    """See the module docstring."""

    # ------------------------------------------------------------------ presence
    def add_connection_update(
        self, user_id: str, connection_id: str, max_connections: int = 0, *, issued_at: int = 0
    ) -> dict[str, Any]:
        """The Update part of $connect's transaction. It fails (ConditionalCheckFailed)
        when the user already holds ``max_connections`` connections, or when the token
        (issued at ``issued_at``) was revoked - also by a revocation that landed after
        the authorizer looked, since both write this item."""
        conditions = ["(attribute_not_exists(tokensValidAfter) OR tokensValidAfter <= :iat)"]
        values: dict[str, Any] = {":c": {"SS": [connection_id]}, ":iat": {"N": str(issued_at)}}
        if max_connections:
            conditions.append("(attribute_not_exists(connectionIds) OR size(connectionIds) < :max)")
            values[":max"] = {"N": str(max_connections)}
        return {
            "TableName": self.table,
            "Key": {"userId": {"S": user_id}},
            "UpdateExpression": "ADD connectionIds :c",
            "ConditionExpression": " AND ".join(conditions),
            "ExpressionAttributeValues": values,
        }

    def remove_connection_update(
        self, user_id: str, connection_id: str, now_ms: int
    ) -> dict[str, Any]:
        return {
            "TableName": self.table,
            "Key": {"userId": {"S": user_id}},
            "UpdateExpression": "DELETE connectionIds :c SET lastSeen = :now",
            "ExpressionAttributeValues": {
                ":c": {"SS": [connection_id]},
                ":now": {"N": str(now_ms)},
            },
        }

    def remove_connection(self, user_id: str, connection_id: str, now_ms: int) -> bool:
        """Removes a connection that is still in the set (a missed $disconnect); False if
        it was already gone, in which case lastSeen keeps the real disconnect time."""
        update = self.remove_connection_update(user_id, connection_id, now_ms)
        update["ExpressionAttributeValues"][":id"] = {"S": connection_id}
        try:
            self.client.update_item(**update, ConditionExpression="contains(connectionIds, :id)")
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def presence(self, user_ids: Iterable[str], *, consent: bool = False) -> dict[str, Presence]:
        """Presence of each user (users never seen are offline), BatchGetItem in 100s.
        ``consent``: also each one's block list and requests preference (same call)."""
        wanted = list(dict.fromkeys(user_ids))
        projection = "userId, connectionIds, lastSeen, tokensValidAfter"
        if consent:
            projection += ", blocked, refuseRequests"
        found = {item["userId"]: item for item in self._batch_get(wanted, projection)}
        return {
            user_id: Presence(
                user_id=user_id,
                connection_ids=frozenset(found.get(user_id, {}).get("connectionIds", ())),
                last_seen=int(found.get(user_id, {}).get("lastSeen", 0)),
                tokens_valid_after=int(found.get(user_id, {}).get("tokensValidAfter", 0)),
                blocked=frozenset(found.get(user_id, {}).get("blocked", ())),
                refuses_requests=bool(found.get(user_id, {}).get("refuseRequests", False)),
            )
            for user_id in wanted
        }

    # ------------------------------------------------------------------ revocation
    def revoke_tokens(self, user_id: str, now_s: int) -> None:
        """Tokens issued before ``now_s`` stop opening connections and refreshing them."""
        self.client.update_item(
            TableName=self.table,
            Key={"userId": {"S": user_id}},
            UpdateExpression="SET tokensValidAfter = :now",
            ExpressionAttributeValues={":now": {"N": str(now_s)}},
        )

    def connection_ids(self, user_id: str) -> frozenset[str]:
        """The user's live connection ids, read consistently (presence() may lag)."""
        response = self.client.get_item(
            TableName=self.table,
            Key={"userId": {"S": user_id}},
            ProjectionExpression="connectionIds",
            ConsistentRead=True,
        )
        return frozenset(from_item(response.get("Item", {})).get("connectionIds", ()))

    def tokens_valid_after(self, user_id: str) -> int:
        """Epoch seconds before which the user's tokens are revoked (0: none revoked)."""
        response = self.client.get_item(
            TableName=self.table,
            Key={"userId": {"S": user_id}},
            ProjectionExpression="tokensValidAfter",
            ConsistentRead=True,
        )
        return int(from_item(response.get("Item", {})).get("tokensValidAfter", 0))

    # ------------------------------------------------------------------ preferences
    def preferences(self, user_id: str) -> Preferences:
        response = self.client.get_item(
            TableName=self.table,
            Key={"userId": {"S": user_id}},
            ProjectionExpression="prefs, refuseRequests",
        )
        item = from_item(response.get("Item", {}))
        prefs = item.get("prefs") or {}
        return Preferences(
            email_on_offline=bool(prefs.get("emailOnOffline", False)),
            email=prefs.get("email"),
            digest_minutes=int(prefs.get("digestMinutes", 15)),
            email_verified=bool(prefs.get("emailVerified", False)),
            unsubscribe_token=prefs.get("unsubscribeToken"),
            accept_requests=not item.get("refuseRequests", False),
        )

    def set_preferences(
        self,
        user_id: str,
        preferences: Preferences,
        check: EmailCheck | None = None,
        guards: Sequence[dict[str, Any]] = (),
    ) -> int | None:
        """Stores the preferences (with a new pending verification, if ``check``) in one
        transaction with ``guards`` (rate-limit counters): the index of the first guard
        that refused (nothing stored), or None once stored."""
        prefs = to_item(
            {
                "emailOnOffline": preferences.email_on_offline,
                "email": preferences.email,
                "digestMinutes": preferences.digest_minutes,
                "emailVerified": preferences.email_verified,
                "unsubscribeToken": preferences.unsubscribe_token,
            }
        )
        update: dict[str, Any] = {
            "TableName": self.table,
            "Key": {"userId": {"S": user_id}},
            "UpdateExpression": "SET prefs = :p, refuseRequests = :r",
            "ExpressionAttributeValues": {
                ":p": {"M": prefs},
                ":r": {"BOOL": not preferences.accept_requests},
            },
        }
        if check is not None:
            update["UpdateExpression"] += ", emailCheck = :c"
            update["ExpressionAttributeValues"][":c"] = {
                "M": to_item(
                    {
                        "email": check.email,
                        "codeHash": check.code_hash,
                        "expiresAt": check.expires_at,
                        "attempts": check.attempts,
                    }
                )
            }
        if not guards:
            self.client.update_item(**update)
            return None
        tx = Transaction()
        tx.update("prefs", update)
        for i, guard in enumerate(guards):
            tx.update(f"guard:{i}", guard)
        try:
            tx.write(self.client)
        except ClientError as exc:
            refused = [int(label[6:]) for label in tx.refused(exc) if label.startswith("guard:")]
            if refused:
                return refused[0]
            raise
        return None

    def pending_code_hash(self, user_id: str) -> str | None:
        """The code hash of the user's pending verification (None if there is none)."""
        response = self.client.get_item(
            TableName=self.table,
            Key={"userId": {"S": user_id}},
            ProjectionExpression="emailCheck.codeHash",
        )
        check = from_item(response.get("Item", {})).get("emailCheck") or {}
        value = check.get("codeHash")
        return str(value) if value is not None else None

    def confirm_email(
        self, user_id: str, code_hash: str, now_ms: int, max_attempts: int, token: str
    ) -> bool:
        """Marks the address verified if ``code_hash`` is the pending check's, for the
        address still in the preferences, in time and within ``max_attempts`` guesses (one
        conditional write); a wrong guess is counted. True if verified."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"userId": {"S": user_id}},
                UpdateExpression=(
                    "SET prefs.emailVerified = :true, prefs.unsubscribeToken = :token"
                    " REMOVE emailCheck"
                ),
                ConditionExpression=(
                    "emailCheck.codeHash = :hash AND emailCheck.expiresAt > :now"
                    " AND emailCheck.attempts < :max AND emailCheck.email = prefs.email"
                ),
                ExpressionAttributeValues={
                    ":true": {"BOOL": True},
                    ":token": {"S": token},
                    ":hash": {"S": code_hash},
                    ":now": {"N": str(now_ms)},
                    ":max": {"N": str(max_attempts)},
                },
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
        else:
            return True
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"userId": {"S": user_id}},
                UpdateExpression="SET emailCheck.attempts = emailCheck.attempts + :one",
                ConditionExpression="attribute_exists(emailCheck)",
                ExpressionAttributeValues={":one": {"N": "1"}},
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
        return False

    def unsubscribe(self, user_id: str, token: str) -> bool:
        """Turns notification mail off if ``token`` is the user's unsubscribe token."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"userId": {"S": user_id}},
                UpdateExpression="SET prefs.emailOnOffline = :false",
                ConditionExpression="prefs.unsubscribeToken = :token",
                ExpressionAttributeValues={":false": {"BOOL": False}, ":token": {"S": token}},
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    # ------------------------------------------------------------------ helpers
    def _batch_get(self, user_ids: list[str], projection: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for start in range(0, len(user_ids), BATCH_GET_LIMIT):
            keys: list[dict[str, Any]] = [
                {"userId": {"S": u}} for u in user_ids[start : start + BATCH_GET_LIMIT]
            ]
            request: dict[str, Any] = {
                self.table: {"Keys": keys, "ProjectionExpression": projection}
            }
            while request:
                response = self.client.batch_get_item(RequestItems=request)
                items.extend(from_item(i) for i in response["Responses"].get(self.table, []))
                request = dict(response.get("UnprocessedKeys") or {})
        return items
