"""Pushing frames to users: the machinery every feature (messages, calls, uploads) uses.

Presence (one BatchGetItem for all the users) gives their connections; the frame goes to
all of them in one bounded parallel fan-out. A 410 Gone connection is forgotten at once
(never retried). A throttled or failed post goes to the SQS delivery queue, whose consumer
retries it with exponential backoff and, after the queue's maxReceiveCount, leaves it in
the dead-letter queue. Users with no connection are reported as offline so the caller can
notify them another way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from switchboard.dal.connections import ConnectionRepository
from switchboard.dal.users import UserRepository
from switchboard.gateway import ConnectionGone, DeliveryFailed, ManagementApi, encode
from switchboard.observability import logger
from switchboard.queues import EnqueueFailed, RetryJob

if TYPE_CHECKING:
    from switchboard.queues import RetryQueue


@dataclass
class DeliveryReport:
    delivered: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    queued_for_retry: list[str] = field(default_factory=list)
    offline_users: list[str] = field(default_factory=list)


class Delivery:
    def __init__(
        self,
        users: UserRepository,
        connections: ConnectionRepository,
        gateway: ManagementApi,
        retries: RetryQueue,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.users = users
        self.connections = connections
        self.gateway = gateway
        self.retries = retries
        self._clock = clock

    def to_users(
        self,
        user_ids: Iterable[str],
        frame: dict[str, Any],
        *,
        exclude_connection: str | None = None,
    ) -> DeliveryReport:
        presence = self.users.presence(user_ids)
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
        report.gone = result.gone
        for connection_id in result.gone:
            self.forget(connection_id, targets[connection_id])
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
            self.forget(job.connection_id, job.user_id)

    def enqueue_retry(
        self, connection_id: str, user_id: str, frame: dict[str, Any], reason: str
    ) -> None:
        job = RetryJob(connection_id, user_id, encode(frame).decode())
        self._enqueue_retries([job], {connection_id: reason})

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
