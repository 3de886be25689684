"""Metrics table (PK ``pk``, SK ``sk``, TTL ``expiresAt``): written only by the stream
aggregator, read by the analytics API.

Items:
- ``minute`` / ``hour`` + bucket key (``2026-11-26T10:05`` / ``2026-11-26T10``): counters
  and latency histogram bins (``h_<name>_<bucket>``) of that period, ``peakOnline``;
- ``total`` / ``all``: the same counters since the beginning;
- ``gauge`` / ``all``: ``online`` (open connections) and ``peakOnline``;
- ``user#<userId>`` / ``#stats``: per-user counters; ``user#<userId>`` /
  ``session#<connectedAt>#<connectionId>``: that user's sessions;
- ``sessions#active`` / ``<connectionId>`` and ``sessions#ended`` / ``<endedAt>#<id>``;
- ``marker#<marker>`` / ``#``: "this change was counted" (TTL 48 h, longer than the 24 h
  a stream keeps its records).

Exactly once: each contribution is ONE TransactWriteItems whose first item puts its marker
on condition that it does not exist and whose other items ADD the counters. A duplicate
(retried batch, replay) fails the condition and the whole transaction writes nothing; a
failure leaves nothing half-counted. ``apply_many`` does the same for a batch: one
transaction holds many contributions' markers and their counters summed per item, and a
duplicate's marker cancels it, so the duplicates are dropped and the rest written again.
See docs/operations.md.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from switchboard.analytics import histogram
from switchboard.analytics.periods import PERIODS, Period, bucket_key
from switchboard.analytics.records import Contribution
from switchboard.dal.base import DynamoRepository
from switchboard.dal.items import from_item, is_condition_failure
from switchboard.dal.transactions import Transaction

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

MARKER_TTL_SECONDS = 48 * 3600
BUCKET_TTL_SECONDS: dict[Period, int] = {"minute": 8 * 86400, "hour": 400 * 86400}
ENDED_SESSION_TTL_SECONDS = 7 * 86400
TRANSACTION_ATTEMPTS = 6
HISTOGRAM_PREFIX = "h_"


def histogram_attribute(name: str, index: int) -> str:
    return f"{HISTOGRAM_PREFIX}{name}_{index:03d}"


# Distinct users online: the user's stats item counts the user's open sessions ("open");
# the gauge "onlineUsers" moves only when a user's count crosses zero, in the same
# transaction that moves the count (conditioned on the value read), so it is always the
# number of users whose count is positive, whatever order the changes arrive in.
OPEN_SESSIONS = "open"
ONLINE_USERS = "onlineUsers"
PEAKS = {"peakOnline": "online", "peakOnlineUsers": ONLINE_USERS}
PRESENCE_LABEL = "user:presence"
# Per-session counters live on the user's stats item as ``session:<connectionId>:<name>``
# while the session is open (an ADD in the message's own transaction: no extra item), and
# are moved into the session's items when it ends. One counted after the end (the
# streams are read independently) stays on the stats item; the report adds it back.
SESSION_COUNTERS = ("messages", "typingEvents")
SESSION_PREFIX = "session:"


def session_attribute(connection_id: str, name: str) -> str:
    return f"{SESSION_PREFIX}{connection_id}:{name}"


def session_counters(stats: dict[str, Any]) -> dict[str, dict[str, int]]:
    """``session:<connectionId>:<name>`` attributes -> {connectionId: {name: n}}."""
    found: dict[str, dict[str, int]] = {}
    for attribute, value in stats.items():
        if attribute.startswith(SESSION_PREFIX):
            connection_id, _, name = attribute[len(SESSION_PREFIX) :].rpartition(":")
            found.setdefault(connection_id, {})[name] = int(value)
    return found


def _set(table: str, key: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """An Update that SETs ``fields`` (typed values) and nothing else of the item."""
    names = {f"#f{i}": name for i, name in enumerate(fields)}
    values = {f":f{i}": value for i, value in enumerate(fields.values())}
    assignments = ", ".join(f"#f{i} = :f{i}" for i in range(len(fields)))
    return {
        "TableName": table,
        "Key": key,
        "UpdateExpression": f"SET {assignments}",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


def _per_user(c: Contribution) -> dict[str, dict[str, int]]:
    users = {u: {k: v for k, v in values.items() if v} for u, values in c.users.items()}
    if c.session_counts:
        user_id, connection_id, counts = c.session_counts
        per_user = users.setdefault(user_id, {})
        for name, value in counts.items():
            per_user[session_attribute(connection_id, name)] = value
    return users


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True, slots=True)
class Presence:
    """A user's stats as read before a session starts (``change`` +1) or ends (-1)."""

    user_id: str
    open: int | None
    counters: dict[str, int | None]
    change: int

    @property
    def users_online_change(self) -> int:
        before = self.open or 0
        return int(before + self.change > 0) - int(before > 0)

    def update(self, table: str, adds: dict[str, int]) -> dict[str, Any]:
        """The stats Update: ``adds`` and the open-session count, the ended session's
        counters removed, on condition that all of them are still what was read."""
        names: dict[str, str] = {"#open": OPEN_SESSIONS}
        values: dict[str, Any] = {":change": _n(self.change)}
        clauses = ["#open :change"]
        for i, (name, value) in enumerate(sorted(adds.items())):
            names[f"#a{i}"] = name
            values[f":a{i}"] = _n(value)
            clauses.append(f"#a{i} :a{i}")
        conditions = []
        if self.open is None:
            conditions.append("attribute_not_exists(#open)")
        else:
            values[":open"] = _n(self.open)
            conditions.append("#open = :open")
        removes = []
        for i, (attribute, seen) in enumerate(sorted(self.counters.items())):
            names[f"#s{i}"] = attribute
            removes.append(f"#s{i}")
            if seen is None:
                conditions.append(f"attribute_not_exists(#s{i})")
            else:
                values[f":s{i}"] = _n(seen)
                conditions.append(f"#s{i} = :s{i}")
        expression = "ADD " + ", ".join(clauses)
        if removes:
            expression += " REMOVE " + ", ".join(removes)
        return {
            "TableName": table,
            "Key": _key(f"user#{self.user_id}", "#stats"),
            "UpdateExpression": expression,
            "ConditionExpression": " AND ".join(conditions),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": _s(pk), "sk": _s(sk)}


def _adds(values: dict[str, int], expires_at: int | None = None) -> dict[str, Any]:
    """An Update that ADDs ``values`` (top-level numbers: ADD needs no prior read)."""
    names: dict[str, str] = {}
    attrs: dict[str, Any] = {}
    adds = []
    for i, (name, value) in enumerate(sorted(values.items())):
        names[f"#a{i}"] = name
        attrs[f":a{i}"] = _n(value)
        adds.append(f"#a{i} :a{i}")
    expression = "ADD " + ", ".join(adds) if adds else ""
    if expires_at is not None:
        attrs[":exp"] = _n(expires_at)
        expression = f"SET expiresAt = if_not_exists(expiresAt, :exp) {expression}".strip()
    update: dict[str, Any] = {"UpdateExpression": expression, "ExpressionAttributeValues": attrs}
    if names:
        update["ExpressionAttributeNames"] = names
    return update


# DynamoDB's limit of items per TransactWriteItems.
MAX_TRANSACTION_ITEMS = 100


def _marker_put(table: str, marker: str, now: int) -> dict[str, Any]:
    return {
        "TableName": table,
        "Item": {
            **_key(f"marker#{marker}", "#"),
            "countedAt": _n(now),
            "expiresAt": _n(now + MARKER_TTL_SECONDS),
        },
        "ConditionExpression": "attribute_not_exists(pk)",
    }


def _contribution_adds(
    c: Contribution,
) -> list[tuple[tuple[str, str], dict[str, int], int | None]]:
    """(item key, numbers to ADD, TTL or None) of a contribution that is not a session
    start or end: the same items ``_transaction`` updates for it."""
    counters = {k: v for k, v in c.counters.items() if v}
    for name, latencies in c.latencies.items():
        for index, count in histogram.counts_of(latencies).items():
            counters[histogram_attribute(name, index)] = count
    found: list[tuple[tuple[str, str], dict[str, int], int | None]] = []
    if counters:
        found += [
            ((period, bucket_key(c.at_ms, period)), counters, BUCKET_TTL_SECONDS[period])
            for period in PERIODS
        ]
        found.append((("total", "all"), counters, None))
    gauges = {k: v for k, v in c.gauges.items() if v}
    if gauges:
        found.append((("gauge", "all"), gauges, None))
    for user_id, per_user in sorted(_per_user(c).items()):
        if per_user:
            found.append(((f"user#{user_id}", "#stats"), per_user, None))
    return found


def _groups(
    contributions: list[tuple[int, Contribution]],
) -> Iterator[list[tuple[int, Contribution]]]:
    """Consecutive runs of contributions whose markers and distinct counter items fit in
    one transaction."""
    group: list[tuple[int, Contribution]] = []
    keys: set[tuple[str, str]] = set()
    for index, c in contributions:
        mine = {key for key, _, _ in _contribution_adds(c)}
        if group and len(group) + 1 + len(keys | mine) > MAX_TRANSACTION_ITEMS:
            yield group
            group, keys = [], set()
        group.append((index, c))
        keys |= mine
    if group:
        yield group


class MetricsRepository(DynamoRepository):
    def __init__(
        self,
        table_name: str,
        *,
        client: DynamoDBClient | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(table_name, client=client)
        self._sleep = sleep

    # ------------------------------------------------------------------ writing
    def apply(self, contribution: Contribution) -> bool:
        """Counts ``contribution`` once: False if its marker says it was counted before."""
        for attempt in range(TRANSACTION_ATTEMPTS):
            presence = self._presence(contribution)
            tx = self._transaction(contribution, presence)
            try:
                tx.write(self.client)
            except ClientError as exc:
                refused = tx.refused(exc)
                if "marker" in refused:
                    return False
                # The user's stats changed since they were read (another session of the
                # user, a message counted meanwhile): read again and retry.
                retryable = (
                    PRESENCE_LABEL in refused
                    or tx.conflicted(exc)
                    or exc.response.get("Error", {}).get("Code")
                    in ("TransactionConflictException", "TransactionInProgressException")
                )
                if not retryable or attempt == TRANSACTION_ATTEMPTS - 1:
                    raise
                # Concurrent shards update the same bucket items: back off and try again.
                self._sleep(random.uniform(0, 0.02 * 2**attempt))  # noqa: S311 - jitter
            else:
                return True
        raise AssertionError("unreachable")

    def apply_many(self, contributions: Sequence[Contribution]) -> list[bool]:
        """Counts several contributions, none a session start or end, in as few
        transactions as DynamoDB allows: each puts every one of its contributions' markers
        on condition that it does not exist, and ADDs their counters summed per item (a
        minute bucket touched by 40 messages is one Update, not 40). A marker that exists
        cancels the transaction; its contribution was counted before (a retried batch, a
        replay) and is dropped, and the others are written again. So each is counted
        exactly once, as by ``apply``, for ~2 write units per contribution plus the
        shared items, instead of ~2 per item of each contribution. Returns, in order,
        whether each was counted now (False: a duplicate)."""
        if any(c.session_start or c.session_end for c in contributions):
            raise ValueError("session starts and ends are applied one by one (apply)")
        counted: dict[int, bool] = {}
        seen: set[str] = set()
        pending: list[int] = []
        for index, c in enumerate(contributions):
            if c.marker in seen:  # the same change twice in one batch
                counted[index] = False
            else:
                seen.add(c.marker)
                pending.append(index)
        for group in _groups([(i, contributions[i]) for i in pending]):
            counted.update(self._apply_group(group))
        return [counted[i] for i in range(len(contributions))]

    def _apply_group(self, group: list[tuple[int, Contribution]]) -> dict[int, bool]:
        result: dict[int, bool] = {}
        left = dict(group)
        for attempt in range(TRANSACTION_ATTEMPTS + len(group)):
            if not left:
                return result
            tx = self._group_transaction(left)
            try:
                tx.write(self.client)
            except ClientError as exc:
                duplicates = [label for label in tx.refused(exc) if label.startswith("marker:")]
                if duplicates:
                    for label in duplicates:
                        index = int(label.removeprefix("marker:"))
                        result[index] = False
                        del left[index]
                    continue  # the rest again, at once: nothing was written
                retryable = tx.conflicted(exc) or exc.response.get("Error", {}).get("Code") in (
                    "TransactionConflictException",
                    "TransactionInProgressException",
                )
                if not retryable or attempt >= TRANSACTION_ATTEMPTS - 1:
                    raise
                self._sleep(random.uniform(0, 0.02 * 2**attempt))  # noqa: S311 - jitter
            else:
                result.update(dict.fromkeys(left, True))
                return result
        raise RuntimeError("metrics transaction kept failing")

    def _group_transaction(self, group: Mapping[int, Contribution]) -> Transaction:
        now = int(time.time())
        tx = Transaction()
        for index, c in group.items():
            tx.put(f"marker:{index}", _marker_put(self.table, c.marker, now))
        adds: dict[tuple[str, str], dict[str, int]] = {}
        expiry: dict[tuple[str, str], int] = {}
        for c in group.values():
            for key, values, ttl in _contribution_adds(c):
                summed = adds.setdefault(key, {})
                for name, value in values.items():
                    summed[name] = summed.get(name, 0) + value
                if ttl:
                    expires = c.at_ms // 1000 + ttl
                    expiry[key] = min(expiry.get(key, expires), expires)
        for (pk, sk), summed in sorted(adds.items()):
            values = {k: v for k, v in summed.items() if v}
            if values or (pk, sk) in expiry:
                tx.update(
                    f"{pk}/{sk}",
                    {
                        "TableName": self.table,
                        "Key": _key(pk, sk),
                        **_adds(values, expiry.get((pk, sk))),
                    },
                )
        return tx

    def _presence(self, c: Contribution) -> Presence | None:
        """For a session start or end: the user's open sessions and (at the end) that
        session's counters, as the user's stats item holds them now (one read). The
        transaction is conditioned on them, so they are what it changes."""
        session = c.session_start or c.session_end
        if session is None:
            return None
        stats = self.user_stats(session.user_id)
        attributes = (
            [session_attribute(session.connection_id, name) for name in SESSION_COUNTERS]
            if c.session_end
            else []
        )
        return Presence(
            user_id=session.user_id,
            open=_int_or_none(stats.get(OPEN_SESSIONS)),
            counters={a: _int_or_none(stats.get(a)) for a in attributes},
            change=1 if c.session_start else -1,
        )

    def _transaction(self, c: Contribution, presence: Presence | None = None) -> Transaction:
        now = int(time.time())
        counters = {k: v for k, v in c.counters.items() if v}
        for name, latencies in c.latencies.items():
            for index, count in histogram.counts_of(latencies).items():
                counters[histogram_attribute(name, index)] = count
        tx = Transaction()
        tx.put("marker", _marker_put(self.table, c.marker, now))

        def update(pk: str, sk: str, values: dict[str, int], ttl: int | None = None) -> None:
            expires = c.at_ms // 1000 + ttl if ttl else None
            if values or expires:
                tx.update(
                    f"{pk}/{sk}",
                    {"TableName": self.table, "Key": _key(pk, sk), **_adds(values, expires)},
                )

        if counters:
            for period in PERIODS:
                update(period, bucket_key(c.at_ms, period), counters, BUCKET_TTL_SECONDS[period])
            update("total", "all", counters)
        gauges = {k: v for k, v in c.gauges.items() if v}
        if presence is not None and presence.users_online_change:
            gauges[ONLINE_USERS] = presence.users_online_change
        if gauges:
            update("gauge", "all", gauges)
        for user_id, per_user in sorted(_per_user(c).items()):
            if presence is not None and presence.user_id == user_id:
                tx.update(PRESENCE_LABEL, presence.update(self.table, per_user))
            else:
                update(f"user#{user_id}", "#stats", per_user)
        if presence is not None and presence.user_id not in c.users:
            tx.update(PRESENCE_LABEL, presence.update(self.table, {}))
        self._session_items(tx, c, presence)
        return tx

    def _session_items(self, tx: Transaction, c: Contribution, presence: Presence | None) -> None:
        # Every session item is written with SET of its own fields, never replaced whole:
        # the changes of one session may be applied in any order (a close before its
        # open, on a replay), and neither may undo what the other wrote.
        if c.session_start:
            s = c.session_start
            session = {
                "connectionId": _s(s.connection_id),
                "userId": _s(s.user_id),
                "connectedAt": _n(s.connected_at),
                **({"device": _s(s.device[:256])} if s.device else {}),
            }
            tx.update(
                "session:active",
                _set(self.table, _key("sessions#active", s.connection_id), session),
            )
            tx.update(
                "session:user",
                _set(
                    self.table,
                    _key(f"user#{s.user_id}", _session_sk(s.connected_at, s.connection_id)),
                    session,
                ),
            )
        if c.session_end:
            e = c.session_end
            expires = _n(e.ended_at // 1000 + ENDED_SESSION_TTL_SECONDS)
            ended = {
                "connectionId": _s(e.connection_id),
                "userId": _s(e.user_id),
                "connectedAt": _n(e.connected_at),
                "endedAt": _n(e.ended_at),
                "durationMs": _n(e.ended_at - e.connected_at),
            }
            if presence is not None:
                # The session's counters so far move from the user's stats to its items.
                for name in SESSION_COUNTERS:
                    value = presence.counters.get(session_attribute(e.connection_id, name))
                    ended[name] = _n(value or 0)
            # The active item is closed, not deleted (a late open must not bring it back):
            # listings skip closed ones, and it expires after the stream's 24 h.
            tx.update(
                "session:active-end",
                _set(
                    self.table,
                    _key("sessions#active", e.connection_id),
                    {
                        "endedAt": _n(e.ended_at),
                        "expiresAt": _n(int(time.time()) + MARKER_TTL_SECONDS),
                    },
                ),
            )
            tx.put(
                "session:ended",
                {
                    "TableName": self.table,
                    "Item": {
                        **_key("sessions#ended", f"{e.ended_at:013d}#{e.connection_id}"),
                        **ended,
                        "expiresAt": expires,
                    },
                },
            )
            tx.update(
                "session:ended-user",
                _set(
                    self.table,
                    _key(f"user#{e.user_id}", _session_sk(e.connected_at, e.connection_id)),
                    {**ended, "expiresAt": expires},
                ),
            )

    def raise_peak(self, at_ms: int) -> dict[str, int]:
        """Lifts ``peakOnline`` and ``peakOnlineUsers`` (gauge, minute, hour) to the current
        ``online`` / ``onlineUsers``. A maximum is idempotent by itself, so this runs
        outside the transaction, after it and again on every retry."""
        gauges = self.gauges()
        current = {peak: int(gauges.get(gauge, 0)) for peak, gauge in PEAKS.items()}
        targets = [("gauge", "all")] + [(p, bucket_key(at_ms, p)) for p in PERIODS]
        for peak, value in current.items():
            for pk, sk in targets:
                try:
                    self.client.update_item(
                        TableName=self.table,
                        Key=_key(pk, sk),
                        UpdateExpression="SET #peak = :v",
                        ConditionExpression="attribute_not_exists(#peak) OR #peak < :v",
                        ExpressionAttributeNames={"#peak": peak},
                        ExpressionAttributeValues={":v": _n(value)},
                    )
                except ClientError as exc:
                    if not is_condition_failure(exc):
                        raise
        return current

    # ------------------------------------------------------------------ reading
    def _get(self, pk: str, sk: str) -> dict[str, Any]:
        response = self.client.get_item(TableName=self.table, Key=_key(pk, sk), ConsistentRead=True)
        return from_item(response.get("Item") or {})

    def totals(self) -> dict[str, Any]:
        return self._get("total", "all")

    def gauges(self) -> dict[str, Any]:
        return self._get("gauge", "all")

    def user_stats(self, user_id: str) -> dict[str, Any]:
        return self._get(f"user#{user_id}", "#stats")

    def many_user_stats(self, user_ids: set[str]) -> dict[str, dict[str, Any]]:
        """Stats items of several users (BatchGetItem, 100 keys a call), by user id."""
        found: dict[str, dict[str, Any]] = {}
        ids = sorted(u for u in user_ids if u)
        for start in range(0, len(ids), 100):
            keys = [_key(f"user#{u}", "#stats") for u in ids[start : start + 100]]
            request: dict[str, Any] = {self.table: {"Keys": keys, "ConsistentRead": True}}
            for _ in range(10):
                response = self.client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table, []):
                    stats = from_item(item)
                    found[str(stats["pk"]).removeprefix("user#")] = stats
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                self._sleep(0.05)
        return found

    def buckets(self, period: Period, first: str, last: str) -> dict[str, dict[str, Any]]:
        """Bucket items by key, ``first`` to ``last`` inclusive (one Query, all pages)."""
        found: dict[str, dict[str, Any]] = {}
        for item in self._query(
            "pk = :p AND sk BETWEEN :a AND :b",
            {":p": _s(period), ":a": _s(first), ":b": _s(last)},
        ):
            found[str(item["sk"])] = item
        return found

    def active_sessions(self, limit: int) -> list[dict[str, Any]]:
        return list(
            self._query("pk = :p", {":p": _s("sessions#active")}, limit=limit, open_only=True)
        )

    def recent_sessions(self, limit: int) -> list[dict[str, Any]]:
        return list(
            self._query("pk = :p", {":p": _s("sessions#ended")}, limit=limit, newest_first=True)
        )

    def user_sessions(self, user_id: str, limit: int) -> list[dict[str, Any]]:
        return list(
            self._query(
                "pk = :p AND begins_with(sk, :s)",
                {":p": _s(f"user#{user_id}"), ":s": _s("session#")},
                limit=limit,
                newest_first=True,
            )
        )

    def _query(
        self,
        condition: str,
        values: dict[str, Any],
        *,
        limit: int | None = None,
        newest_first: bool = False,
        open_only: bool = False,
    ) -> Iterator[dict[str, Any]]:
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": not newest_first,
        }
        if open_only:
            request["FilterExpression"] = "attribute_not_exists(endedAt)"
        returned = 0
        while True:
            if limit is not None:
                request["Limit"] = limit - returned
            response = self.client.query(**request)
            for item in response["Items"]:
                returned += 1
                yield from_item(item)
            last = response.get("LastEvaluatedKey")
            if not last or (limit is not None and returned >= limit):
                return
            request["ExclusiveStartKey"] = last


def histograms(item: dict[str, Any]) -> dict[str, dict[int, int]]:
    """``h_<name>_<index>`` attributes of a bucket item -> {name: {index: count}}."""
    found: dict[str, dict[int, int]] = {}
    for attribute, value in item.items():
        if not attribute.startswith(HISTOGRAM_PREFIX):
            continue
        name, _, index = attribute[len(HISTOGRAM_PREFIX) :].rpartition("_")
        found.setdefault(name, {})[int(index)] = int(value)
    return found


def _session_sk(connected_at: int, connection_id: str) -> str:
    return f"session#{connected_at:013d}#{connection_id}"
