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
failure leaves nothing half-counted. See docs/operations.md.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
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
        tx = self._transaction(contribution)
        for attempt in range(TRANSACTION_ATTEMPTS):
            try:
                tx.write(self.client)
            except ClientError as exc:
                if "marker" in tx.refused(exc):
                    return False
                retryable = tx.conflicted(exc) or exc.response.get("Error", {}).get("Code") in (
                    "TransactionConflictException",
                    "TransactionInProgressException",
                )
                if not retryable or attempt == TRANSACTION_ATTEMPTS - 1:
                    raise
                # Concurrent shards update the same bucket items: back off and try again.
                self._sleep(random.uniform(0, 0.02 * 2**attempt))  # noqa: S311 - jitter
            else:
                return True
        raise AssertionError("unreachable")

    def _transaction(self, c: Contribution) -> Transaction:
        now = int(time.time())
        counters = {k: v for k, v in c.counters.items() if v}
        for name, latencies in c.latencies.items():
            for index, count in histogram.counts_of(latencies).items():
                counters[histogram_attribute(name, index)] = count
        tx = Transaction()
        tx.put(
            "marker",
            {
                "TableName": self.table,
                "Item": {
                    **_key(f"marker#{c.marker}", "#"),
                    "countedAt": _n(now),
                    "expiresAt": _n(now + MARKER_TTL_SECONDS),
                },
                "ConditionExpression": "attribute_not_exists(pk)",
            },
        )

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
        if gauges:
            update("gauge", "all", gauges)
        for user_id, per_user in sorted(c.users.items()):
            update(f"user#{user_id}", "#stats", {k: v for k, v in per_user.items() if v})
        if c.session_start:
            s = c.session_start
            session = {
                "connectionId": _s(s.connection_id),
                "userId": _s(s.user_id),
                "connectedAt": _n(s.connected_at),
                **({"device": _s(s.device[:256])} if s.device else {}),
            }
            tx.put(
                "session:active",
                {
                    "TableName": self.table,
                    "Item": {**_key("sessions#active", s.connection_id), **session},
                },
            )
            tx.put(
                "session:user",
                {
                    "TableName": self.table,
                    "Item": {
                        **_key(f"user#{s.user_id}", _session_sk(s.connected_at, s.connection_id)),
                        **session,
                    },
                },
            )
        if c.session_end:
            e = c.session_end
            ended = {
                "connectionId": _s(e.connection_id),
                "userId": _s(e.user_id),
                "connectedAt": _n(e.connected_at),
                "endedAt": _n(e.ended_at),
                "durationMs": _n(e.ended_at - e.connected_at),
            }
            tx.delete(
                "session:active-delete",
                {
                    "TableName": self.table,
                    "Key": _key("sessions#active", e.connection_id),
                },
            )
            tx.put(
                "session:ended",
                {
                    "TableName": self.table,
                    "Item": {
                        **_key("sessions#ended", f"{e.ended_at:013d}#{e.connection_id}"),
                        **ended,
                        "expiresAt": _n(e.ended_at // 1000 + ENDED_SESSION_TTL_SECONDS),
                    },
                },
            )
            tx.put(
                "session:ended-user",
                {
                    "TableName": self.table,
                    "Item": {
                        **_key(f"user#{e.user_id}", _session_sk(e.connected_at, e.connection_id)),
                        **ended,
                        "expiresAt": _n(e.ended_at // 1000 + ENDED_SESSION_TTL_SECONDS),
                    },
                },
            )
        return tx

    def raise_peak(self, at_ms: int) -> int:
        """Lifts ``peakOnline`` (gauge, minute, hour) to the current ``online``. A maximum
        is idempotent by itself, so this runs outside the transaction, after it and again
        on every retry."""
        online = int(self.gauges().get("online", 0))
        targets = [("gauge", "all")] + [(p, bucket_key(at_ms, p)) for p in PERIODS]
        for pk, sk in targets:
            try:
                self.client.update_item(
                    TableName=self.table,
                    Key=_key(pk, sk),
                    UpdateExpression="SET peakOnline = :v",
                    ConditionExpression="attribute_not_exists(peakOnline) OR peakOnline < :v",
                    ExpressionAttributeValues={":v": _n(online)},
                )
            except ClientError as exc:
                if not is_condition_failure(exc):
                    raise
        return online

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
        return list(self._query("pk = :p", {":p": _s("sessions#active")}, limit=limit))

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
    ) -> Iterator[dict[str, Any]]:
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": not newest_first,
        }
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
