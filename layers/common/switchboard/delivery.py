"""Pushing frames to users: the machinery every feature (messages, calls, uploads) uses.

Presence (one BatchGetItem for all the users) gives their connections; the frame goes to
all of them in one bounded parallel fan-out. A 410 Gone connection is forgotten at once
(never retried) - unless it opened less than CONNECT_GRACE_MS ago (see there). A throttled
or failed post goes to the SQS delivery queue, whose consumer retries it with exponential
backoff and, after the queue's maxReceiveCount, leaves it in the dead-letter queue. A post
API Gateway refuses for what it is (too large) is logged and dropped: retrying it would
only carry it into the dead-letter queue. Users with no connection are reported as
offline so the caller can notify them another way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from switchboard.dal.connections import ConnectionRepository
from switchboard.dal.users import UserRepository
from switchboard.gateway import ConnectionGone, DeliveryFailed, ManagementApi, PostRefused, encode
from switchboard.observability import logger
from switchboard.queues import EnqueueFailed, RetryJob

if TYPE_CHECKING:
    from switchboard.queues import RetryQueue

# API Gateway answers 410 to posts for a connection whose $connect has not returned yet
# (the connection item, and so the presence set and the stream record, exist before the
# handshake ends). A 410 this soon after connecting means "not yet": the post is retried
# and the connection kept. Forgetting it would leave an open socket that gets no pushes
# and looks offline to everyone.
CONNECT_GRACE_MS = 10_000
# Waits (s) before trying a young connection again within one stream record, then the
# record itself is retried (Lambda retries a stream record at once, so the waits are here).
NOT_READY_WAITS = (0.2, 0.4, 0.8)


class ConnectionNotReady(Exception):
    """The connection is too new to be posted to yet: retry the stream record."""


@dataclass
class DeliveryReport:
    delivered: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    queued_for_retry: list[str] = field(default_factory=list)
    offline_users: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # refused for good (PostRefused)


class Delivery:
    def __init__(
        self,
        users: UserRepository,
        connections: ConnectionRepository,
        gateway: ManagementApi,
        retries: RetryQueue,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.users = users
        self.connections = connections
        self.gateway = gateway
        self.retries = retries
        self._clock = clock
        self._sleep = sleep

    def to_users(
        self,
        user_ids: Iterable[str],
        frame: dict[str, Any],
        *,
        exclude_connection: str | None = None,
        private_to: str | None = None,
    ) -> DeliveryReport:
        """``private_to``: the frame reveals that user's activity (presence, typing, a
        receipt), so it skips whoever they blocked and whoever blocked them: both block
        lists come in the BatchGetItem that finds the connections (no extra call)."""
        if private_to is None:
            presence = self.users.presence(user_ids)
        else:
            ids = list(user_ids)
            read = self.users.presence([*ids, private_to], consent=True)
            subject = read[private_to]
            presence = {
                u: p
                for u, p in read.items()
                if u != private_to and u not in subject.blocked and private_to not in p.blocked
            }
            if private_to in ids:
                presence[private_to] = subject
        targets = {
            connection_id: user_id
            for user_id, p in presence.items()
            for connection_id in p.connection_ids
            if connection_id != exclude_connection
        }
        report = self.to_connections(targets, frame)
        report.offline_users = [u for u, p in presence.items() if not p.online]
        return report

    def to_connections(self, targets: dict[str, str], frame: dict[str, Any]) -> DeliveryReport:
        """``targets``: connectionId -> userId."""
        report = DeliveryReport()
        if not targets:
            return report
        encoded = encode(frame).decode()
        result = self.gateway.fan_out(targets, encoded)
        report.delivered = result.delivered
        not_ready = self.not_ready(result.gone)
        report.gone = [c for c in result.gone if c not in not_ready]
        result.failed.update({c: "410 while connecting" for c in sorted(not_ready)})
        for connection_id in report.gone:
            self.forget(connection_id, targets[connection_id])
        if result.refused:
            report.dropped = list(result.refused)
            logger.error("push refused by API Gateway, dropped", extra={"refused": result.refused})
        if result.failed:
            self._enqueue_retries(
                [RetryJob(c, targets[c], encoded) for c in result.failed], result.failed
            )
            report.queued_for_retry = list(result.failed)
        return report

    def retry(self, job: RetryJob) -> None:
        """One retry of a failed post. Raises DeliveryFailed to have SQS try again."""
        try:
            self.gateway.post(job.connection_id, job.frame)
        except ConnectionGone:
            if self.not_ready([job.connection_id]):
                raise DeliveryFailed(job.connection_id, "410 while connecting") from None
            self.forget(job.connection_id, job.user_id)
        except PostRefused as refused:
            logger.error(
                "push refused by API Gateway, dropped",
                extra={"connectionId": job.connection_id, "reason": refused.reason},
            )

    def enqueue_retry(
        self, connection_id: str, user_id: str, frame: dict[str, Any], reason: str
    ) -> None:
        job = RetryJob(connection_id, user_id, encode(frame).decode())
        self._enqueue_retries([job], {connection_id: reason})

    def not_ready(self, gone: Iterable[str]) -> set[str]:
        """Of connections API Gateway answered 410 for, those still within
        CONNECT_GRACE_MS of opening (read only on this rare path)."""
        now_ms = int(self._clock() * 1000)
        young: set[str] = set()
        for connection_id in gone:
            connection = self.connections.get(connection_id)
            if connection is not None and now_ms - connection.connected_at < CONNECT_GRACE_MS:
                young.add(connection_id)
        return young

    def when_ready(self, connection_id: str, connected_at: int, call: Callable[[], bool]) -> bool:
        """For a connection's stream record: runs ``call`` (False: API Gateway answered
        410). A 410 within CONNECT_GRACE_MS of connecting is tried again after
        NOT_READY_WAITS, then ConnectionNotReady has the record retried. False: the
        connection is gone for good."""
        for wait in (*NOT_READY_WAITS, None):
            if call():
                return True
            if int(self._clock() * 1000) - connected_at >= CONNECT_GRACE_MS:
                return False
            if wait is None:
                raise ConnectionNotReady(connection_id)
            self._sleep(wait)
        return False  # unreachable: the last wait is None

    def forget(self, connection_id: str, user_id: str) -> None:
        logger.info("connection gone", extra={"connectionId": connection_id, "userId": user_id})
        self.connections.delete(connection_id, user_id, int(self._clock() * 1000))

    def _enqueue_retries(self, jobs: list[RetryJob], reasons: dict[str, str]) -> None:
        logger.warning("push failed, queued for retry", extra={"failures": reasons})
        try:
            self.retries.enqueue(jobs)
        except EnqueueFailed as exc:
            # Nothing may be dropped silently: let the caller's invocation fail loudly.
            raise DeliveryFailed(jobs[0].connection_id, str(exc)) from None
